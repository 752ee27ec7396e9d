"""What a job input may be, checked by the SDK before anything is sent.

A job's input is UTF-8 text of 1..MAX_INPUT bytes with some text in it: the rule every
provider's engine applies (``provider.engine.tokenization``), so a job the SDK lets through
is one an honest provider can serve, and a job it stops would otherwise have waited in
escrow, claimed by nobody, until its claim deadline.
"""
from __future__ import annotations

import unicodedata

from client.errors import InvalidInput
from client.protocol import MAX_INPUT

# Characters that leave nothing for a tokenizer: controls and format characters, the
# replacement character, and combining marks (stripped with the accents they'd carry).
_NO_TEXT = ("Cc", "Cf", "Mn")


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
    if all(c.isspace() or c == "\ufffd" or unicodedata.category(c) in _NO_TEXT for c in text):
        raise InvalidInput(f"{where}no text: only whitespace or control characters")
    return raw
