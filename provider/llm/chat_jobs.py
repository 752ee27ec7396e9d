"""Chat jobs on the integer LLM: job input bytes in, result bytes out (``client.chat``).

What the provider agent runs for a chat model: ``check`` refuses an input before the
job is claimed (the same rule the SDK applies before posting), ``run`` answers a batch.
Every honest provider computes the same result bytes, whatever its batch or backend.

>>> runner = ChatRunner(LLMEngine.load())  # doctest: +SKIP
>>> request = ChatRequest(messages=[{"role": "user", "content": "Capital of France?"}])
>>> ChatAnswer.decode(runner.run([request.encode()])[0]).text  # doctest: +SKIP
'The capital of France is Paris.'
"""
from __future__ import annotations

from itertools import groupby

from client.chat import MAX_CONTEXT, ChatAnswer, ChatRequest
from provider.engine.errors import EmptyInputError, InputTooLongError

from .engine import LLMEngine
from .sampling import SamplingParams


class ChatRunner:
    """The LLM engine behind the chat job format."""

    def __init__(self, engine: LLMEngine):
        self.engine = engine

    @property
    def model_id(self) -> bytes:
        return self.engine.model_id

    @property
    def route(self) -> str:
        return self.engine.route

    def self_test(self) -> None:
        self.engine.self_test()

    def check(self, raw: bytes) -> None:
        """Raise ``InvalidInput`` / ``InvalidInputError`` (both ``ValueError``) if no honest
        provider could answer this input."""
        self._prompt(raw)

    def run(self, inputs: list[bytes]) -> list[bytes]:
        """The result bytes of each input; a bad input raises (its ``index`` named) before
        any generation."""
        requests = [self._prompt(raw, i) for i, raw in enumerate(inputs)]
        out: list[bytes] = [b""] * len(inputs)
        # One batch per max_tokens (the decoder's batches share it); each answer is the
        # one it gets alone.
        order = sorted(range(len(inputs)), key=lambda i: requests[i][0].max_tokens)
        for max_tokens, group in groupby(order, key=lambda i: requests[i][0].max_tokens):
            group = list(group)
            answers = self.engine.generate_batch(
                [requests[i][1] for i in group], max_tokens, [_sampling(requests[i][0]) for i in group])
            for i, ids in zip(group, answers):
                finish = "stop" if ids[-1] in self.engine.tokenizer.stop_ids else "length"
                out[i] = ChatAnswer.fitted(ids, finish, self.engine.text).encode()
        return out

    def _prompt(self, raw: bytes, index: int | None = None) -> tuple[ChatRequest, list[int]]:
        request = ChatRequest.decode(bytes(raw), index)
        if request.messages is not None:
            ids = self.engine.prompt_ids([m.model_dump() for m in request.messages])
        else:
            ids = self.engine.prompt_ids(request.prompt)
        if not ids:
            raise EmptyInputError("the prompt has no tokens", index)
        # Never with a valid request (a prompt has no more tokens than its JSON has bytes):
        # checked all the same, since a provider must refuse rather than fail mid-job.
        if len(ids) + request.max_tokens > MAX_CONTEXT:
            raise InputTooLongError(f"prompt of {len(ids)} tokens + {request.max_tokens} new ones "
                                    f"exceeds the context of {MAX_CONTEXT}", index)
        return request, ids


def _sampling(request: ChatRequest) -> SamplingParams:
    return SamplingParams(temperature_milli=request.temperature_milli, top_k=request.top_k,
                          top_p_micro=request.top_p_micro, seed=request.seed)
