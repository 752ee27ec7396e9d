"""The first thing to run on a GPU: does this machine's Triton path give the CPU's bytes?

    python -m bench.gpu_check        (or ./verinfer.sh gpu-check: setup, then this)

Meant for the opening minutes of a short GPU slot (a few minutes on one GPU):
1. versions: torch, triton, CUDA, the driver, the device and its compute capability;
2. the settings as the engines leave them once loaded: TF32 off for cuBLAS and cuDNN
   (the Triton path multiplies integers only, but the engine turns TF32 off at load so
   that no float op in a provider's process ever rounds to 10 bits);
3. every Triton op, compiled on this device, against ``intops`` on the CPU: every case
   of tests/engine/cases.py that the interpreter tests, and its large ones (the model's
   shapes at the int16 extremes, attention at 1, 32, 33, 128 and 256 tokens);
4. the whole model, Engine.load("triton") against Engine.load("cpu"), on every shipped
   sentence (tests/data/sentences.txt): batched, the batch reversed, and each alone;
5. the LLM decoder's kernels against its CPU path: every case of tests/llm/triton_cases.py
   (the model's shapes and weights, int16 extremes, saturating exponents, 2048 keys)
   and its large ones; then LLMEngine.load("triton") (its self-test compares the pinned
   probe logits) against the CPU engine: a chat prompt's logits at every position, a
   greedy and a sampled answer, three prompts batched against each alone;
6. every kernel variant compiled on the device: no local memory (register spills).
What compiles for sm80 and sm90 (shared memory, spills, int8 tensor-core instructions)
is checked without a GPU by tests/engine/test_triton_compile.py and
tests/llm/test_triton_compile.py.

Prints a pass/fail table. Exit status: 0 when everything is identical, 1 on any
mismatch or error, 3 (``NO_CUDA``) when torch sees no CUDA device: nothing was checked.
Run it from the repository root (it imports the cases from tests/).
"""
from __future__ import annotations

import ctypes
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import triton
from rich.console import Console
from rich.table import Table
from triton.runtime.jit import KernelInterface

from provider.engine import Engine, intops, triton_ops
from provider.engine.model import to_device
from provider.llm import LLMEngine, SamplingParams
from provider.llm import triton_ops as llm_triton_ops
from tests.engine import cases
from tests.llm import triton_cases

SENTENCES = Path(__file__).resolve().parents[1] / "tests" / "data" / "sentences.txt"
NO_CUDA = 3


@dataclass(frozen=True)
class Row:
    check: str
    passed: bool
    detail: str


def checked(check: str, run) -> Row:
    """``run()``'s row, or a failed one naming the exception: one crash must not hide
    the other checks' results."""
    try:
        return run()
    except Exception as exc:
        return Row(check, False, f"{type(exc).__name__}: {exc}")


def compare(case: cases.Case, ops) -> Row:
    """``case`` on ``ops`` (on its device) against ``intops`` on the CPU: same dtype,
    shape and bits for every output tensor."""
    want = getattr(intops, case.op)(*case.args)
    got = getattr(ops, case.op)(*to_device(case.args, ops.device))
    wants = want if isinstance(want, tuple) else (want,)
    gots = got if isinstance(got, tuple) else (got,)
    problems = []
    for g, w in zip(gots, wants, strict=True):
        g = g.cpu()
        if (g.dtype, g.shape) != (w.dtype, w.shape):
            problems.append(f"{g.dtype} {tuple(g.shape)}, expected {w.dtype} {tuple(w.shape)}")
        elif bad := int((g != w).sum()):
            problems.append(f"{bad} of {w.numel()} elements differ")
    values = sum(w.numel() for w in wants)
    return Row(f"{case.op}: {case.label}", not problems,
               "; ".join(problems) or f"identical ({values} values)")


def model_rows(gpu, cpu, sentences: list[str]) -> list[Row]:
    """``gpu.embed`` against ``cpu.embed`` of the whole batch: batched, the batch
    reversed, and each sentence alone (batch composition must not change a byte)."""
    want = cpu.embed(sentences)
    runs = {"batched": lambda: gpu.embed(sentences),
            "batch reversed": lambda: gpu.embed(sentences[::-1])[::-1],
            "each alone": lambda: [gpu.embed([s])[0] for s in sentences]}

    def row(check, run):
        got = run()
        bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        detail = f"{len(bad)} differ, the first on line {bad[0] + 1}" if bad else "identical bytes"
        return Row(check, not bad, detail)

    rows = []
    for name, run in runs.items():
        check = f"model: {len(sentences)} sentences, {name}"
        rows.append(checked(check, lambda: row(check, run)))
    return rows


def llm_op_rows(params, ops) -> list[Row]:
    """Every case of tests/llm/triton_cases.py (and its large ones) on ``ops``' device
    against the decoder's CPU path."""
    rows = []
    for label, build in {**triton_cases.CASES, **triton_cases.LARGE}.items():
        def run(label=label, build=build):
            case = build(params)
            problems = triton_cases.compare(case, ops)
            return Row(f"llm {case.label}", not problems,
                       "; ".join(problems) or f"identical ({triton_cases.values(case)} values)")
        rows.append(checked(f"llm {label}", run))
    return rows


LLM_PROMPTS = [[{"role": "user", "content": "What is the capital of France?"}],
               "The old harbour town woke slowly. Fishermen carried nets",
               [{"role": "user", "content": "Write a haiku about integers."}]]


def llm_model_rows(gpu: LLMEngine, cpu: LLMEngine) -> list[Row]:
    """The Triton engine against the CPU engine: teacher-forced logits of a chat prompt,
    greedy and sampled answers, prompts batched against each alone."""
    sampled = SamplingParams(temperature_milli=800, top_k=40, seed=7)
    ids = cpu.prompt_ids(LLM_PROMPTS[0])

    def same(check, got, want, what):
        bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        return Row(check, not bad, f"{len(bad)} of {len(want)} {what} differ" if bad
                   else f"identical ({len(want)} {what})")

    checks = {
        "llm model: chat prompt logits, every position": lambda c: same(
            c, [r.tobytes() for r in gpu.logits(ids)], [r.tobytes() for r in cpu.logits(ids)],
            "positions"),
        "llm model: greedy answer, 32 tokens": lambda c: same(
            c, gpu.generate(LLM_PROMPTS[0], 32), cpu.generate(LLM_PROMPTS[0], 32), "ids"),
        "llm model: sampled answer, 32 tokens": lambda c: same(
            c, gpu.generate(LLM_PROMPTS[2], 32, sampled), cpu.generate(LLM_PROMPTS[2], 32, sampled),
            "ids"),
        "llm model: 3 prompts batched vs each alone": lambda c: same(
            c, gpu.generate_batch(LLM_PROMPTS, 16), [cpu.generate(p, 16) for p in LLM_PROMPTS],
            "answers"),
    }
    return [checked(check, lambda check=check, run=run: run(check)) for check, run in checks.items()]


def settings_rows() -> list[Row]:
    tf32 = {"torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32}
    on = [name for name, value in tf32.items() if value]
    return [Row("TF32 off (cuBLAS matmul, cuDNN)", not on, "on: " + ", ".join(on) if on else "off")]


def kernels() -> list[tuple[str, KernelInterface]]:
    """[("engine _linear_kernel", its kernel), ...] of the MiniLM engine and the LLM."""
    return [(f"{module.__name__.split('.')[1]} {name}", fn)
            for module in (triton_ops, llm_triton_ops) for name, fn in sorted(vars(module).items())
            if isinstance(fn, KernelInterface) and name.endswith("_kernel")]


def kernel_rows() -> list[Row]:
    """Each kernel's variants compiled on this device (the checks above compiled them):
    the driver's local memory per thread must be 0, i.e. nothing spilled."""
    device = triton.runtime.driver.active.get_current_device()
    rows = []
    for name, fn in kernels():
        compiled = list(fn.device_caches[device][0].values())
        if not compiled:
            rows.append(Row(f"kernel {name}", False, "never compiled: the checks missed it"))
            continue
        spilled = sum(k.n_spills > 0 for k in compiled)
        rows.append(Row(f"kernel {name}", not spilled,
                        f"{len(compiled)} variants, {spilled} with local memory, at most "
                        f"{max(k.n_regs for k in compiled)} registers and "
                        f"{max(k.metadata.shared for k in compiled)} bytes of shared memory"))
    return rows


def driver_version() -> str:
    """The NVIDIA driver's release (nvidia-smi) and the CUDA version it supports."""
    try:
        release = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        release = f"nvidia-smi failed ({exc})"
    version = ctypes.c_int()
    ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version))
    return f"{release or '?'}, CUDA {version.value // 1000}.{version.value % 1000 // 10}"


def versions_table() -> Table:
    major, minor = torch.cuda.get_device_capability()
    target = triton.runtime.driver.active.get_current_target()
    table = Table(title="gpu-check: this machine", show_header=False)
    for key, value in [("python", sys.version.split()[0]), ("torch", torch.__version__),
                       ("triton", f"{triton.__version__} (target {target.backend} {target.arch})"),
                       ("CUDA of torch's build", str(torch.version.cuda)),
                       ("driver", driver_version()),
                       ("device", f"{torch.cuda.get_device_name()}, compute capability "
                                  f"{major}.{minor} ({torch.cuda.device_count()} visible)")]:
        table.add_row(key, value)
    return table


def main() -> int:
    # a slot's log is a file: no line breaks inside messages, a table wider than 80 columns
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
    if not torch.cuda.is_available():
        console.print(f"gpu-check: torch {torch.__version__} (CUDA build {torch.version.cuda}) "
                      f"sees no CUDA device; nothing was checked (exit status {NO_CUDA}).")
        return NO_CUDA
    console.print(versions_table())
    sentences = SENTENCES.read_text(encoding="utf-8").splitlines()
    try:
        engines, rows = (Engine.load("triton"), Engine.load("cpu")), []
    except Exception as exc:  # reported; the op checks still run
        engines, rows = None, [Row("engines load (triton, cpu)", False, f"{type(exc).__name__}: {exc}")]
    rows += settings_rows()
    ops = triton_ops.TritonOps()
    op_cases = cases.all_cases() + cases.large_cases()
    console.print(f"ops: {len(op_cases)} cases on {ops.device} against intops on the CPU ...")
    rows += [checked(f"{c.op}: {c.label}", lambda c=c: compare(c, ops)) for c in op_cases]
    if engines:
        console.print(f"model: {len(sentences)} sentences, batched, reversed and alone ...")
        rows += model_rows(*engines, sentences)
    console.print("llm: loading the decoder on Triton (self-test included) and on the CPU ...")
    try:
        llm_cpu = LLMEngine.load(backend="cpu")
        llm_ops = llm_triton_ops.TritonOps()
        console.print(f"llm ops: {len(triton_cases.CASES) + len(triton_cases.LARGE)} cases on "
                      f"{llm_ops.device} against the CPU path ...")
        rows += llm_op_rows(llm_cpu.params, llm_ops)
        llm_gpu = LLMEngine.load(backend="triton")
        console.print("llm model: logits, answers, batches ...")
        rows += llm_model_rows(llm_gpu, llm_cpu)
    except Exception as exc:  # reported; the kernel rows still run
        rows.append(Row("llm engines load (triton, cpu)", False, f"{type(exc).__name__}: {exc}"))
    rows += kernel_rows()

    table = Table(title="gpu-check: Triton on this GPU against the CPU path, bit for bit")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.check, "[green]pass" if row.passed else "[bold red]FAIL", row.detail)
    console.print(table)
    failed = sum(not row.passed for row in rows)
    console.print(f"gpu-check: {len(rows) - failed} of {len(rows)} checks passed"
                  + (f", [bold red]{failed} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
