"""The chat job format: a text-generation request as a job's input bytes, and the answer
as its result bytes. Models registered with ``format_version == CHAT_FORMAT`` take it.

Input, version 1: the request as canonical JSON (UTF-8, keys sorted, no whitespace,
non-ASCII characters as themselves, every field present), at most MAX_CONTEXT - max_tokens bytes:

    {"max_tokens":64,"messages":[{"content":"Hi","role":"user"}],"prompt":null,
     "seed":0,"temperature_milli":0,"top_k":0,"top_p_micro":1000000,"v":1}

- ``messages`` (rendered by the model's chat template, the assistant's turn opened) or
  ``prompt`` (raw text, no template): exactly one is non-null.
- ``max_tokens``: 1..MAX_TOKENS new tokens; ``temperature_milli`` 0 is greedy (ties to
  the lowest token id), else temperature x 1000 (at most 100000) with ``top_k`` (0: all)
  and ``top_p_micro`` (nucleus mass in millionths, 1..10**6) and ``seed`` (unsigned
  64-bit), drawn from a counter-based generator keyed by seed and step.
- Only the canonical encoding is valid: one request has exactly one input, so every
  parser reads the same request, and providers refuse the same inputs.
- The prompt's tokens plus ``max_tokens`` must fit the context: the rule checked before
  posting is ``len(input) + max_tokens <= MAX_CONTEXT`` (a prompt never has more tokens
  than its JSON has bytes), so a valid request always fits (and is under MAX_INPUT).

Result, version 1 (at most MAX_RESULT bytes):

    byte 0        CHAT_FORMAT (0x02)
    byte 1        finish: 0 stop token generated (it is the last id), 1 max_tokens
                  reached, 2 cut: the answer was cut to the longest prefix that fits
    bytes 2..3    n, the number of token ids (big-endian)
    next 2n       the generated token ids, uint16 big-endian each
    the rest      the text of those ids (the model's tokenizer, special tokens
                  skipped), UTF-8

The text is a function of the ids under the model's pinned tokenizer (it is part of the
model id), so it is as verifiable as the ids, and a client needs no tokenizer to read it.

>>> raw = ChatRequest(messages=[ChatMessage(role="user", content="Hi")], max_tokens=8).encode()
>>> ChatRequest.decode(raw).max_tokens
8
>>> ChatAnswer.decode(ChatAnswer(finish="stop", ids=(19, 2), text="Hi").encode()).text
'Hi'
"""
from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from client.errors import EncodingError, InvalidInput
from client.protocol import MAX_INPUT, MAX_RESULT

CHAT_FORMAT = 2  # the registry's format_version of chat models (1: embeddings)
INPUT_VERSION = 1
MAX_CONTEXT = 2048  # positions (prompt + answer) of the registered LLM
HEADER = 4  # format, finish, count
MAX_TOKENS = (MAX_RESULT - HEADER) // 2  # 510: the ids alone always fit
MAX_TEMPERATURE_MILLI = 100_000
TOP_P_ONE = 1_000_000
FINISH = ("stop", "length", "cut")
Finish = Literal["stop", "length", "cut"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """What to generate. Build one with keywords; ``encode`` gives the job input."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    v: Literal[1] = INPUT_VERSION
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    max_tokens: int = Field(64, ge=1, le=MAX_TOKENS)
    temperature_milli: int = Field(0, ge=0, le=MAX_TEMPERATURE_MILLI)
    top_k: int = Field(0, ge=0, lt=1 << 32)
    top_p_micro: int = Field(TOP_P_ONE, ge=1, le=TOP_P_ONE)
    seed: int = Field(0, ge=0, lt=1 << 64)

    @model_validator(mode="after")
    def _one_prompt(self) -> ChatRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages and prompt")
        texts = [m.content for m in self.messages] if self.messages is not None else [self.prompt]
        if not self.messages and self.messages is not None:
            raise ValueError("messages is empty")
        if not any(t.strip() for t in texts):
            raise ValueError("no text: every message is empty or whitespace")
        return self

    def encode(self) -> bytes:
        """The canonical input bytes; ``InvalidInput`` if they would not fit a job."""
        raw = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode("utf-8")
        # MAX_CONTEXT <= MAX_INPUT + 1: a request that fits the context fits a job.
        if len(raw) + self.max_tokens > MAX_CONTEXT:
            raise InvalidInput(f"chat request of {len(raw)} bytes with max_tokens {self.max_tokens}: "
                               f"bytes + max_tokens must be at most {MAX_CONTEXT} (the context)")
        return raw

    @classmethod
    def decode(cls, raw: bytes, index: int | None = None) -> ChatRequest:
        """The request in job input bytes; ``InvalidInput`` (naming ``index``) unless they
        are a valid request in its canonical encoding."""
        where = "" if index is None else f"input {index}: "
        try:
            request = cls.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidInput(f"{where}invalid chat request: {_first_error(exc)}") from None
        try:
            canonical = request.encode()
        except InvalidInput as exc:
            raise InvalidInput(f"{where}{exc}") from None
        if canonical != bytes(raw):
            raise InvalidInput(f"{where}chat request not in canonical form (keys sorted, no "
                               "whitespace, every field present: ChatRequest.encode)")
        return request


class ChatAnswer(BaseModel):
    """A chat job's result: the generated ids, why generation stopped, and their text."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    finish: Finish
    ids: tuple[int, ...]
    text: str

    def encode(self) -> bytes:
        if any(not 0 <= i < 1 << 16 for i in self.ids):
            raise InvalidInput("token ids must fit 16 bits")
        return (bytes([CHAT_FORMAT, FINISH.index(self.finish)]) + len(self.ids).to_bytes(2, "big")
                + b"".join(i.to_bytes(2, "big") for i in self.ids) + self.text.encode("utf-8"))

    @classmethod
    def fitted(cls, ids: list[int], finish: Finish, text_of) -> ChatAnswer:
        """The answer for generated ``ids``, cut to the longest prefix whose encoding fits
        MAX_RESULT (finish "cut" then); ``text_of(ids)`` is the tokenizer's decode."""
        n = len(ids)
        while True:
            answer = cls(finish=finish if n == len(ids) else "cut", ids=tuple(ids[:n]), text=text_of(ids[:n]))
            if len(answer.encode()) <= MAX_RESULT:
                return answer
            n -= 1

    @classmethod
    def decode(cls, raw: bytes) -> ChatAnswer:
        """The answer in result bytes (``EncodingError`` if they are not one)."""
        if len(raw) < HEADER or raw[0] != CHAT_FORMAT or raw[1] >= len(FINISH):
            raise EncodingError("not a chat result (format byte 0x02, finish 0..2)")
        n = int.from_bytes(raw[2:4], "big")
        if len(raw) < HEADER + 2 * n:
            raise EncodingError(f"chat result holds fewer than its {n} token ids")
        ids = tuple(int.from_bytes(raw[HEADER + 2 * i:HEADER + 2 * i + 2], "big") for i in range(n))
        try:
            text = raw[HEADER + 2 * n:].decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError("chat result text is not UTF-8") from None
        return cls(finish=FINISH[raw[1]], ids=ids, text=text)


def chat_request(**fields) -> ChatRequest:
    """``ChatRequest(**fields)`` with the SDK's error (``InvalidInput``) for bad fields."""
    try:
        return ChatRequest(**fields)
    except ValidationError as exc:
        raise InvalidInput(f"invalid chat request: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")  # our own validators' messages
    return f"{where}: {message}" if where else message
