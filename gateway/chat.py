"""``POST /v1/chat/completions`` in OpenAI's shape, on the marketplace's chat model.

A request becomes one chat job (``client.chat.ChatRequest``): ``messages`` as they are
(roles system, user, assistant; text content), ``max_tokens`` (or
``max_completion_tokens``, default 64), ``temperature`` (0, the default, is greedy;
else sampled), ``top_p`` and ``seed`` map onto the job's integer fields (temperature and
top_p to thousandths and millionths). A sampled request without a seed gets a random
one, returned in the answer's ``verinfer.seed``: with it anyone can replay the answer.
``extra_body={"verinfer": {"top_k": 40}}`` sets top-k beside the job's terms (r,
reward, until).

The answer is verified against the chain's digest before any of it is sent. With
``stream: true`` it then arrives as server-sent events (``chat.completion.chunk``
objects, one a word, then the finish reason and ``[DONE]``): the shape streaming
clients read, of an answer that is already checked.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from client.chat import ChatAnswer, ChatRequest, chat_request
from client.errors import InvalidInput
from gateway.errors import invalid
from gateway.service import Answer

FINISH = {"stop": "stop", "length": "length", "cut": "length"}
WORDS = re.compile(r"\s*\S+|\s+$")  # a word and the spaces before it; trailing spaces
ROLES = ("system", "user", "assistant")
UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs",
               "response_format", "logit_bias", "stop", "presence_penalty", "frequency_penalty")


def chat_job(body: dict[str, Any], top_k: int = 0) -> ChatRequest:
    """The chat job a completion request asks for (``APIError`` 400 naming the field
    if it cannot be one)."""
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False, [], {}):
            raise invalid(f"{name} is not supported by the marketplace's chat model", param=name,
                          code="unsupported_parameter")
    if body.get("n") not in (None, 1):
        raise invalid("n: one choice per request", param="n", code="unsupported_parameter")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature = _scaled(body.get("temperature"), 1000, "temperature")
    seed = body.get("seed")
    if seed is None:
        seed = secrets.randbits(64) if temperature else 0
    fields = {"messages": _messages(body.get("messages")),
              "max_tokens": 64 if limit is None else limit,
              "temperature_milli": temperature,
              "top_p_micro": _scaled(body.get("top_p"), 10**6, "top_p", default=10**6),
              "top_k": top_k, "seed": seed}
    try:
        request = chat_request(**fields)
        request.encode()  # the size rule (prompt bytes + max_tokens within the context)
    except InvalidInput as exc:
        message = str(exc).removeprefix("invalid chat request: ")
        param = next((f for f in ("max_tokens", "messages", "seed", "top_p", "temperature") if message.startswith(f)),
                     "messages" if "no text" in message else None)
        raise invalid(message, param=param, code="invalid_input") from None
    return request


def completion(answer: Answer, model: str, request: ChatRequest) -> dict[str, Any]:
    """The ``chat.completion`` object of a verified answer."""
    reply = answer.verified.answer
    return {
        "id": f"chatcmpl-{answer.job_id}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": FINISH[reply.finish], "logprobs": None}],
        "usage": {"prompt_tokens": 0, "completion_tokens": len(reply.ids), "total_tokens": len(reply.ids)},
        "verinfer": extension(answer, reply, request),
    }


def chunks(answer: Answer, model: str, request: ChatRequest) -> Iterator[str]:
    """The server-sent events of a verified answer: the role, one chunk a word of its
    text (with the spaces before it), the finish reason with the ``verinfer`` extension
    and usage, then ``[DONE]``."""
    reply = answer.verified.answer
    base = {"id": f"chatcmpl-{answer.job_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}

    def event(delta: dict, finish: str | None = None, **more) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps(base | {'choices': [choice]} | more, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    for piece in WORDS.findall(reply.text):
        yield event({"content": piece})
    yield event({}, FINISH[reply.finish], verinfer=extension(answer, reply, request),
                usage={"prompt_tokens": 0, "completion_tokens": len(reply.ids), "total_tokens": len(reply.ids)})
    yield "data: [DONE]\n\n"


def extension(answer: Answer, reply: ChatAnswer, request: ChatRequest) -> dict[str, Any]:
    result = answer.verified
    return {"job_id": answer.job_id, "digest": "0x" + result.digest.hex(), "r": answer.r,
            "status": result.status.name.lower(), "final": result.final,
            "audit": "pending" if answer.audit else None,  # GET /v1/audit?job=<job_id> tells its outcome
            "transaction": "0x" + answer.post_tx.hex(), "result_transaction": "0x" + answer.result_tx.hex(),
            "providers": list(result.providers), "token_ids": list(reply.ids), "finish": reply.finish,
            "seed": str(request.seed), "temperature_milli": request.temperature_milli,
            "top_p_micro": request.top_p_micro, "top_k": request.top_k}


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise invalid("messages: a non-empty list of {role, content}", param="messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise invalid(f"messages[{i}]: role must be one of {', '.join(ROLES)}", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise invalid(f"messages[{i}].content: only text parts are supported", param="messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise invalid(f"messages[{i}].content: text is required", param="messages")
        out.append({"role": message["role"], "content": content})
    return out


def _scaled(value: Any, scale: int, name: str, default: int = 0) -> int:
    """A float parameter as the job's integer (rounded to 1/scale)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"{name} must be a number", param=name)
    try:
        return int((Decimal(str(value)) * scale).to_integral_value())
    except (InvalidOperation, ValueError, OverflowError):  # NaN, infinities
        raise invalid(f"{name} must be a finite number", param=name) from None

