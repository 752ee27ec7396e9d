"""Every Triton kernel variant the engine launches compiles for A100 (sm80) and H100
(sm90), fits in shared memory, spills nothing and multiplies on int8 tensor cores,
all without a GPU.

The interpreter runs the kernels' arithmetic but never lowers them, so a kernel that
the GPU compiler rejects (an int8 ``tl.dot`` shape, a bool mask load, an int64
conversion), that needs more shared memory than the GPU has, or that spills registers
would still pass the bit-equality tests. So this file also runs as a script, in a fresh
process per target where the kernels are real ``JITFunction``s: the model's forward
pass (and ``quantize_rows``, which the forward doesn't use) runs on CPU tensors through
Triton's own launcher, ``JITFunction.run``, with ``warmup=True``. That specialises each
call exactly as a launch on the device does (integer arguments equal to 1 become
constants, integers and pointers divisible by 16 get a ``tt.divisibility`` hint), compiles
each new variant and launches nothing; a stand-in driver only names the target. Each
variant is reported with its specialisation, ptxas' resource log and the tensor-core
instructions of its PTX, and the tests below check them.
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCHS = (80, 90)
# Shared memory one block may use (the opt-in maximum): A100 163 KiB, H100 227 KiB.
SHARED_LIMIT = {80: 166912, 90: 232448}
# (batch, padded length) of the forward passes compiled. Specialisation splits the
# launches by rows = batch * length (linear, LayerNorm) and length (attention, pooling):
# divisible by 16 or not, and attention's tile (32 up to length 32, then 64). These
# four shapes reach every class the engine can launch (a job has >= 3 tokens, so
# neither is ever 1).
SHAPES = [(3, 7), (2, 32), (3, 33), (2, 48)]
# Tensor-core instructions in PTX: Ampere's warp-level mma.sync, Hopper's warpgroup wgmma.
TENSOR_CORE_OP = re.compile(r"\b(?:mma|wgmma\.mma_async)\.[\w.]+")
# s8 x s8 into s32. ``.satfinite`` clamps an int32 accumulator that overflows; no dot
# here comes near 2**31 (triton_ops bounds each one), so it never changes a result.
MMA_SYNC_S8 = re.compile(r"mma\.sync\.aligned\.m16n8k32\.row\.col\.satfinite\.s32\.s8\.s8\.s32")
WGMMA_S8 = re.compile(r"wgmma\.mma_async\.sync\.aligned\.m64n\d+k32\.s32\.s8\.s8")

pytestmark = pytest.mark.slow


def compile_variants(arch: int) -> None:
    """Script body: print one JSON line per kernel variant compiled for sm``arch``."""
    import torch
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver
    from triton.runtime.jit import JITFunction

    from provider.engine import quantize, triton_ops, weights
    from provider.engine.model import forward

    class TargetDriver:
        """All that JITFunction.run asks a driver before it compiles."""

        def get_current_device(self):
            return 0

        def get_current_stream(self, device):
            return 0

        def get_current_target(self):
            return GPUTarget("cuda", arch, 32)

    driver.set_active(TargetDriver())
    knobs.nvidia.dump_ptxas_log = True  # make_cubin prints ptxas -v: registers, spills
    launch = JITFunction.run

    def compile_only(fn, *args, grid, warmup, **kwargs):
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            kernel = launch(fn, *args, grid=grid, warmup=True, **kwargs)
        if log.getvalue():  # compiled now: a variant the launcher had not built yet
            print(json.dumps(report(fn, kernel, log.getvalue())), flush=True)
        return kernel

    JITFunction.run = compile_only
    files = weights.locate()
    model = quantize.quantize_model(weights.load_weights(files), weights.load_config(files))
    for batch, length in SHAPES:  # the triton_ops module has the five ops `forward` calls
        forward(model, triton_ops, torch.zeros(batch, length, dtype=torch.int64),
                torch.ones(batch, length, dtype=torch.bool))
    x = torch.ones(36, 384, dtype=torch.int16)
    triton_ops.quantize_rows(x)
    triton_ops.quantize_rows(x.int())


def report(fn, kernel, ptxas_log: str) -> dict:
    """A variant's specialisation, as ``{arg: constant, or type with ':16' if it carries
    the divisibility hint}``, its resources and tensor-core instructions."""
    src = kernel.src
    args = {}
    for i, name in enumerate(fn.arg_names):
        if (i,) in src.constants:
            args[name] = src.constants[(i,)]
        else:
            hint = ["tt.divisibility", 16] in src.attrs.get((i,), [])
            args[name] = src.signature[name] + (":16" if hint else "")
    return {"kernel": fn.__name__, "args": args, "shared": kernel.metadata.shared,
            "ptxas": ptxas_log,
            "tensor_core": sorted(set(TENSOR_CORE_OP.findall(kernel.asm["ptx"])))}


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[int, list[dict]]:
    """{arch: compiled variants}, one process per target, both at once."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(REPO), TRITON_DEFAULT_FP_FUSION="1",
               # a fresh cache: every variant is compiled here, so ptxas logs it
               TRITON_CACHE_DIR=str(tmp_path_factory.mktemp("triton-cache")))
    procs = {arch: subprocess.Popen([sys.executable, __file__, str(arch)], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for arch in ARCHS}
    outputs = {arch: proc.communicate(timeout=600) for arch, proc in procs.items()}
    for arch, (_, err) in outputs.items():
        assert procs[arch].returncode == 0, f"sm{arch}:\n{err[-4000:]}"
    return {arch: [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            for arch, (out, _) in outputs.items()}


def keys(variants: list[dict], kernel: str, *names: str) -> set[tuple]:
    return {tuple(v["args"][n] for n in names) for v in variants if v["kernel"] == kernel}


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
        spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", v["ptxas"])
        assert spills == [("0", "0")], f"{name}:\n{v['ptxas']}"


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
    compile_variants(int(sys.argv[1]))
