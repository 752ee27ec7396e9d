"""bench/gpu_check.py's code runs here too, where there is no GPU: its exit without CUDA,
and its comparisons with Triton's interpreter standing in for the device."""
import os
import subprocess
import sys
from pathlib import Path

from bench import gpu_check
from provider.engine import triton_ops
from tests.engine import cases

REPO = Path(__file__).resolve().parents[2]


def test_without_cuda_it_says_so_and_exits_with_its_own_status():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides a GPU, if this machine has one
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == gpu_check.NO_CUDA, done.stderr[-3000:]
    assert "sees no CUDA device; nothing was checked" in done.stdout


def test_compare_passes_equal_bytes_and_names_a_flipped_bit():
    ops = triton_ops.TritonOps()  # the interpreter, on CPU tensors (this folder's conftest)
    case = cases.Case("tiny", "linear", cases.linear_random(*cases.LINEAR_RANDOM[0]))
    assert gpu_check.compare(case, ops) == gpu_check.Row("linear: tiny", True, "identical (16 values)")

    class OneBitOff:
        device = ops.device

        @staticmethod
        def linear(x, p):
            y = ops.linear(x, p)
            y.view(-1)[5] ^= 1
            return y

    row = gpu_check.compare(case, OneBitOff)
    assert (row.passed, row.detail) == (False, "1 of 16 elements differ")


def test_model_rows_catch_bytes_that_depend_on_the_batch(engine, sentences):
    """Batched, reversed and alone: a path whose bytes change with the batch fails the
    batched runs only; a crash is a failed row, not a crashed check."""
    few = sentences[:3]
    assert all(row.passed for row in gpu_check.model_rows(engine, engine, few))

    class BatchSensitive:
        @staticmethod
        def embed(texts):
            out = engine.embed(texts)
            if len(texts) > 1:
                out[0] = bytes([out[0][0] ^ 1]) + out[0][1:]
            return out

    rows = gpu_check.model_rows(BatchSensitive, engine, few)
    assert [row.passed for row in rows] == [False, False, True]
    assert rows[0].detail == "1 differ, the first on line 1"
    assert rows[1].detail == "1 differ, the first on line 3"

    class Crashing:
        @staticmethod
        def embed(texts):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    rows = gpu_check.model_rows(Crashing, engine, few)
    assert not any(row.passed for row in rows)
    assert rows[0].detail == "RuntimeError: CUDA error: an illegal memory access was encountered"
