"""Quality of the integer engine against the float model (sentence-transformers fp32)."""
import numpy as np
import pytest

from client.encoding import decode_embedding


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


def test_quality_against_float_model(engine, sentences, float_embeddings):
    ours = np.stack([decode_embedding(r) for r in engine.embed(sentences)]).astype(np.float64)
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
