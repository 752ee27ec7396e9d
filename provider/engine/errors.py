"""Typed errors of the inference engine: one root, builtin mix-ins for callers
that catch by kind (``except ValueError`` keeps working)."""
from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class InvalidInputError(EngineError, ValueError):
    """A job's input can't be embedded; ``index`` is its position in the batch."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message if index is None else f"input {index}: {message}")
        self.index = index


class EmptyInputError(InvalidInputError):
    """The text is empty, whitespace only, or yields no tokens."""


class InputTooLongError(InvalidInputError):
    """The input exceeds ``MAX_INPUT_BYTES`` (longer token runs are truncated)."""


class InvalidUtf8Error(InvalidInputError):
    """The input bytes are not valid UTF-8."""


class UnknownModelError(EngineError, LookupError):
    """The requested model_id is not the one this engine reproduces."""


class ModelFilesError(EngineError, FileNotFoundError):
    """The packaged model files (weights, tokenizer) are missing or malformed."""


class BackendUnavailableError(EngineError, RuntimeError):
    """The requested compute backend can't run here (no CUDA, no Triton)."""


class SelfTestError(EngineError, RuntimeError):
    """This host does not compute the pinned bytes: the engine must not serve here."""
