"""The integer MiniLM forward pass, written against a backend ``ops`` object.

``ops`` is any object with the five ops of ``intops`` (``quantize_rows``, ``linear``,
``attention``, ``add_layernorm``, ``mean_pool_normalize``) and a ``device``; the CPU
backend is ``intops`` itself, the GPU backend ``triton_ops.TritonOps``. Both must give
the same bytes, so this file holds no arithmetic of its own beyond embedding lookups.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from .intops import AttentionParams, LayerNormParams, LinearParams


@dataclass(frozen=True)
class EncoderLayer:
    qkv: LinearParams        # hidden -> Q|K (Q(F_QK)) | V (Q(F_V)), int16
    attn_out: LinearParams   # context Q(F_V) -> residual branch, int32, Q(F_H)
    attn_norm: LayerNormParams
    ffn_in: LinearParams     # hidden -> GELU(intermediate), int16-range, Q(F_FFN)
    ffn_out: LinearParams    # intermediate -> residual branch, int32, Q(F_H)
    ffn_norm: LayerNormParams


@dataclass(frozen=True)
class QuantizedModel:
    """Every integer parameter of the model (derived in ``quantize.py``).

    word_type: int32 [vocab, hidden], word + token-type-0 embeddings in Q(F_EMB).
    position:  int32 [max_positions, hidden] in Q(F_EMB).
    """

    word_type: torch.Tensor
    position: torch.Tensor
    embed_norm: LayerNormParams
    attention: AttentionParams
    layers: tuple[EncoderLayer, ...]

    def to(self, device: torch.device) -> QuantizedModel:
        """A copy with every tensor on ``device`` (scalars stay Python ints)."""
        return to_device(self, device)


def to_device(obj, device: torch.device):
    """A copy of a tensor, tuple or params dataclass with every tensor on ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(to_device(o, device) for o in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return replace(obj, **{f.name: to_device(getattr(obj, f.name), device) for f in fields(obj)})
    return obj


def forward(model: QuantizedModel, ops, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token ids int64 [B, L] and mask bool [B, L] -> committed int8 vectors [B, hidden].

    Positions are 0..L-1 (right padding); padded positions never influence real ones.
    """
    b, length = ids.shape
    hidden = model.word_type.shape[1]
    words = model.word_type.index_select(0, ids.reshape(-1)).view(b, length, hidden)
    h = ops.add_layernorm(words, model.position[:length].expand(b, -1, -1), model.embed_norm)
    h = h.view(b * length, hidden)
    for layer in model.layers:
        qkv = ops.linear(h, layer.qkv)
        ctx = ops.attention(qkv.view(b, length, -1), mask, model.attention)
        h = ops.add_layernorm(ops.linear(ctx.view(b * length, hidden), layer.attn_out), h,
                              layer.attn_norm)
        f = ops.linear(h, layer.ffn_in)
        h = ops.add_layernorm(ops.linear(f, layer.ffn_out), h, layer.ffn_norm)
    return ops.mean_pool_normalize(h.view(b, length, hidden), mask)
