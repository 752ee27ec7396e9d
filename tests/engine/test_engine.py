"""The engine end to end on the real model: invariance, determinism, identity, bad input."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from client.encoding import EMBEDDING_SIZE, decode_embedding
from client.protocol import MAX_INPUT
from provider.engine import (MAX_INPUT_BYTES, MAX_TOKENS, EmptyInputError, EngineError,
                             InputTooLongError, InvalidInputError, InvalidUtf8Error,
                             UnknownModelError)
from provider.engine.backend import CpuOps, select_backend
from provider.engine.errors import BackendUnavailableError

ROOT = Path(__file__).resolve().parents[2]
PROBES = ["A man is playing a guitar.", "Le chat dort sur le canapé.", "x",
          "The quick brown fox jumps over the lazy dog. " * 8]


def test_results_are_versioned_bytes(engine):
    results = engine.embed(PROBES)
    assert [len(r) for r in results] == [EMBEDDING_SIZE] * len(PROBES)
    assert all(r[0] == engine.model_info.format_version for r in results)


def test_batch_and_padding_invariance(engine, sentences):
    target = "Someone is strumming a guitar outside."
    alone = engine.embed([target])[0]
    long = sentences[-30]  # a ~40-token sentence
    for batch in ([target, long], [long, "hi", target, "ok"], sentences[:12] + [target]):
        assert engine.embed(batch)[batch.index(target)] == alone
    # the same job padded to the longest job inside one forward chunk
    ids = engine.tokenize(target)
    longest = engine.tokenize(max(sentences, key=len))
    assert engine.embed_ids([longest, ids, ids[:5] + [102]])[1] == alone


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_thread_counts_give_the_same_bytes(engine, sentences, torch_threads):
    """Two threads run several chunks side by side (one torch thread each), or one
    chunk with two-thread GEMMs."""
    batch = sentences[:40]  # several chunks
    torch_threads(1)
    one = engine.embed(batch), engine.embed(batch[-1:])
    torch_threads(2)
    assert (engine.embed(batch), engine.embed(batch[-1:])) == one
    assert torch.get_num_threads() == 2  # restored after the side-by-side chunks


def test_truncation_at_max_tokens(engine):
    words = "word " * 400  # 400 tokens in 2000 bytes: under the byte limit, over MAX_TOKENS
    ids = engine.tokenize(words)
    assert len(ids) == MAX_TOKENS and ids[0] == 101 and ids[-1] == 102
    assert engine.embed([words])[0] == engine.embed(["word " * 300])[0]


def test_input_forms_are_equivalent(engine):
    text = "Grüße aus Köln!"
    assert engine.embed([text])[0] == engine.embed([text.encode("utf-8")])[0]


def _digest(results):
    return hashlib.sha256(b"".join(results)).hexdigest()


def test_determinism_across_processes(engine):
    """A fresh interpreter derives the same model_id and the same bytes."""
    code = ("import hashlib; from provider.engine import Engine; e = Engine.load('cpu'); "
            f"r = e.embed({PROBES!r}); "
            "print(e.model_id.hex(), hashlib.sha256(b''.join(r)).hexdigest())")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VERINFER_BACKEND": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == [engine.model_id.hex(), _digest(engine.embed(PROBES))]


# Pinned on purpose: model_id is registered on-chain, so any change to the weights,
# tokenizer, derived integer parameters or output format must be deliberate (bump the
# format version or register the new model) and then update these values.
PINNED = {
    "model_id": "48ad3cb15793b498b9b57c0a8556e6ae481e016922cf89fd8af2d4f41a6a61de",
    "weights_digest": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer_digest": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}


def test_model_id_is_stable(engine):
    info = engine.model_info
    assert {k: getattr(info, k).hex() for k in PINNED} == PINNED


def test_model_info_and_refusal_of_other_models(engine):
    info = engine.model_info
    assert len(engine.model_id) == 32 and info.model_id == engine.model_id
    assert info.name == "sentence-transformers/all-MiniLM-L6-v2" and info.dim == 384
    assert info.max_tokens == MAX_TOKENS and info.max_input_bytes == MAX_INPUT_BYTES
    engine.check_model(engine.model_id)
    other = bytes(32)
    with pytest.raises(UnknownModelError):
        engine.check_model(other)
    with pytest.raises(UnknownModelError):
        engine.embed(["hello"], model_id=other)
    with pytest.raises(LookupError):
        engine.check_model(engine.model_id[:31] + bytes([engine.model_id[31] ^ 1]))


@pytest.mark.parametrize("bad,error", [
    ("", EmptyInputError), ("   \n\t", EmptyInputError), (b"", EmptyInputError),
    ("\x00\x01\x02", EmptyInputError),
    (b"caf\xc3", InvalidUtf8Error), (b"\xff\xfe", InvalidUtf8Error), ("\ud800", InvalidUtf8Error),
    ("a" * (MAX_INPUT_BYTES + 1), InputTooLongError), (b"a" * (MAX_INPUT_BYTES + 1), InputTooLongError),
    ("é" * (MAX_INPUT_BYTES // 2 + 1), InputTooLongError),
    (42, InvalidInputError), (None, InvalidInputError),
])
def test_bad_inputs_raise_typed_errors(engine, bad, error):
    with pytest.raises(error) as info:
        engine.embed(["fine", bad])
    assert isinstance(info.value, EngineError) and isinstance(info.value, ValueError)
    assert info.value.index == 1
    assert engine.embed(["fine"])  # the engine keeps working


def test_input_at_byte_limit_is_accepted(engine):
    # one input limit: the contract's (client.protocol mirrors it), in the engine and the SDK
    assert MAX_INPUT_BYTES == engine.model_info.max_input_bytes == MAX_INPUT == 2048
    [result] = engine.embed([b"a " * (MAX_INPUT_BYTES // 2)])
    assert len(result) == EMBEDDING_SIZE


def test_embed_rejects_a_bare_string_and_bad_token_ids(engine):
    with pytest.raises(InvalidInputError):
        engine.embed("not a list")
    with pytest.raises(InvalidInputError):
        engine.embed_ids([[101, 10**6, 102]])
    with pytest.raises(InvalidInputError):
        engine.embed_ids([[]])
    assert engine.embed([]) == []


def test_similar_sentences_are_close(engine):
    a, b, c = (decode_embedding(r) for r in engine.embed(
        ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell."]))
    assert float(a @ b) > float(a @ c) + 0.2


def test_backend_selection(monkeypatch):
    assert isinstance(select_backend("cpu"), CpuOps)
    monkeypatch.setenv("VERINFER_BACKEND", "cpu")
    assert select_backend("auto").name == "cpu"
    monkeypatch.setenv("VERINFER_BACKEND", "tpu")
    with pytest.raises(BackendUnavailableError):
        select_backend("auto")
    with pytest.raises(BackendUnavailableError):
        select_backend("gpu")


def test_importing_the_engine_loads_no_chain_code():
    """A GPU box running only the engine (or a test of it) needs no web3 stack."""
    code = ("import sys, provider.engine; print(' '.join(m for m in ('web3', 'eth_abi', "
            "'eth_account', 'requests', 'rich', 'ape', 'client.client') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    assert done.stdout.split() == []
