"""Compiling Triton kernels for A100 (sm80) and H100 (sm90) without a GPU: the harness
that tests/engine/test_triton_compile.py (MiniLM) and tests/llm/test_triton_compile.py
(the decoder) share.

The interpreter runs the kernels' arithmetic but never lowers them, so a kernel that the
GPU compiler rejects (an int8 ``tl.dot`` shape, a bool mask load, an int64 conversion),
that needs more shared memory than the GPU has, or that spills registers would still
pass the bit-equality tests. So each test file also runs as a script, in a fresh process
per target where the kernels are real ``JITFunction``s (no ``TRITON_INTERPRET``): its
forward pass runs on CPU tensors through Triton's own launcher, ``JITFunction.run``, with
``warmup=True``. That specialises each call exactly as a launch on the device does
(integer arguments equal to 1 become constants, integers and pointers divisible by 16 get
a ``tt.divisibility`` hint), compiles each new variant and launches nothing (outputs stay
uninitialised, which no host code reads); a stand-in driver only names the target. Each
variant is reported with its specialisation, ptxas' resource log and the tensor-core and
square-root instructions of its PTX.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCHS = (80, 90)
# Shared memory one block may use (the opt-in maximum): A100 163 KiB, H100 227 KiB.
SHARED_LIMIT = {80: 166912, 90: 232448}
# Tensor-core instructions in PTX: Ampere's warp-level mma.sync, Hopper's warpgroup wgmma.
TENSOR_CORE_OP = re.compile(r"\b(?:mma|wgmma\.mma_async)\.[\w.]+")
# s8 x s8 into s32. ``.satfinite`` clamps an int32 accumulator that overflows; no dot
# here comes near 2**31 (the kernels bound each one), so it never changes a result.
MMA_SYNC_S8 = re.compile(r"mma\.sync\.aligned\.m16n8k32\.row\.col\.satfinite\.s32\.s8\.s8\.s32")
WGMMA_S8 = re.compile(r"wgmma\.mma_async\.sync\.aligned\.m64n\d+k32\.s32\.s8\.s8")
SQRT_OP = re.compile(r"\bsqrt\.[\w.]+")
SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def compile_variants(arch: int, body: Callable[[], None]) -> None:
    """Script side: run ``body`` (which launches kernels on CPU tensors) with every
    launch compiled for sm``arch`` instead, printing one JSON line per new variant."""
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver
    from triton.runtime.jit import JITFunction

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
    body()


def report(fn, kernel, ptxas_log: str) -> dict:
    """A variant's specialisation, as ``{arg: constant, or type with ':16' if it carries
    the divisibility hint}``, its resources and its tensor-core and sqrt instructions."""
    src = kernel.src
    args = {}
    for i, name in enumerate(fn.arg_names):
        if (i,) in src.constants:
            args[name] = src.constants[(i,)]
        else:
            hint = ["tt.divisibility", 16] in src.attrs.get((i,), [])
            args[name] = src.signature[name] + (":16" if hint else "")
    ptx = kernel.asm["ptx"]
    return {"kernel": fn.__name__, "args": args, "shared": kernel.metadata.shared,
            "ptxas": ptxas_log, "tensor_core": sorted(set(TENSOR_CORE_OP.findall(ptx))),
            "sqrt": sorted(set(SQRT_OP.findall(ptx)))}


def run_variants(script: str | Path, cache_dir: Path,
                 timeout: float = 900) -> dict[int, list[dict]]:
    """Test side: ``python script <arch>`` for every target at once (each compiles in a
    fresh Triton cache, so ptxas logs every variant); {arch: the variants reported}."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(REPO), TRITON_DEFAULT_FP_FUSION="1")
    procs = {}
    for arch in ARCHS:
        env_arch = {**env, "TRITON_CACHE_DIR": str(cache_dir / f"sm{arch}")}
        procs[arch] = subprocess.Popen([sys.executable, str(script), str(arch)], cwd=REPO,
                                       env=env_arch, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    outputs = {arch: proc.communicate(timeout=timeout) for arch, proc in procs.items()}
    for arch, (_, err) in outputs.items():
        assert procs[arch].returncode == 0, f"sm{arch}:\n{err[-4000:]}"
    return {arch: [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            for arch, (out, _) in outputs.items()}


def keys(variants: list[dict], kernel: str, *names: str) -> set[tuple]:
    """The distinct values of arguments ``names`` over a kernel's variants."""
    return {tuple(v["args"][n] for n in names) for v in variants if v["kernel"] == kernel}


def spills(variant: dict) -> list[tuple[str, str]]:
    """ptxas' (spill stores, spill loads) lines of a variant: [("0", "0")] when clean."""
    return SPILLS.findall(variant["ptxas"])
