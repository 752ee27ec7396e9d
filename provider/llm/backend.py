"""Backend choice for the decoder: the object that runs ``decoder.forward``'s steps.

``auto`` picks Triton when CUDA is present, the CPU path (``intops``) otherwise; the
``VERINFER_BACKEND`` environment variable (cpu | triton) overrides ``auto``, as for the
MiniLM engine (``provider.engine.backend``). Both compute the same integers, so the
choice changes speed, never a byte.

A backend has the forward's steps at the granularity the Triton kernels fuse them
(``triton_ops.TritonOps``: q|k|v in one GEMV and one RoPE kernel, gate|up in one GEMV,
the residual add and the logits in the GEMV's epilogue); ``CpuOps`` runs each step as
the ``intops`` calls it is made of. ``prepare`` gives the parameters in the backend's
layout, ``zeros``/``empty``/``asarray``/``to_host`` its arrays.
"""
from __future__ import annotations

import numpy as np

from provider.engine.backend import backend_name, triton_backend

from . import intops
from .intops import AttentionParams
from .quantize import DecoderParams, LayerParams


class CpuOps:
    """The decoder's steps as ``intops`` calls on numpy arrays (the reference)."""

    name = "cpu"
    route = "cpu (numba int64 kernels, exact float64 GEMMs)"

    @staticmethod
    def prepare(params: DecoderParams) -> DecoderParams:
        return params

    zeros = staticmethod(np.zeros)
    empty = staticmethod(np.empty)

    @staticmethod
    def asarray(a: np.ndarray) -> np.ndarray:
        return a

    @staticmethod
    def to_host(a: np.ndarray) -> np.ndarray:
        return a

    @staticmethod
    def embed(ids: np.ndarray, params: DecoderParams) -> np.ndarray:
        return intops.embed(ids, params.embed)

    rmsnorm = staticmethod(intops.rmsnorm)

    @staticmethod
    def qkv(x, e, layer: LayerParams, pos, att: AttentionParams):
        return (intops.rope_heads(intops.linear(x, layer.q), e, layer.q.shift, pos, att.heads, att),
                intops.rope_heads(intops.linear(x, layer.k), e, layer.k.shift, pos, att.kv_heads,
                                  att),
                intops.heads_block16(intops.linear(x, layer.v), e, layer.v.shift, att.kv_heads))

    attention = staticmethod(intops.attention)

    @staticmethod
    def attn_residual(h, ox, oe, layer: LayerParams) -> None:
        intops.residual_add(h, intops.linear(ox, layer.o), oe, layer.o.shift)

    @staticmethod
    def ffn_in(x, e, layer: LayerParams, sig_table):
        return intops.swiglu(intops.linear(x, layer.gate), intops.linear(x, layer.up), e,
                             layer.gate.shift, layer.up.shift, sig_table)

    @staticmethod
    def ffn_residual(h, gx, ge, layer: LayerParams) -> None:
        intops.residual_add(h, intops.linear(gx, layer.down), ge, layer.down.shift)

    @staticmethod
    def head(x, e, params: DecoderParams):
        return intops.logits(intops.linear(x, params.embed), e, params.embed.shift)


CPU = CpuOps()


def select_backend(name: str = "auto"):
    """The decoder's ops for ``name``: ``CpuOps`` or ``triton_ops.TritonOps``."""
    if backend_name(name) == "cpu":
        return CPU

    def load():
        from .triton_ops import TritonOps
        return TritonOps

    return triton_backend(load)
