"""Fixtures for the engine tests: the shipped sentence set (the engine is in tests/conftest.py)."""
from pathlib import Path

import pytest
import torch

SENTENCES = Path(__file__).resolve().parents[1] / "data" / "sentences.txt"

# Without CUDA the Triton kernels run in Triton's interpreter. Triton reads
# TRITON_INTERPRET when it is imported (its standard library is jit-decorated then), when
# each kernel is decorated and again at launch, so the kernels are imported here under the
# variable (before any engine test module imports them), and it is set again only while
# an engine test runs: other tests, and the processes they start, never see it.
INTERPRET = not torch.cuda.is_available()
if INTERPRET:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        from provider.engine import triton_ops  # noqa: F401
        # bench.gpu_check (test_gpu_check.py) imports the LLM's kernels too, and this
        # folder is collected before tests/llm: they must be decorated interpreted here.
        from provider.llm import triton_ops as llm_triton_ops  # noqa: F401


@pytest.fixture(autouse=True)
def triton_interpreter(monkeypatch) -> None:
    if INTERPRET:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return SENTENCES.read_text(encoding="utf-8").splitlines()
