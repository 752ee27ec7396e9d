"""Quality of the integer engine against the float model (sentence-transformers fp32),
and the exact result bytes it must keep producing under its model_id."""
import hashlib

import numpy as np
import pytest

from client.encoding import decode_embedding


@pytest.fixture(scope="module")
def results(engine, sentences) -> list[bytes]:
    return engine.embed(sentences)


@pytest.fixture(scope="module")
def float_embeddings(engine, sentences):
    from sentence_transformers import SentenceTransformer

    from provider.engine.weights import locate

    model = SentenceTransformer(str(locate().directory), device="cpu")
    assert model.max_seq_length == engine.model_info.max_tokens  # same truncation
    return model.encode(sentences, batch_size=32, normalize_embeddings=True).astype(np.float64)


def test_sentence_set_is_varied_and_unambiguous(engine, sentences):
    assert len(sentences) >= 200
    ids = [tuple(engine.tokenize(s)) for s in sentences]
    assert len(set(ids)) == len(ids)  # no two sentences tokenise alike (no NN ties)
    lengths = [len(i) for i in ids]
    assert min(lengths) <= 4 and max(lengths) > 128


# Pinned on purpose, beside model_id (tests/engine/test_engine.py): providers on any
# machine or backend must commit these exact bytes for this id. A change here means the
# arithmetic changed: bump intops.SPEC_VERSION (hence model_id), then update the pin.
RESULTS_SHA256 = "d6507c98501f1d5ebe0514eac1dd3267521f9066fa7ec8afd9b7c3d4d338e9e2"


def test_result_bytes_are_pinned(results):
    assert hashlib.sha256(b"".join(results)).hexdigest() == RESULTS_SHA256


def test_quality_against_float_model(results, float_embeddings):
    ours = np.stack([decode_embedding(r) for r in results]).astype(np.float64)
    ref = float_embeddings
    cos = (ours * ref).sum(axis=1)
    sim_ours, sim_ref = ours @ ours.T, ref @ ref.T
    np.fill_diagonal(sim_ours, -np.inf)
    np.fill_diagonal(sim_ref, -np.inf)
    nn_agreement = float((sim_ours.argmax(1) == sim_ref.argmax(1)).mean())
    print(f"cosine mean {cos.mean():.4f} min {cos.min():.4f}; NN agreement {nn_agreement:.3f}")
    assert cos.mean() >= 0.99
    assert cos.min() >= 0.97
    assert nn_agreement >= 0.95
