"""Result byte format of the verifiable engine, and its decoder.

The one place that defines how a job's result is laid out; the engine imports the
encoder from here, clients decode with it.

Embedding format, version 1 (385 bytes):
    byte 0        format version, 0x01
    bytes 1..384  the embedding direction as int8 (two's complement), scaled so that
                  its largest component has magnitude exactly 127; -128 never occurs.
The float embedding is that vector L2-normalised (``decode_embedding``). Cosine
similarity of two decoded vectors equals that of the int8 vectors.
"""
from __future__ import annotations

import numpy as np

from client.errors import EncodingError  # the SDK's root; web3-free, as the engine imports this module

EMBEDDING_FORMAT_VERSION = 1
EMBEDDING_DIM = 384
EMBEDDING_SIZE = 1 + EMBEDDING_DIM


def encode_embedding(vector: np.ndarray) -> bytes:
    """Version-1 bytes of an int8 direction vector (max-abs exactly 127).

    >>> len(encode_embedding(np.full(384, 127, dtype=np.int8)))
    385
    """
    v = np.asarray(vector)
    if v.dtype != np.int8 or v.shape != (EMBEDDING_DIM,):
        raise EncodingError(f"expected int8[{EMBEDDING_DIM}], got {v.dtype}{list(v.shape)}")
    _check_direction(v)
    return bytes([EMBEDDING_FORMAT_VERSION]) + v.tobytes()


def decode_embedding(data: bytes) -> np.ndarray:
    """The unit-norm float32 embedding in a result, validating format and version.

    >>> v = decode_embedding(bytes([1]) + bytes([127]) + bytes(383))
    >>> float(v[0]), float(np.linalg.norm(v))
    (1.0, 1.0)
    """
    raw = bytes(data)
    if not raw:
        raise EncodingError("empty result")
    if raw[0] != EMBEDDING_FORMAT_VERSION:
        raise EncodingError(f"unknown embedding format version {raw[0]}")
    if len(raw) != EMBEDDING_SIZE:
        raise EncodingError(f"expected {EMBEDDING_SIZE} bytes, got {len(raw)}")
    v = np.frombuffer(raw, dtype=np.int8, offset=1)
    _check_direction(v)
    f = v.astype(np.float64)
    return (f / np.linalg.norm(f)).astype(np.float32)


def _check_direction(v: np.ndarray) -> None:
    if v.min() == -128 or np.abs(v.astype(np.int16)).max() != 127:
        raise EncodingError("not a normalised embedding (max |component| must be 127)")
