"""The public LLM engine: load SmolLM2 from its GGUF, identify it, generate token ids.

>>> engine = LLMEngine.load()
>>> ids = engine.generate([{"role": "user", "content": "What is the capital of France?"}],
...                       max_new_tokens=16)
>>> "Paris" in engine.text(ids)
True
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from client.chat import CHAT_FORMAT
from provider.engine.engine import compute_model_id
from provider.engine.errors import EmptyInputError, InputTooLongError, InvalidInputError

from . import decoder, intops, quantize, selftest
from .backend import CPU, select_backend
from .gguf_model import MODEL_NAME, GGUFModel
from .sampling import SamplingParams, sample
from .tokenizer import ChatTokenizer

# Generation limits and the arithmetic's version (in the params digest, hence in model_id).
MAX_NEW_TOKENS = 512
LIMITS = {"MAX_NEW_TOKENS": MAX_NEW_TOKENS, "SPEC_VERSION": intops.SPEC_VERSION}

Prompt = Sequence[int] | Sequence[dict] | str


@dataclass(frozen=True)
class LLMInfo:
    """What ``model_id`` commits to."""

    name: str
    model_id: bytes
    weights_digest: bytes  # the GGUF file's
    params_digest: bytes
    tokenizer_digest: bytes
    format_version: int  # the job format (client.chat.CHAT_FORMAT)
    spec_version: int
    max_context: int
    max_new_tokens: int


class LLMEngine:
    """Integer-only SmolLM2-135M-Instruct: the same token ids and logits bytes on every
    machine, alone or batched, with or without the KV cache."""

    def __init__(self, params: quantize.DecoderParams, tokenizer: ChatTokenizer, info: LLMInfo,
                 ops=CPU):
        self.params = params
        self.tokenizer = tokenizer
        self.model_info = info
        self._ops = ops

    @classmethod
    def load(cls, gguf: GGUFModel | None = None, *, self_test: bool = True,
             backend: str = "auto") -> LLMEngine:
        """Read the packaged GGUF and derive the integer parameters (a few seconds), then
        run the startup self-test (``selftest``) unless told not to. ``backend``: "cpu",
        "triton" or "auto" (``backend.select_backend``: Triton where CUDA is); every
        backend computes the same bytes, which the self-test checks on this host."""
        ops = select_backend(backend)
        g = gguf or GGUFModel()
        params = quantize.quantize_model(g)
        tokenizer = ChatTokenizer(g.tokenizer)
        digests = dict(weights_digest=g.digest,
                       params_digest=quantize.params_digest(params, LIMITS),
                       tokenizer_digest=tokenizer.digest)
        model_id = compute_model_id(MODEL_NAME, CHAT_FORMAT, **digests)
        info = LLMInfo(MODEL_NAME, model_id, **digests, format_version=CHAT_FORMAT,
                       spec_version=intops.SPEC_VERSION, max_context=intops.MAX_CONTEXT,
                       max_new_tokens=MAX_NEW_TOKENS)
        engine = cls(params, tokenizer, info, ops)
        if self_test:
            engine.self_test()
        return engine

    @property
    def model_id(self) -> bytes:
        return self.model_info.model_id

    @property
    def ops(self):
        """The backend running the forward (``backend.CpuOps`` or ``triton_ops.TritonOps``)."""
        return self._ops

    @property
    def backend(self) -> str:
        return self._ops.name

    @property
    def route(self) -> str:
        """The arithmetic route in words (backend, library, device): for error messages."""
        return self._ops.route

    def self_test(self) -> None:
        """Raise ``SelfTestError`` unless this host computes the pinned probe bytes: a
        provider must never serve, and be slashed, for its hardware."""
        selftest.run(self)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt: ids as they are, chat messages through the chat template
        (with the assistant's turn opened), a string as raw text."""
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)
        prompt = list(prompt)
        if prompt and all(isinstance(m, dict) for m in prompt):
            return self.tokenizer.chat_ids(prompt)
        if not all(isinstance(i, (int, np.integer)) for i in prompt):
            raise TypeError("a prompt is token ids, chat messages or a string")
        return [int(i) for i in prompt]

    def text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits int64 [len(ids), V] in Q(LOGIT_BITS) of every position (teacher forcing)."""
        cache = decoder.KVCache.empty(self.params, len(ids), self._ops)
        with torch.inference_mode():
            return decoder.forward(self.params, [ids], [cache], True, self._ops)[0]

    def generate(self, prompt: Prompt, max_new_tokens: int = 64,
                 params: SamplingParams = SamplingParams()) -> list[int]:
        """The generated ids (ending with the stop token when one came before
        ``max_new_tokens``)."""
        return self.generate_batch([prompt], max_new_tokens, [params])[0]

    def generate_batch(self, prompts: Sequence[Prompt], max_new_tokens: int = 64,
                       params: Sequence[SamplingParams] | SamplingParams = SamplingParams(),
                       ) -> list[list[int]]:
        """Generate for several prompts at once (each answer is the one it gets alone).
        A bad request raises ``InvalidInputError`` (a ``ValueError``; ``.index`` names the
        prompt) before any work."""
        ids = [self.prompt_ids(p) for p in prompts]
        if isinstance(params, SamplingParams):
            params = [params] * len(ids)
        if len(params) != len(ids):
            raise ValueError("one SamplingParams per prompt")
        if not 0 < max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidInputError(f"max_new_tokens outside 1..{MAX_NEW_TOKENS}")
        vocab = self.params.config.vocab
        for i, p in enumerate(ids):
            if not p:
                raise EmptyInputError("the prompt has no tokens", i)
            if len(p) + max_new_tokens > intops.MAX_CONTEXT:
                raise InputTooLongError(f"prompt of {len(p)} tokens + {max_new_tokens} new ones "
                                        f"exceeds the context of {intops.MAX_CONTEXT}", i)
            if min(p) < 0 or max(p) >= vocab:
                raise InvalidInputError(f"token ids outside 0..{vocab - 1}", i)
        caches = [decoder.KVCache.empty(self.params, len(p) + max_new_tokens, self._ops)
                  for p in ids]
        out: list[list[int]] = [[] for _ in ids]
        active = list(range(len(ids)))
        feed = ids
        with torch.inference_mode():
            while active:
                last = decoder.forward(self.params, feed, [caches[i] for i in active],
                                       ops=self._ops)
                still, feed = [], []
                for i, logits in zip(active, last):
                    token = sample(logits, params[i], len(out[i]))
                    out[i].append(token)
                    if token not in self.tokenizer.stop_ids and len(out[i]) < max_new_tokens:
                        still.append(i)
                        feed.append([token])
                active = still
        return out
