"""The integer decoder's forward pass (Llama: RMSNorm, GQA attention with RoPE, SwiGLU),
with a KV cache, over any number of sequences at once.

Every op is row-wise (``intops``) except attention, which reads the keys and values at or
before each query in its own sequence. A batch is the concatenation of its sequences'
new tokens (no padding), so a sequence's logits are the same bytes alone or batched, and
the cache holds exactly the keys and values a full recomputation would compute: decoding
with the cache and recomputing everything give the same bytes.

The steps run on a backend (``backend``: the CPU path of ``intops``, or the Triton
kernels of ``triton_ops``), which computes the same integers; caches live on it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import intops
from .backend import CPU
from .quantize import DecoderParams


@dataclass
class KVCache:
    """One sequence's keys and values per layer (block floating point per token and head)."""

    k: list[np.ndarray]   # per layer int16 [capacity, G, D]
    ek: list[np.ndarray]  # per layer int64 [capacity, G]
    v: list[np.ndarray]
    ev: list[np.ndarray]
    length: int = 0
    tokens: list[int] = field(default_factory=list)

    @classmethod
    def empty(cls, params: DecoderParams, capacity: int, ops=CPU) -> KVCache:
        """A cache for ``capacity`` positions on ``ops``' device (the CPU's by default)."""
        cfg = params.config
        if not 0 < capacity <= intops.MAX_CONTEXT:
            raise ValueError(f"capacity {capacity} outside 1..{intops.MAX_CONTEXT}")
        shape = (capacity, cfg.kv_heads, cfg.head_dim)
        n = cfg.layers
        return cls([ops.zeros(shape, np.int16) for _ in range(n)],
                   [ops.zeros(shape[:2], np.int64) for _ in range(n)],
                   [ops.zeros(shape, np.int16) for _ in range(n)],
                   [ops.zeros(shape[:2], np.int64) for _ in range(n)])

    @property
    def capacity(self) -> int:
        return self.k[0].shape[0]


def forward(params: DecoderParams, new_tokens: Sequence[Sequence[int]], caches: Sequence[KVCache],
            all_logits: bool = False, ops=CPU) -> list[np.ndarray]:
    """Append each sequence's ``new_tokens`` to its cache and return its logits, int64 in
    Q(LOGIT_BITS): [n_new, V] with ``all_logits``, else [V] for its last new token.
    ``ops`` is the backend (``backend.select_backend``); the caches must live on it."""
    if len(new_tokens) != len(caches):
        raise ValueError("one cache per sequence")
    lens = [len(t) for t in new_tokens]
    for n, c in zip(lens, caches):
        if n == 0 or c.length + n > c.capacity:
            raise ValueError(f"{n} new tokens at {c.length} do not fit a cache of {c.capacity}")
    ids = np.concatenate([np.asarray(t, dtype=np.int64) for t in new_tokens])
    if ids.min() < 0 or ids.max() >= params.config.vocab:
        raise ValueError("token id out of range")
    pos = np.concatenate([np.arange(c.length, c.length + n, dtype=np.int64)
                          for n, c in zip(lens, caches)])
    bounds = np.cumsum([0] + lens)
    cfg = params.config
    dev = ops.prepare(params)
    att = dev.attention
    pos = ops.asarray(pos)
    h = ops.embed(ops.asarray(ids), dev)
    for li, layer in enumerate(dev.layers):
        x, e = ops.rmsnorm(h, layer.attn_norm)
        (q, eq), (k, ek), (v, ev) = ops.qkv(x, e, layer, pos, att)
        ox = ops.empty((len(ids), cfg.heads * cfg.head_dim), np.int16)
        oe = ops.empty(len(ids), np.int64)
        for s, c in enumerate(caches):
            r0, r1 = bounds[s], bounds[s + 1]
            start, stop = c.length, c.length + (r1 - r0)
            c.k[li][start:stop], c.ek[li][start:stop] = k[r0:r1], ek[r0:r1]
            c.v[li][start:stop], c.ev[li][start:stop] = v[r0:r1], ev[r0:r1]
            ox[r0:r1], oe[r0:r1] = ops.attention(
                q[r0:r1], eq[r0:r1], c.k[li][:stop], c.ek[li][:stop], c.v[li][:stop],
                c.ev[li][:stop], start, att)
        ops.attn_residual(h, ox, oe, layer)
        x, e = ops.rmsnorm(h, layer.ffn_norm)
        gx, ge = ops.ffn_in(x, e, layer, dev.sig_table)
        ops.ffn_residual(h, gx, ge, layer)
    for n, c, t in zip(lens, caches, new_tokens):
        c.length += n
        c.tokens.extend(int(i) for i in t)
    rows = np.arange(len(ids)) if all_logits else bounds[1:] - 1
    x, e = ops.rmsnorm(h[ops.asarray(rows)], dev.out_norm)
    out = ops.to_host(ops.head(x, e, dev))
    if all_logits:
        return [out[bounds[s]:bounds[s + 1]] for s in range(len(caches))]
    return list(out)
