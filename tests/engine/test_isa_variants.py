"""Same bytes under every instruction-set variant the libraries can be forced into.

Providers run on different CPUs (Intel with AMX/VNNI, AMD EPYC with AVX2 only). One
machine can imitate the others: ATen, oneDNN, MKL, numba and numpy each take a variable
that caps the instruction set they dispatch to. Each variant runs the engine in a fresh
process (the libraries read the variables once, at load) on the shipped sentence set,
the self-test's probes and GEMM worst cases, and a sentence through the Triton
interpreter (in two variants: it is slow), and reports what each library says it runs.
A variant counts only if a library reports that its cap took effect; the bytes must be
the pinned ones in every variant that counts.

The oneDNN cap is also the proof that the variants are real: under
``ONEDNN_MAX_CPU_ISA=AVX2`` oneDNN's int8 linear (the engine's former route) saturates
16-bit pair sums, as on a CPU without VNNI, and the self-test refuses it.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from numpy._core import _multiarray_umath as numpy_dispatch

from tests.engine.conftest import SENTENCES
from tests.engine.test_quality import RESULTS_SHA256

REPO = Path(__file__).resolve().parents[2]

# Runs in each variant's process; prints one JSON line after the marker.
PROBE = r'''
import ctypes, hashlib, json, os, sys
import torch
from provider.engine import Engine, selftest

sentences = open(sys.argv[1], encoding="utf-8").read().splitlines()
cpu = Engine.load("cpu")  # runs the self-test: GEMM worst cases and the pinned probes
report = {"sentences": hashlib.sha256(b"".join(cpu.embed(sentences))).hexdigest()}
if os.environ.get("TRITON_INTERPRET") == "1":  # ~15 s a sentence: only in some variants
    interpreted = Engine.load("triton", self_test=False)
    report["triton_equals_cpu"] = interpreted.embed(sentences[:1]) == cpu.embed(sentences[:1])
report["aten"] = torch.backends.cpu.get_cpu_capability()
import numba, numpy
report["numba_cpu"] = numba.config.CPU_NAME or "host"  # our kernels' code generation target
report["numpy_avx2"] = numpy._core._multiarray_umath.__cpu_features__["AVX2"]
libtorch = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
report["mkl_cpu_type"] = libtorch.mkl_serv_cpu_detect()  # the code path MKL dispatches to
if hasattr(torch.ops.onednn, "qlinear_prepack"):  # ONEDNN_VERBOSE prints the ISA it runs
    w = torch.ops.onednn.qlinear_prepack(torch.full((1, 4), 127, dtype=torch.int8), [1, 4])
    report["onednn_2x127"] = int(torch.ops.onednn.qlinear_pointwise(
        torch.full((1, 4), 2, dtype=torch.int8), 1.0, 0, w, torch.ones(1),
        torch.zeros(1, dtype=torch.int64), None, 1.0, 0, torch.float32, "none", [], "").item())
print("REPORT " + json.dumps(report), flush=True)
'''

VARIANTS = {
    "native": {},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl-sse4_2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    # numba compiles our kernels for SSE2 x86-64 here (once: numba caches per CPU name),
    # numpy (the Triton interpreter's arithmetic) dispatches no SIMD beyond its baseline
    "all-lowest": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                   "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "NUMBA_CPU_NAME": "generic",
                   "NPY_DISABLE_CPU_FEATURES": " ".join(numpy_dispatch.__cpu_dispatch__)},
}
INTERPRETED = ("native", "all-lowest")  # variants that also run the Triton interpreter
ONEDNN_ISA = {"SSE41": "SSE4.1", "AVX2": "AVX2"}  # oneDNN's name for each cap in its verbose line


def _env(variant: dict, interpret: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ATEN_CPU", "ONEDNN_", "MKL_ENABLE", "DNNL_", "NUMBA_CPU",
                                "NPY_", "TRITON_INTERPRET"))}
    env.update(variant, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", ONEDNN_VERBOSE="1",
               VERINFER_BACKEND="cpu")
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return env


def _run(name: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, str(SENTENCES)], cwd=REPO,
                          env=_env(VARIANTS[name], name in INTERPRETED),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    isa = next((x.rsplit("isa:", 1)[1] for x in done.stdout.splitlines() if ",isa:" in x), "")
    return json.loads(line[len("REPORT "):]), isa


def _took_effect(name: str, variant: dict, report: dict, onednn_isa: str, native: dict) -> bool:
    """Whether a library named in the variant reports its cap (MKL names no ISA, only its
    code path: its cap counts if that path changed; on an AMD CPU MKL runs its generic
    path whatever the cap, so MKL-only variants count there as no effect)."""
    checks = []
    if "ATEN_CPU_CAPABILITY" in variant:
        checks.append(report["aten"].lower() == variant["ATEN_CPU_CAPABILITY"])
    if "ONEDNN_MAX_CPU_ISA" in variant:
        checks.append(onednn_isa.endswith(ONEDNN_ISA[variant["ONEDNN_MAX_CPU_ISA"]]))
    if "MKL_ENABLE_INSTRUCTIONS" in variant:
        checks.append(report["mkl_cpu_type"] != native["mkl_cpu_type"])
    if "NUMBA_CPU_NAME" in variant:
        checks.append(report["numba_cpu"] == variant["NUMBA_CPU_NAME"])
    if "NPY_DISABLE_CPU_FEATURES" in variant:
        checks.append(not report["numpy_avx2"])
    return any(checks)


@pytest.mark.slow
def test_same_bytes_under_every_instruction_set_variant():
    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(VARIANTS, pool.map(_run, VARIANTS)))
    native = runs["native"][0]
    lines, effective = [], []
    for name, (report, isa) in runs.items():
        took = name == "native" or _took_effect(name, VARIANTS[name], report, isa, native)
        lines.append(f"{name:13s} {'in effect' if took else 'no effect':9s} aten={report['aten']}"
                     f" onednn={isa!r} int8 2x127x4={report.get('onednn_2x127')}"
                     f" mkl={report['mkl_cpu_type']} numba={report['numba_cpu']}"
                     f" numpy-avx2={report['numpy_avx2']} {report['sentences'][:16]}")
        if took:
            effective.append(name)
            assert report["sentences"] == RESULTS_SHA256, name
            assert report.get("triton_equals_cpu", True), name
    print("\n".join(lines))
    # ATen's, oneDNN's, numba's and numpy's caps take effect on every x86 CPU with AVX2:
    # the test is never reduced to the native run alone
    assert {"aten-default", "onednn-avx2", "onednn-sse41", "all-lowest"} <= set(effective), \
        "\n".join(lines)
    assert all("triton_equals_cpu" in runs[name][0] for name in INTERPRETED)
    if "onednn_2x127" in native:  # the cap reproduces a CPU without VNNI: 2 x 127 x 4 saturates
        assert runs["onednn-avx2"][0]["onednn_2x127"] == 510, "\n".join(lines)


ONEDNN_GEMM = r'''
import torch
from provider.engine import cpu_kernels, selftest

def onednn_gemm(self, x):
    """The engine's former route: x = 256 * hi + lo as int8 planes, oneDNN's int8 linear."""
    w = self.wt.t().to(torch.int8).contiguous()
    packed = torch.ops.onednn.qlinear_prepack(w, [x.shape[0], w.shape[1]])
    planes = ((x.to(torch.int32) >> 8).to(torch.int8), ((x.to(torch.int32) & 255) - 128).to(torch.int8))
    hi, lo = (torch.ops.onednn.qlinear_pointwise(
        p.contiguous(), 1.0, 0, packed, torch.ones(self.n), torch.zeros(self.n, dtype=torch.int64),
        None, 1.0, 0, torch.float32, "none", [], "").double()
        for p in planes)
    return (256 * hi + lo + 128 * w.double().sum(1)).numpy()

cpu_kernels.PackedLinear.gemm = onednn_gemm
selftest.check_gemm()
'''


@pytest.mark.skipif(not hasattr(torch.ops.onednn, "qlinear_prepack"), reason="torch without oneDNN")
def test_self_test_refuses_onednn_int8_without_vnni():
    """oneDNN's int8 linear capped at AVX2 (no VNNI) saturates: the self-test names it."""
    done = subprocess.run([sys.executable, "-c", ONEDNN_GEMM], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=_env({"ONEDNN_MAX_CPU_ISA": "AVX2"}))
    assert done.returncode != 0
    assert "SelfTestError: the CPU GEMM is not exact on this host: K = 4, case" \
        in done.stderr, done.stderr[-3000:]
