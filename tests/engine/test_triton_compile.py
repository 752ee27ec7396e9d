"""Every Triton kernel variant the engine launches compiles for A100 (sm80) and H100
(sm90), fits in shared memory, spills nothing and multiplies on int8 tensor cores,
all without a GPU.

This file also runs as a script, once per target (``tests/support/triton_compile.py``
explains how it compiles without a GPU): the model's forward pass (and
``quantize_rows``, which the forward doesn't use) goes through Triton's launcher with
every launch compiled instead of run. The tests below check each reported variant.
"""
import sys

import pytest

from tests.support.triton_compile import (ARCHS, MMA_SYNC_S8, SHARED_LIMIT, WGMMA_S8,
                                          compile_variants, keys, run_variants, spills)

# (batch, padded length) of the forward passes compiled. Specialisation splits the
# launches by rows = batch * length (linear, LayerNorm) and length (attention, pooling):
# divisible by 16 or not, and attention's tile (32 up to length 32, then 64). These
# four shapes reach every class the engine can launch (a job has >= 3 tokens, so
# neither is ever 1).
SHAPES = [(3, 7), (2, 32), (3, 33), (2, 48)]

pytestmark = pytest.mark.slow


def launch_forward() -> None:
    """Script body: the launches of the engine's forward at every shape of SHAPES."""
    import torch

    from provider.engine import quantize, triton_ops, weights
    from provider.engine.model import forward

    files = weights.locate()
    model = quantize.quantize_model(weights.load_weights(files), weights.load_config(files))
    for batch, length in SHAPES:  # the triton_ops module has the five ops `forward` calls
        forward(model, triton_ops, torch.zeros(batch, length, dtype=torch.int64),
                torch.ones(batch, length, dtype=torch.bool))
    x = torch.ones(36, 384, dtype=torch.int16)
    triton_ops.quantize_rows(x)
    triton_ops.quantize_rows(x.int())


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[int, list[dict]]:
    """{arch: compiled variants}, one process per target, both at once."""
    return run_variants(__file__, tmp_path_factory.mktemp("triton-cache"), timeout=600)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_variant_the_model_launches_is_compiled(variants, arch):
    found = variants[arch]
    # divisible by 16 or not: the two specialisations of a row or length count
    counts = {"i32", "i32:16"}
    # QKV projection (int16 out, no GELU), FFN in (int16, GELU), residual branches (int32)
    outputs = {("*i16:16", False), ("*i16:16", True), ("*i32:16", False)}
    assert keys(found, "_linear_kernel", "y_ptr", "HAS_GELU", "M") >= {
        (*out, m) for out in outputs for m in counts}
    assert keys(found, "_attention_kernel", "BLOCK_Q", "L") >= {
        (block, n) for block in (32, 64) for n in counts}
    # the embeddings' int32 + int32 and the layers' int32 + int16 residual adds
    assert keys(found, "_add_layernorm_kernel", "r_ptr", "rows") >= {
        (r, n) for r in ("*i32:16", "*i16:16") for n in counts}
    assert keys(found, "_mean_pool_kernel", "L") >= {(n,) for n in counts}
    assert keys(found, "_quantize_rows_kernel", "x_ptr") == {("*i16:16",), ("*i32:16",)}


@pytest.mark.parametrize("arch", ARCHS)
def test_compiled_with_the_launchers_specialisation(variants, arch):
    """Unit strides are constants and the 16-multiples carry the hint: the arguments went
    through the launcher's specialisation, not a plain type mangling."""
    for v in variants[arch]:
        pointers = [t for t in v["args"].values() if isinstance(t, str) and t.startswith("*")]
        assert all(t.endswith(":16") for t in pointers), v["args"]
        if v["kernel"] == "_linear_kernel":
            a = v["args"]
            assert (a["stride_xk"], a["stride_wk"]) == (1, 1), a
            assert {a["N"], a["K"], a["stride_xm"], a["stride_wn"], a["stride_ym"]} == {"i32:16"}, a


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_memory_fits_and_nothing_spills(variants, arch):
    for v in variants[arch]:
        name = f"sm{arch} {v['kernel']} {v['args']}"
        assert v["shared"] <= SHARED_LIMIT[arch], f"{name}: {v['shared']} bytes of shared memory"
        assert spills(v) == [("0", "0")], f"{name}:\n{v['ptxas']}"


@pytest.mark.parametrize("arch", ARCHS)
def test_dots_run_on_int8_tensor_cores(variants, arch):
    """sm80: every dot is mma.sync s8.s8.s32. sm90: the 64-row tiles (linear, attention
    from 33 tokens) use wgmma s8, whose warpgroup tile is 64 rows; attention's 32-row
    tile (up to 32 tokens) can't fill it, so Triton emits mma.sync there, which Hopper
    runs too. The row-wise kernels have no dot."""
    for v in variants[arch]:
        ops, name = v["tensor_core"], f"sm{arch} {v['kernel']} {v['args']}"
        if v["kernel"] not in ("_linear_kernel", "_attention_kernel"):
            assert ops == [], name
            continue
        wgmma = arch == 90 and (v["kernel"] == "_linear_kernel" or v["args"]["BLOCK_Q"] == 64)
        pattern = WGMMA_S8 if wgmma else MMA_SYNC_S8
        assert ops and all(pattern.fullmatch(op) for op in ops), f"{name}: {ops}"


if __name__ == "__main__":
    compile_variants(int(sys.argv[1]), launch_forward)
