"""Every Triton kernel variant the decoder launches compiles for A100 (sm80) and H100
(sm90), fits in shared memory and spills nothing, without a GPU; the GEMM multiplies on
int8 tensor cores, attention's exact float64 dots and RMSNorm's square root compile to
IEEE float64 instructions.

This file also runs as a script, once per target (``tests/support/triton_compile.py``
explains how it compiles without a GPU): the decoder's forward, with the model's real
shapes (its first layer; every layer launches the same variants), goes through Triton's
launcher with every launch compiled instead of run, in the runs below.
"""
import sys

import pytest

from tests.support.triton_compile import (ARCHS, MMA_SYNC_S8, SHARED_LIMIT, WGMMA_S8,
                                          compile_variants, keys, run_variants, spills)

pytestmark = pytest.mark.slow

KERNELS = {"_embed_kernel", "_rmsnorm_kernel", "_gemv_kernel", "_gemm_kernel", "_heads_kernel",
           "_attention_kernel", "_attention_out_kernel", "_swiglu_kernel"}


def launch_forward() -> None:
    """Script body. Specialisation splits launches by integer arguments equal to 1 (a
    constant) or divisible by 16 (a hint): rows (1, 3, 9, 16, 32), positions (start 0, 1,
    9, 32) and query counts (1, 3 and 9: attention's decode and prefill tiles, 32: two
    query blocks), all logits (the head as a GEMM) or the last (a GEMV)."""
    import torch

    from provider.llm import quantize, triton_ops
    from provider.llm.decoder import KVCache, forward
    from provider.llm.gguf_model import GGUFModel

    params = quantize.quantize_model(GGUFModel(), layers=1)
    ops = triton_ops.TritonOps(device=torch.device("cpu"))

    def run(prompts, caches=None, all_logits=False):
        caches = caches or [KVCache.empty(params, 64, ops) for _ in prompts]
        forward(params, prompts, caches, all_logits, ops)
        return caches

    a = run([[5] * 9], all_logits=True)   # prefill GEMM (9 rows), attention from 0
    run([[6]], a)                          # decode GEMV (1 row) at 9
    b = run([[5]])                         # a one-token prompt
    run([[6]], b)                          # decode at 1
    c = run([[5] * 32], all_logits=True)  # 32 rows: two query blocks
    run([[6]], c)                          # decode at 32
    run([[7], [7], [7]], a + b + c)        # batched decode (3 rows)
    run([[8] * 3], a)                      # a chunk of 3 after a cache
    run([[9]] * 16, [KVCache.empty(params, 8, ops) for _ in range(16)])  # 16 rows


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[int, list[dict]]:
    """{arch: compiled variants}, one process per target, both at once."""
    return run_variants(__file__, tmp_path_factory.mktemp("triton-cache"), timeout=900)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_variant_the_decoder_launches_is_compiled(variants, arch):
    found = variants[arch]
    assert {v["kernel"] for v in found} == KERNELS
    # GEMV: Q4_1 (2 halves) and Q8_0 (1), plain (q|k|v, gate|up), residual add, logits;
    # one row (a constant) or a few
    assert keys(found, "_gemv_kernel", "HALVES", "EPILOGUE") == {(2, 0), (2, 1), (1, 2)}
    assert keys(found, "_gemv_kernel", "M") == {1, "i32"} or \
        {m for (m,) in keys(found, "_gemv_kernel", "M")} == {1, "i32"}
    # GEMM: the same, with the head's logits (all positions); rows 16k or not
    assert keys(found, "_gemm_kernel", "HALVES", "EPILOGUE") == {(2, 0), (2, 1), (1, 2)}
    assert {m for (m,) in keys(found, "_gemm_kernel", "M")} == {"i32", "i32:16"}
    # attention: both query tiles; one query (a constant), a few, 16k; start 0/1/other
    assert {q for (q,) in keys(found, "_attention_kernel", "BLOCK_Q")} == {4, 16}
    assert {n for (n,) in keys(found, "_attention_kernel", "Lq")} == {1, "i32", "i32:16"}
    assert {s for (s,) in keys(found, "_attention_kernel", "start")} >= {1, "i32", "i32:16"}
    for kernel, count in (("_rmsnorm_kernel", "rows"), ("_embed_kernel", "rows"),
                          ("_swiglu_kernel", "rows"), ("_attention_out_kernel", "rows")):
        assert {n for (n,) in keys(found, kernel, count)} == {1, "i32", "i32:16"}, kernel


@pytest.mark.parametrize("arch", ARCHS)
def test_compiled_with_the_launchers_specialisation(variants, arch):
    """Pointers carry the 16-byte hint and the model's dimensions are 16-multiples: the
    arguments went through the launcher's specialisation, not a plain type mangling."""
    for v in variants[arch]:
        a = v["args"]
        pointers = [t for t in a.values() if isinstance(t, str) and t.startswith("*")]
        assert pointers and all(t.endswith(":16") for t in pointers), a
        if v["kernel"] in ("_gemv_kernel", "_gemm_kernel"):
            assert {a["N"], a["K"], a["stride_q"], a["stride_y"]} == {"i32:16"}, a


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_memory_fits_and_nothing_spills(variants, arch):
    for v in variants[arch]:
        name = f"sm{arch} {v['kernel']} {v['args']}"
        assert v["shared"] <= SHARED_LIMIT[arch], f"{name}: {v['shared']} bytes of shared memory"
        assert spills(v) == [("0", "0")], f"{name}:\n{v['ptxas']}"


@pytest.mark.parametrize("arch", ARCHS)
def test_dots_and_square_roots_compile_to_exact_instructions(variants, arch):
    """The GEMM's dots are s8 x s8 -> s32 tensor-core instructions (sm90: wgmma on its
    64-row tiles); attention's dots are float64 (exact: every partial sum an integer
    below 2**53), whatever instruction Triton picks; RMSNorm's root is sqrt.rn.f64 (IEEE,
    correctly rounded: the integer square root's correction step relies on it). The
    other kernels have no dot."""
    for v in variants[arch]:
        ops, name = v["tensor_core"], f"sm{arch} {v['kernel']} {v['args']}"
        if v["kernel"] == "_gemm_kernel":
            pattern = WGMMA_S8 if arch == 90 else MMA_SYNC_S8
            assert ops and all(pattern.fullmatch(op) for op in ops), f"{name}: {ops}"
        elif v["kernel"] == "_attention_kernel":
            assert all(op.endswith(".f64") for op in ops), f"{name}: {ops}"
        else:
            assert ops == [], name
        if v["kernel"] == "_rmsnorm_kernel":
            assert v["sqrt"] == ["sqrt.rn.f64"], f"{name}: {v['sqrt']}"


if __name__ == "__main__":
    compile_variants(int(sys.argv[1]), launch_forward)
