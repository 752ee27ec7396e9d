"""bench/gpu_check.py's LLM rows run here too, where there is no GPU: Triton's interpreter
stands in for the device, and stand-in engines for a backend that differs or crashes."""
import numpy as np
import pytest

from bench import gpu_check
from bench.gpu_check import Row
from provider.llm import triton_ops as T
from tests.llm import triton_cases


def test_llm_op_rows_pass_equal_bytes_and_name_a_flipped_bit(llm, monkeypatch):
    monkeypatch.setattr(triton_cases, "CASES", {"embed-5": triton_cases.CASES["embed-5"]})
    monkeypatch.setattr(triton_cases, "LARGE", {})
    ops = T.TritonOps()
    assert gpu_check.llm_op_rows(llm.params, ops) == [
        Row("llm embed, 5 ids", True, "identical (2880 values)")]
    embed = T.embed

    def one_bit_off(*args):
        h = embed(*args)
        h.view(-1)[7] ^= 1
        return h

    monkeypatch.setattr(T, "embed", one_bit_off)
    assert gpu_check.llm_op_rows(llm.params, ops) == [
        Row("llm embed, 5 ids", False, "output 0: 1 of 2880 values differ")]


class Engine:
    """A stand-in engine: ``batch_shift`` changes one answer of a batch, ``crash`` raises."""

    def __init__(self, llm, batch_shift=0, crash=False):
        self.prompt_ids, self._shift, self._crash = llm.prompt_ids, batch_shift, crash

    def logits(self, ids):
        if self._crash:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return np.zeros((len(ids), 4), dtype=np.int64)

    def generate(self, prompt, n, params=None):
        return list(range(n))

    def generate_batch(self, prompts, n):
        answers = [list(range(n)) for _ in prompts]
        answers[1][0] += self._shift
        return answers


def test_llm_model_rows_catch_a_backend_that_differs_or_crashes(llm):
    rows = gpu_check.llm_model_rows(Engine(llm), Engine(llm))
    assert [row.passed for row in rows] == [True] * 4
    assert rows[1].detail == "identical (32 ids)"
    rows = gpu_check.llm_model_rows(Engine(llm, batch_shift=1), Engine(llm))
    assert [row.passed for row in rows] == [True, True, True, False]
    assert rows[3].detail == "1 of 3 answers differ"
    rows = gpu_check.llm_model_rows(Engine(llm, crash=True), Engine(llm))
    assert not rows[0].passed
    assert rows[0].detail == "RuntimeError: CUDA error: an illegal memory access was encountered"


@pytest.mark.parametrize("module", ["engine", "llm"])
def test_kernel_rows_cover_both_engines_kernels(module):
    """Every Triton kernel of both engines is listed by name (on a GPU each row then says
    whether its variants spilled)."""
    names = {name for name, fn in gpu_check.kernels()}
    wanted = {f"{module} {name}" for name in vars(T if module == "llm" else gpu_check.triton_ops)
              if name.endswith("_kernel")}
    assert wanted and wanted <= names
