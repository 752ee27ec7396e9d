"""The decoder's Triton kernels equal its CPU path bit for bit: each kernel at the model's
real shapes on edge inputs (``triton_cases``), a generation through all 30 layers, and
the engine on the Triton backend.

Without CUDA the kernels run in Triton's interpreter on the CPU (``TRITON_INTERPRET``,
set by this folder's conftest), with tiles sized for it; one test runs the GPU's tiles
there too. With CUDA the same tests run the compiled kernels on the GPU.
"""
import dataclasses

import numpy as np
import pytest
import torch

from provider.engine.errors import BackendUnavailableError
from provider.llm import LLMEngine, SamplingParams, intops
from provider.llm import triton_ops as T
from provider.llm.backend import CPU, select_backend
from provider.llm.decoder import KVCache, forward
from provider.llm.intops import QLinear
from provider.llm.sampling import sample
from tests.llm import triton_cases

OPS = T.TritonOps()


@pytest.mark.parametrize("label", list(triton_cases.CASES))
def test_kernel_gives_the_cpu_paths_bytes(llm, label):
    case = triton_cases.CASES[label](llm.params)
    assert triton_cases.compare(case, OPS) == [], case.label


def test_the_cases_reach_the_edges(llm):
    """The inputs hit what they are there for: saturated and zero logits, residuals at
    +-RES_MAX, zero rows and heads (exponent 0, except v's), saturated scores, shifts past
    63 bits."""
    p, cases = llm.params, triton_cases.CASES
    (logits,) = cases["linear-head-9"](p).reference()
    assert (np.abs(logits[2]) == intops.LOGIT_MAX).all() and (logits[1] == 0).all()
    assert (logits[3] == 0).all() and np.abs(logits[0]).max() > 2**20
    (h,) = cases["linear-o-8"](p).reference()
    assert (np.abs(h[2]) == intops.RES_MAX).mean() > 0.25 and (np.abs(h[-1]) == intops.RES_MAX).any()
    x, e = cases["rmsnorm-attn-6"](p).reference()
    assert (x[1] == 0).all() and e[1] == 0 and (np.abs(x[2:]).max(axis=1) >= 2**14).all()
    x, e = cases["heads-5"](p).reference()
    assert (x[0, [0, 9, 12]] == 0).all() and e[0, 0] == e[0, 9] == 0 != e[0, 12]
    x, e = cases["swiglu-4"](p).reference()
    assert (x[1:3] == 0).all() and (e[1:3] == 0).all()
    q, eq, k, ek, v, ev = cases["attention-20-0-wide"](p).inputs
    shifts = -(eq[:, :, None] + ek.repeat(3, axis=1).T[None] + intops.SCORE_BITS)
    dots = np.einsum("ihd,jhd->ihj", q.astype(np.int64), k.repeat(3, axis=1).astype(np.int64))
    assert (np.abs(dots) * 2.0 ** np.maximum(-shifts, 0) > intops.SCORE_MAX).any()  # saturated
    assert (shifts >= 63).any() and np.ptp(ev) >= 63  # scores and weights shifted to 0
    assert np.abs(cases["attention-20-0-wide"](p).reference()[0]).max() > 0


def test_the_gpu_tiles_give_the_same_bytes(llm, monkeypatch):
    """The GPU's tiles (narrow columns, 64-row GEMM tiles, short key tiles) run in the
    interpreter on a few cases of each kernel: ragged edges the interpreter's wide tiles
    don't have. The head is cut to 300 rows (N not a multiple of any tile)."""
    for name, value in T.GPU_TILES.items():
        monkeypatch.setattr(T, name, value)
    p = llm.params
    head = QLinear(p.embed.q[:300], p.embed.d[:300], None, p.embed.shift)
    small_head = dataclasses.replace(p, embed=head)
    cases = [triton_cases.CASES[label](p) for label in (
        "linear-qkv-3", "linear-down-1", "linear-o-70", "rmsnorm-attn-6", "heads-5",
        "attention-3-5", "attention-37-60", "swiglu-4", "embed-5")]
    cases += [triton_cases.CASES[f"linear-head-{rows}"](small_head) for rows in (3, 9)]
    for case in cases:
        assert triton_cases.compare(case, T.TritonOps()) == [], case.label


def _steps(params, prompt, ops, steps):
    """Logits of the prompt's last position and of ``steps`` greedy decoding steps after it
    (KV cache), and the greedy ids."""
    cache = KVCache.empty(params, len(prompt) + steps, ops)
    logits = forward(params, [prompt], [cache], ops=ops)
    ids = [sample(logits[0], SamplingParams(), 0)]
    for step in range(steps):
        logits += forward(params, [[ids[-1]]], [cache], ops=ops)
        ids.append(sample(logits[-1], SamplingParams(), step + 1))
    return logits, ids


def test_generation_through_all_layers_gives_the_cpu_paths_logits_bytes(llm):
    """A 12-token prompt (the GEMM route), then two decoding steps (the GEMV route, the KV
    cache): the logits bytes of all 30 layers and the token ids are the CPU path's."""
    prompt = llm.prompt_ids("The old harbour town woke slowly. Fishermen carried nets")
    assert len(prompt) > T.GEMV_ROWS
    want, want_ids = _steps(llm.params, prompt, CPU, 2)
    got, got_ids = _steps(llm.params, prompt, OPS, 2)
    assert got_ids == want_ids
    assert [g.tobytes() for g in got] == [w.tobytes() for w in want]


def test_the_engine_on_the_triton_backend_generates_the_cpu_engines_answers(llm):
    """The model cut to two layers and the first 8192 tokens (the interpreter's time), as
    engines: prompts of other lengths batched (several sequences per decoding step,
    sampled and greedy), and teacher-forced logits of every position (the head as a GEMM)."""
    p, vocab = llm.params, 8192
    head = QLinear(p.embed.q[:vocab], p.embed.d[:vocab], None, p.embed.shift)
    params = dataclasses.replace(p, layers=p.layers[:2], embed=head,
                                 config=dataclasses.replace(p.config, vocab=vocab))
    cpu = LLMEngine(params, llm.tokenizer, llm.model_info)
    tri = LLMEngine(params, llm.tokenizer, llm.model_info, OPS)
    assert (cpu.backend, tri.backend) == ("cpu", "triton") and "triton" in tri.route
    prompts = ["Once upon a time, in a village by the sea,", [1, 2, 3]]
    sampling = [SamplingParams(temperature_milli=900, top_k=50, seed=3), SamplingParams()]
    assert tri.generate_batch(prompts, 3, sampling) == cpu.generate_batch(prompts, 3, sampling)
    ids = cpu.prompt_ids(prompts[0])
    assert len(ids) > T.GEMV_ROWS
    assert tri.logits(ids).tobytes() == cpu.logits(ids).tobytes()


def test_select_backend_chooses_cpu_or_triton(monkeypatch):
    assert select_backend("cpu") is CPU
    assert isinstance(select_backend("triton"), T.TritonOps)
    monkeypatch.setenv("VERINFER_BACKEND", "cpu")
    assert select_backend() is CPU
    monkeypatch.setenv("VERINFER_BACKEND", "gpu")
    with pytest.raises(BackendUnavailableError, match="VERINFER_BACKEND"):
        select_backend()
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        select_backend("tpu")


def test_kernels_refuse_bad_input(llm):
    dev = OPS.prepare(llm.params)
    x = torch.zeros(2, 576, dtype=torch.int16)
    with pytest.raises(ValueError, match="shape mismatch"):
        T.linear(x[:, :512], dev.layers[0].qkv)
    with pytest.raises(TypeError, match="dtype"):
        T.linear(x.int(), dev.layers[0].qkv)
    with pytest.raises(ValueError, match="positions outside"):
        T.qkv_heads(torch.zeros(1, 15 * 64, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
                    torch.tensor([intops.MAX_CONTEXT]), (1, 1, 1), dev.attention)
    k = torch.zeros(4, 3, 64, dtype=torch.int16)
    e = torch.zeros(4, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="beyond 4 cached keys"):
        T.attention(torch.zeros(2, 9, 64, dtype=torch.int16), torch.zeros(2, 9, dtype=torch.int64),
                    k, e, k, e, 3, dev.attention)
    with pytest.raises(ValueError, match="beyond int32"):
        w = llm.params.layers[0].q
        T.device_linear(QLinear(w.q, w.d << 8, w.m, w.shift), OPS.device)


def test_prepared_params_are_kept_per_model(llm):
    """``prepare`` builds a model's device copy once and keeps it while the model lives."""
    ops = T.TritonOps()
    params = dataclasses.replace(llm.params, layers=llm.params.layers[:1])
    first = ops.prepare(params)
    assert ops.prepare(params) is first
    other = dataclasses.replace(params)
    assert ops.prepare(other) is not first
    assert np.array_equal(first.layers[0].qkv.bias.cpu().numpy(),
                          ops.prepare(other).layers[0].qkv.bias.cpu().numpy())
