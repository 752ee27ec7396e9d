"""Job input -> token ids: UTF-8 decoding, validation and the truncation rule.

Part of the result format (a change here changes ``model_id``):
- an input is UTF-8 text of at most ``MAX_INPUT_BYTES`` bytes; longer inputs are
  rejected, not truncated, so a job can't smuggle unbounded work;
- the text is tokenised by the model's ``tokenizer.json`` (BERT WordPiece, lower case)
  as ``[CLS] tokens [SEP]`` and truncated to ``MAX_TOKENS`` ids (the trailing
  ``[SEP]`` kept), the sequence length sentence-transformers uses for this model;
- text that is empty, whitespace only or yields no word pieces is rejected.
"""
from __future__ import annotations

from pathlib import Path

from client.protocol import MAX_INPUT

from .errors import EmptyInputError, InputTooLongError, InvalidInputError, InvalidUtf8Error

MAX_INPUT_BYTES = MAX_INPUT  # the contract's bound on a job's input: one limit everywhere
MAX_TOKENS = 256


class JobTokenizer:
    """Validates job inputs and turns them into token id lists."""

    def __init__(self, tokenizer_json: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=MAX_TOKENS)

    def text_of(self, job_input: str | bytes, index: int | None = None) -> str:
        """The validated text of one job input (bytes must be UTF-8)."""
        if isinstance(job_input, (bytes, bytearray, memoryview)):
            raw = bytes(job_input)
            if len(raw) > MAX_INPUT_BYTES:
                raise InputTooLongError(f"{len(raw)} bytes > {MAX_INPUT_BYTES}", index)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidUtf8Error(f"not UTF-8 ({exc.reason} at byte {exc.start})", index) from None
        elif isinstance(job_input, str):
            text = job_input
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:  # lone surrogates can't be a job's bytes
                raise InvalidUtf8Error("text is not encodable as UTF-8", index) from None
            if size > MAX_INPUT_BYTES:
                raise InputTooLongError(f"{size} bytes > {MAX_INPUT_BYTES}", index)
        else:
            raise InvalidInputError(f"expected str or bytes, got {type(job_input).__name__}", index)
        if not text.strip():
            raise EmptyInputError("empty text", index)
        return text

    def ids(self, job_input: str | bytes, index: int | None = None) -> list[int]:
        """Validated, truncated token ids of one job input, ``[CLS] ... [SEP]``."""
        ids = self._tok.encode(self.text_of(job_input, index)).ids
        if len(ids) <= 2:
            raise EmptyInputError("text yields no tokens", index)
        return ids
