"""Verifiable inference engine: integer-only all-MiniLM-L6-v2 (CPU reference + Triton).

>>> from provider.engine import Engine
>>> engine = Engine.load()            # backend "auto": Triton on CUDA, else CPU
>>> results = engine.embed(["hello"])  # list of result bytes (client.encoding format)
"""
from .engine import Engine, ModelInfo, compute_model_id
from .errors import (BackendUnavailableError, EmptyInputError, EngineError, InputTooLongError,
                     InvalidInputError, InvalidUtf8Error, ModelFilesError, SelfTestError,
                     UnknownModelError)
from .tokenization import MAX_INPUT_BYTES, MAX_TOKENS

__all__ = [
    "Engine", "ModelInfo", "compute_model_id", "EngineError", "InvalidInputError",
    "EmptyInputError", "InputTooLongError", "InvalidUtf8Error", "UnknownModelError",
    "ModelFilesError", "BackendUnavailableError", "SelfTestError", "MAX_INPUT_BYTES",
    "MAX_TOKENS",
]
