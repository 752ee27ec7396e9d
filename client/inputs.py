"""What a job input may be, checked by the SDK before anything is sent.

An embedding job's input is UTF-8 text of 1..MAX_INPUT bytes with some text in it: the
rule every provider's engine applies (``provider.engine.tokenization``); a chat job's is
a canonical ``client.chat.ChatRequest``. A job the SDK lets through is one an honest
provider can serve, and a job it stops would otherwise have waited in escrow, claimed by
nobody, until its claim deadline.
"""
from __future__ import annotations

from tokenizers.normalizers import BertNormalizer

from client.chat import CHAT_FORMAT, ChatRequest
from client.errors import InvalidInput
from client.protocol import MAX_INPUT

# The embedding model's normaliser, as its tokenizer.json configures it (BERT's): text that
# it maps to whitespace alone (controls, format and private-use characters, accents) yields
# no token, and every provider refuses it. The same library and tables as the engine's, so
# the two agree on every code point (tests/client/test_inputs.py).
_NORMALIZER = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                             lowercase=True)


def job_input(data: bytes | str, index: int | None = None) -> bytes:
    """The bytes of one valid job input (text is UTF-8 encoded); ``InvalidInput`` naming
    the input (``index``) and what is wrong otherwise."""
    where = "" if index is None else f"input {index}: "
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where}text is not encodable as UTF-8 (a lone surrogate)") from None
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise InvalidInput(f"{where}expected str or bytes, got {type(data).__name__}")
    if not 0 < len(raw) <= MAX_INPUT:
        raise InvalidInput(f"{where}must be 1..{MAX_INPUT} bytes, got {len(raw)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{where}not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not _NORMALIZER.normalize_str(text).strip():
        raise InvalidInput(f"{where}no text: only whitespace, control or format characters")
    return raw


def job_payload(format_version: int, data: bytes | str | ChatRequest, index: int | None = None) -> bytes:
    """The input bytes of one job for a model of ``format_version`` (the registry's):
    a chat model takes a ``ChatRequest`` (or its canonical bytes), any other model text."""
    where = "" if index is None else f"input {index}: "
    if format_version == CHAT_FORMAT:
        if isinstance(data, ChatRequest):
            try:
                return data.encode()
            except InvalidInput as exc:
                raise InvalidInput(f"{where}{exc}") from None
        if isinstance(data, (bytes, bytearray, memoryview)):
            ChatRequest.decode(bytes(data), index)
            return bytes(data)
        raise InvalidInput(f"{where}a chat model takes a ChatRequest, not {type(data).__name__}")
    if isinstance(data, ChatRequest):
        raise InvalidInput(f"{where}a ChatRequest needs a chat model (format_version {CHAT_FORMAT}), "
                           f"this one has format_version {format_version}")
    return job_input(data, index)
