"""Deterministic derivation of the decoder's integer parameters from the GGUF.

The quantised weights are already integers (Q4_1's 4-bit values, Q8_0's 8-bit ones); what
is derived here is the fixed point of their fp16 block scales and minimums (one shift per
matrix, ``intops`` explains the bound), the RMSNorm gammas (float32 in the file) in
fixed point, and the tables (``tables``). Every rounding is ``round_fixed``
(exact round-half-up of v * 2**bits in float64: fp16 and float32 values times a power of
two are exact), so every provider derives the same bytes; ``params_digest`` hashes them
all into the model id.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal

import numpy as np

from provider.engine.quantize import digest_params, round_fixed

from . import intops, tables
from .gguf_model import GGUFModel, LlamaConfig, Q4Blocks, Q8Blocks
from .intops import AttentionParams, NormParams, QLinear

GAMMA_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class LayerParams:
    attn_norm: NormParams
    q: QLinear
    k: QLinear
    v: QLinear
    o: QLinear
    ffn_norm: NormParams
    gate: QLinear
    up: QLinear
    down: QLinear


@dataclass(frozen=True)
class DecoderParams:
    config: LlamaConfig
    embed: QLinear  # Q8_0, tied to the output head
    layers: tuple[LayerParams, ...]
    out_norm: NormParams
    attention: AttentionParams
    sig_table: np.ndarray


def qlinear(blocks: Q4Blocks | Q8Blocks) -> QLinear:
    """The largest shift whose fixed-point block scales keep max |W| <= w_max(K)."""
    q = blocks.q
    bound = intops.w_max(q.shape[1])
    if q.shape[1] > intops.MAX_K or q.shape[1] % intops.BLOCK:
        raise ValueError(f"unsupported reduction length {q.shape[1]}")
    d = blocks.d.astype(np.float64)
    m = blocks.m.astype(np.float64) if isinstance(blocks, Q4Blocks) else None
    for shift in range(40, 0, -1):
        dd = round_fixed(d, shift)
        if m is None:
            worst = int((np.abs(dd) * 127).max())
            mm = None
        else:  # W is linear in q in 0..15: its extremes are at q = 0 and q = 15
            mm = round_fixed(m, shift)
            worst = int(np.maximum(np.abs(mm), np.abs(15 * dd + mm)).max())
        if worst <= bound:
            return QLinear(q, dd, mm, shift)
    raise ValueError("no fixed point keeps the GEMM exact")


def norm_params(gamma: np.ndarray, eps: float) -> NormParams:
    k = gamma.shape[0]
    scaled = gamma.astype(np.float64) * math.sqrt(k)
    frac = max(f for f in range(48) if np.abs(round_fixed(scaled, f)).max() <= GAMMA_MAX)
    return NormParams(round_fixed(scaled, frac), frac,
                      int(round_fixed(k * eps, intops.EPS_BITS)))


def attention_rate(head_dim: int) -> int:
    """round(2**(EXP_FRAC_BITS + RATE_SHIFT - SCORE_BITS) / (ln 2 * sqrt(D))), in Decimal
    (the same on every platform)."""
    ctx = Context(prec=50)
    v = ctx.divide(Decimal(2) ** (intops.EXP_FRAC_BITS + intops.RATE_SHIFT - intops.SCORE_BITS),
                   ctx.multiply(ctx.ln(Decimal(2)), ctx.sqrt(Decimal(head_dim))))
    return int((v + Decimal("0.5")).to_integral_value(rounding="ROUND_FLOOR"))


def quantize_model(g: GGUFModel, layers: int | None = None) -> DecoderParams:
    """Every parameter of the model, or of its first ``layers`` layers (tests that need
    the real shapes, not the whole model)."""
    cfg = g.config
    blocks = []
    for i in range(cfg.layers if layers is None else layers):
        p = f"blk.{i}."
        blocks.append(LayerParams(
            attn_norm=norm_params(g.tensor(p + "attn_norm.weight"), cfg.rms_eps),
            q=qlinear(g.tensor(p + "attn_q.weight")), k=qlinear(g.tensor(p + "attn_k.weight")),
            v=qlinear(g.tensor(p + "attn_v.weight")),
            o=qlinear(g.tensor(p + "attn_output.weight")),
            ffn_norm=norm_params(g.tensor(p + "ffn_norm.weight"), cfg.rms_eps),
            gate=qlinear(g.tensor(p + "ffn_gate.weight")), up=qlinear(g.tensor(p + "ffn_up.weight")),
            down=qlinear(g.tensor(p + "ffn_down.weight"))))
    cos, sin = tables.rope_table(cfg.rope_base, cfg.head_dim, intops.MAX_CONTEXT)
    attention = AttentionParams(cfg.heads, cfg.kv_heads, cfg.head_dim, attention_rate(cfg.head_dim),
                                tables.exp2_table(), cos, sin)
    return DecoderParams(cfg, qlinear(g.tensor("token_embd.weight")), tuple(blocks),
                         norm_params(g.tensor("output_norm.weight"), cfg.rms_eps), attention,
                         tables.sigmoid_table())


FORMAT_CONSTANTS = {name: getattr(intops, name) for name in (
    "SPEC_VERSION", "ACT_MAX", "BLOCK", "MAX_K", "MAX_CONTEXT", "F_RES", "RES_MAX",
    "NORM_IN_BITS", "NORM_RECIP_SHIFT", "NORM_N_BITS", "EPS_BITS", "ROPE_IN_BITS", "ROPE_BITS",
    "SCORE_BITS", "SCORE_MAX", "DELTA_MAX", "EXP_FRAC_BITS", "EXP_ONE_BITS", "EXP_RANGE",
    "RATE_SHIFT", "PROB_BITS", "PROB_SHIFT", "FFN_IN_BITS", "SILU_FRAC_BITS", "SILU_RANGE",
    "SIG_BITS", "LOGIT_BITS", "LOGIT_MAX")}


def params_digest(params: DecoderParams, extra: dict[str, int]) -> bytes:
    """sha256 over every integer parameter, the op constants and ``extra`` (e.g. the
    generation limits): ``provider.engine.quantize.digest_params``."""
    return digest_params(params, {**FORMAT_CONSTANTS, **extra}, prefix=b"verinfer/llm-params/v1\x00")
