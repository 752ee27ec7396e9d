"""Fixtures for the LLM tests: the integer engine and transformers' fp32 reference of the
same GGUF (each loaded once per session), and the shipped text set."""
import json
import os
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[1] / "data"
TEXT = DATA / "llm_text.txt"
CHATS = DATA / "llm_chats.json"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


# Without CUDA the Triton kernels run in Triton's interpreter, which reads
# TRITON_INTERPRET when triton and each kernel are imported and again at launch: as in
# tests/engine/conftest.py, the kernels are imported here under the variable, which is set
# again only while an LLM test runs (other tests, and the processes they start, never see it).
INTERPRET = not torch.cuda.is_available()
if INTERPRET:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        from provider.llm import triton_ops  # noqa: F401


@pytest.fixture(autouse=True)
def triton_interpreter(monkeypatch) -> None:
    if INTERPRET:
        monkeypatch.setenv("TRITON_INTERPRET", "1")


def paragraphs() -> list[str]:
    return [p.strip() for p in TEXT.read_text(encoding="utf-8").split("\n\n") if p.strip()]


def chats() -> list[list[dict]]:
    return json.loads(CHATS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def reference():
    """(model, tokenizer) of transformers on the packaged GGUF, dequantised to fp32."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from provider.llm.gguf_model import locate

    path = locate()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32).eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def texts(llm) -> list[list[int]]:
    """The shipped text set as token id sequences: each paragraph, each whole chat."""
    return ([llm.tokenizer.encode(p) for p in paragraphs()]
            + [llm.tokenizer.chat_ids(c, add_generation_prompt=False) for c in chats()])
