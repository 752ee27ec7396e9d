"""The versioned result format: round trip, rejection of malformed bytes, the SDK's error root."""
import subprocess
import sys

import numpy as np
import pytest

from client.encoding import EMBEDDING_DIM, EMBEDDING_FORMAT_VERSION, decode_embedding, encode_embedding
from client.errors import EncodingError, VerinferError


def _vector(seed=0):
    v = np.random.default_rng(seed).integers(-127, 128, EMBEDDING_DIM).astype(np.int8)
    v[7] = -127
    return v


def test_round_trip_preserves_direction():
    v = _vector()
    data = encode_embedding(v)
    assert data[0] == EMBEDDING_FORMAT_VERSION and len(data) == 1 + EMBEDDING_DIM
    assert data[1:] == v.tobytes()
    out = decode_embedding(data)
    assert out.dtype == np.float32 and abs(np.linalg.norm(out) - 1) < 1e-6
    np.testing.assert_allclose(out, v / np.linalg.norm(v.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("data", [
    b"", bytes([2]) + _vector().tobytes(), bytes([EMBEDDING_FORMAT_VERSION]) + _vector().tobytes()[:-1],
    bytes([EMBEDDING_FORMAT_VERSION]) + _vector().tobytes() + b"\x00",
    bytes([EMBEDDING_FORMAT_VERSION]) + bytes(EMBEDDING_DIM),
    bytes([EMBEDDING_FORMAT_VERSION]) + np.full(EMBEDDING_DIM, 5, np.int8).tobytes(),
    bytes([EMBEDDING_FORMAT_VERSION]) + b"\x80" + _vector().tobytes()[1:],
])
def test_malformed_results_are_rejected(data):
    with pytest.raises(EncodingError):
        decode_embedding(data)


@pytest.mark.parametrize("vector", [np.zeros(EMBEDDING_DIM, np.int8), _vector().astype(np.int16),
                                    _vector()[:10]])
def test_encoder_rejects_non_normalised_vectors(vector):
    with pytest.raises(EncodingError):
        encode_embedding(vector)


def test_encoding_errors_share_the_sdk_root_and_keep_the_engine_off_web3():
    assert issubclass(EncodingError, VerinferError) and issubclass(EncodingError, ValueError)
    # The engine imports client.encoding: its error must not pull in the chain stack.
    probe = "import provider.engine, sys; print('web3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
