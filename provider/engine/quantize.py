"""Deterministic derivation of every integer parameter from the float weights.

Runs once at load, on the CPU, in float64 numpy with one explicit rounding rule
(``round_fixed``: exact round-half-up of v * 2**bits). IEEE float64 add/mul/div/sqrt
are correctly rounded everywhere, so every provider derives the same bytes; the LUTs
use libm exp2/erfc, whose last-ulp differences could only matter at an exact .5 tie
and would then show up as a different params digest, i.e. a different ``model_id``.

Fixed-point formats (Q(F) = value * 2**F):
- embeddings Q(F_EMB); the residual stream / LayerNorm outputs Q(F_H), F_H derived
  from the LayerNorm weights so that no output can leave the int16 range;
- Q and K Q(F_QK); V and the attention context Q(F_V); FFN intermediate (GELU in and
  out) Q(F_FFN). Linear inputs are these int16 tensors themselves (16-bit activations).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import fields

import numpy as np
import torch

from . import intops
from .intops import INT16_MAX, RESIDUAL_MAX, AttentionParams, LayerNormParams, LinearParams
from .model import EncoderLayer, QuantizedModel
from .weights import BertConfig

F_EMB = 16
F_QK = 9
F_V = 11
F_FFN = 9
EXP_FRAC_BITS = 10
GELU_RANGE = 8  # LUT covers |y| < 8; beyond, gelu(y) = max(y, 0) to < 2**-40


def round_fixed(v: np.ndarray | float, bits: int) -> np.ndarray:
    """Exact round-half-up of v * 2**bits to int64 (v float64; scaling by 2**bits is exact)."""
    x = np.asarray(v, dtype=np.float64) * (2.0 ** bits)
    if not np.all(np.abs(x) < 2.0 ** 62):
        raise OverflowError("fixed-point value out of int64 range")
    fl = np.floor(x)
    return (fl + (x - fl >= 0.5)).astype(np.int64)  # x - floor(x) is exact


def quantize_linear(weight: np.ndarray, bias: np.ndarray, f_in: int, f_out: int | np.ndarray,
                    out_max: int, gelu_lut: torch.Tensor | None = None) -> LinearParams:
    """int8 per-output-channel weights and the requantisation of ``intops.linear``.

    With the input in Q(f_in) and W_j ~ w8_j * sw_j (sw_j = max|W_j| / 127):
    y_j * 2**f_out_j = acc_j * sw_j * 2**(f_out_j - f_in) + b_j * 2**f_out_j.
    ``f_out`` may differ per output channel (Q/K and V share one GEMM).
    """
    w = weight.astype(np.float64)
    amax = np.abs(w).max(axis=1)
    safe = np.where(amax > 0, amax, 1.0)
    w8 = np.clip(round_fixed(w * 127.0 / safe[:, None], 0), -127, 127).astype(np.int8)
    out_scale = 2.0 ** np.broadcast_to(np.asarray(f_out, dtype=np.float64), amax.shape)
    scale = amax / 127.0 * out_scale / 2.0 ** f_in
    b = bias.astype(np.float64) * out_scale
    for shift in range(62, 0, -1):
        mult = round_fixed(scale, shift)
        if mult.max() < 1 << 16 and np.abs(b).max() * 2.0 ** shift < 2.0 ** 50:
            return LinearParams(torch.from_numpy(w8), torch.from_numpy(mult),
                                torch.from_numpy(round_fixed(b, shift)), shift, out_max, gelu_lut)
    raise ValueError("no valid requantisation shift")


def gelu_lut(frac_bits: int) -> torch.Tensor:
    """LUT[t] = round(gelu(-t / 2**F) * 2**F) for t < 8 * 2**F, then a final 0."""
    t = np.arange(GELU_RANGE << frac_bits, dtype=np.float64) / 2.0 ** frac_bits
    erfc = np.array([math.erfc(v / math.sqrt(2.0)) for v in t])
    lut = round_fixed(-t * 0.5 * erfc, frac_bits)
    return torch.from_numpy(np.append(lut, 0).astype(np.int32))


def layernorm_params(gamma: np.ndarray, beta: np.ndarray, f_out: int) -> LayerNormParams:
    n = gamma.shape[0]
    g = round_fixed(gamma.astype(np.float64) * math.sqrt(n), f_out)
    bt = round_fixed(beta.astype(np.float64), f_out + intops.LN_Z_BITS)
    return LayerNormParams(torch.from_numpy(g), torch.from_numpy(bt),
                           int(round_fixed(1.0 / n, intops.LN_MEAN_SHIFT)))


def layernorm_out_bound(ln: LayerNormParams) -> int:
    """Largest |output| of ``add_layernorm`` before its clamp (|z| <= 2**16)."""
    return int((ln.gamma.abs() + (ln.beta.abs() >> intops.LN_Z_BITS)).max()) + 2


def attention_params(heads: int, head_dim: int) -> AttentionParams:
    # exponent (base 2, Q(E)) per unit of acc * mk * mq: log2(e) / sqrt(D) / scales
    rate = 2.0 ** EXP_FRAC_BITS / math.log(2.0) / (127.0 ** 2 * math.sqrt(head_dim) * 2.0 ** (2 * F_QK))
    mult_shift = max(s for s in range(1, 63) if round_fixed(rate, s) < 1 << 13)
    e = np.arange(21 << EXP_FRAC_BITS, dtype=np.float64) / 2.0 ** EXP_FRAC_BITS
    table = np.append(round_fixed(np.exp2(-e), intops.EXP_ONE_BITS), 0).astype(np.int32)
    # context: prob / PROB_MAX * v8 * mv / 127 in Q(F_V) stays in Q(F_V)
    out_rate = 1.0 / (intops.PROB_MAX * 127.0)
    out_shift = max(s for s in range(1, 63) if round_fixed(out_rate, s) < 1 << 15)
    return AttentionParams(heads, head_dim, int(round_fixed(rate, mult_shift)),
                           mult_shift - intops.RATE_SHIFT, EXP_FRAC_BITS, torch.from_numpy(table),
                           int(round_fixed(out_rate, out_shift)), out_shift)


def quantize_model(w: dict[str, np.ndarray], cfg: BertConfig) -> QuantizedModel:
    """The integer model from the float weights (BERT names)."""
    def norms(prefix: str, f_out: int) -> LayerNormParams:
        return layernorm_params(w[f"{prefix}.weight"], w[f"{prefix}.bias"], f_out)

    ln_names = ["embeddings.LayerNorm"] + [
        f"encoder.layer.{i}.{part}.LayerNorm" for i in range(cfg.layers)
        for part in ("attention.output", "output")]
    # F_H: the finest fixed point in which every LayerNorm output fits int16
    f_h = max(f for f in range(15) if all(layernorm_out_bound(norms(n, f)) <= INT16_MAX
                                          for n in ln_names))
    word_type = w["embeddings.word_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    emb = [round_fixed(word_type.astype(np.float64), F_EMB),
           round_fixed(w["embeddings.position_embeddings.weight"].astype(np.float64), F_EMB)]
    if max(int(np.abs(e).max()) for e in emb) > RESIDUAL_MAX:
        raise ValueError("embeddings exceed the LayerNorm input range")
    lut = gelu_lut(F_FFN)
    qkv_f_out = np.repeat([F_QK, F_QK, F_V], cfg.hidden)
    layers = []
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([w[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")])
        qkv_b = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
        layers.append(EncoderLayer(
            qkv=quantize_linear(qkv_w, qkv_b, f_h, qkv_f_out, INT16_MAX),
            attn_out=quantize_linear(w[f"{p}attention.output.dense.weight"],
                                     w[f"{p}attention.output.dense.bias"], F_V, f_h, RESIDUAL_MAX),
            attn_norm=norms(f"{p}attention.output.LayerNorm", f_h),
            ffn_in=quantize_linear(w[f"{p}intermediate.dense.weight"],
                                   w[f"{p}intermediate.dense.bias"], f_h, F_FFN, INT16_MAX, lut),
            ffn_out=quantize_linear(w[f"{p}output.dense.weight"], w[f"{p}output.dense.bias"],
                                    F_FFN, f_h, RESIDUAL_MAX),
            ffn_norm=norms(f"{p}output.LayerNorm", f_h)))
    return QuantizedModel(
        word_type=torch.from_numpy(emb[0].astype(np.int32)),
        position=torch.from_numpy(emb[1].astype(np.int32)),
        embed_norm=norms("embeddings.LayerNorm", f_h),
        attention=attention_params(cfg.heads, cfg.hidden // cfg.heads),
        layers=tuple(layers))


FORMAT_CONSTANTS = {
    name: getattr(intops, name) for name in (
        "SPEC_VERSION", "INT16_MAX", "RESIDUAL_MAX", "QUANT_SHIFT", "EXP_ONE_BITS", "RATE_SHIFT", "PROB_MAX",
        "PROB_SHIFT",
        "LN_RECIP_SHIFT", "LN_Z_BITS", "LN_MEAN_SHIFT")}


def params_digest(model: QuantizedModel, extra: dict[str, int]) -> bytes:
    """sha256 over every integer parameter, the op constants and ``extra`` (e.g. the
    tokenisation limits): ``digest_params``."""
    return digest_params(model, {**FORMAT_CONSTANTS, **extra})


def digest_params(params, constants: dict, prefix: bytes = b"") -> bytes:
    """sha256 (after ``prefix``) over a model's derived parameters, walked by name: tensors
    and arrays as name, dtype, shape and little-endian bytes, dataclasses and tuples field
    by field, ints, strings and None by value, floats by their exact hex; then
    ``constants`` in name order. The params part of a model id (the LLM's too)."""
    h = hashlib.sha256(prefix)

    def feed(name: str, obj) -> None:
        if isinstance(obj, (torch.Tensor, np.ndarray)):
            a = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
            a = np.ascontiguousarray(a)
            h.update(f"{name}:{a.dtype.str}:{a.shape}:".encode())
            h.update(a.astype(a.dtype.newbyteorder("<")).tobytes())
        elif isinstance(obj, tuple):
            for i, o in enumerate(obj):
                feed(f"{name}.{i}", o)
        elif hasattr(obj, "__dataclass_fields__"):
            for f in fields(obj):
                feed(f"{name}.{f.name}", getattr(obj, f.name))
        elif obj is None or isinstance(obj, (int, str)):
            h.update(f"{name}={obj};".encode())
        elif isinstance(obj, float):  # config values (rope base, eps): exact repr
            h.update(f"{name}={obj.hex()};".encode())
        else:
            raise TypeError(f"unexpected parameter {name}: {type(obj).__name__}")

    feed("model", params)
    for k, v in sorted(constants.items()):
        feed(k, v)
    return h.digest()
