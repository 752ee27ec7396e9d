"""Reference integer operations of the verifiable engine (the CPU backend).

This module is the specification the Triton kernels (``triton_ops.py``) must
reproduce bit for bit. Every op is defined on integers only; the docstrings state
the exact arithmetic. Where the torch implementation takes a fast route (float32 or
float64 arithmetic on integers) the docstring proves that
route exact.

Conventions shared by all ops
- ``round_shift(x, s)`` = ``(x + ((1 << s) >> 1)) >> s`` with an *arithmetic*
  shift: round half toward +inf. It is the only rounding used in the forward pass.
  (torch ``//`` floors and Triton ``//`` truncates, so the forward never divides a
  negative number; every division is ``non-negative // positive``.)
- "int16-range" means values in [-32767, 32767] (symmetric, so ``abs`` is safe).
- Row = the last dimension. Linear layers take 16-bit fixed-point activations as they
  are; the dynamic int8 scales (attention, pooling) come from one row (a token's head
  slice) or from the unmasked tokens of one sequence, never across a batch, so a job's
  bytes don't depend on the jobs it is batched with or on padding.
- All bounds below assume the documented input ranges; intermediates never exceed
  int64 (most fit int32).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

# Version of the arithmetic this module specifies; part of model_id, so a change to any
# op's results can never pass under an old id. v2: attention rounds prob exactly (v1's CPU
# route scaled by a float32 reciprocal and was off by one in rare elements).
SPEC_VERSION = 2
INT16_MAX = 32767
# Linear outputs that feed a residual add are clamped to +-RESIDUAL_MAX.
RESIDUAL_MAX = 1 << 21
# Fixed-point bits of the reciprocal in quantize_rows.
QUANT_SHIFT = 40
# The longest reduction of a linear layer (MiniLM's FFN output: 1536); the exactness
# bounds of every GEMM route below are stated for K <= MAX_K.
MAX_K = 1536
# Softmax: exp values are Q(EXP_ONE_BITS) (the row max maps to 2**EXP_ONE_BITS),
# probabilities are integers in [0, PROB_MAX] (PROB_MAX ~ 1.0) so that
# prob = (prob >> 7) * 128 + (prob & 127) splits into two int8-range halves.
EXP_ONE_BITS = 20
RATE_SHIFT = 10
PROB_MAX = (1 << 14) - 1
PROB_SHIFT = 32
# LayerNorm: reciprocal std bits and the Q16 normalised value.
LN_RECIP_SHIFT = 46
LN_Z_BITS = 16
LN_MEAN_SHIFT = 32


def round_shift(x: torch.Tensor, s: int) -> torch.Tensor:
    """round(x / 2**s), ties toward +inf, for an integer tensor and 0 <= s <= 62."""
    return (x + ((1 << s) >> 1)) >> s


@dataclass(frozen=True)
class LinearParams:
    """One quantised dense layer ``y = x W^T + b`` (derived in ``quantize.py``).

    weight:     int8 [N, K], values in [-127, 127] (per output channel scale folded
                into ``multiplier``).
    multiplier: int64 [N], 0 <= M < 2**16.
    bias:       int64 [N], |B| < 2**50, already scaled by 2**shift.
    shift:      int, 1 <= shift <= 62, one per layer.
    out_max:    int, outputs are clamped to [-out_max, out_max].
    gelu_lut:   int32 [T + 1] or None; if given the GELU epilogue is applied
                (see ``linear``); LUT[T] == 0.
    """

    weight: torch.Tensor
    multiplier: torch.Tensor
    bias: torch.Tensor
    shift: int
    out_max: int
    gelu_lut: torch.Tensor | None = None

    @property
    def out_dtype(self) -> torch.dtype:
        return torch.int16 if self.out_max <= INT16_MAX else torch.int32

    @cached_property
    def _packed(self):
        from .cpu_kernels import PackedLinear  # the CPU route's packed weights, built once
        return PackedLinear(self)


@dataclass(frozen=True)
class AttentionParams:
    """Constants of the integer softmax attention (derived in ``quantize.py``).

    heads, head_dim: H and D (hidden = H * D).
    score_mult, score_shift: CQK < 2**13 and S; with the per-row rate
        R = round_shift(mq * CQK, RATE_SHIFT) < 2**18 the base-2 exponent of a
        score difference is round_shift(delta * R, S) in Q(exp_frac_bits).
    exp_table: int32 [cap + 1], exp_table[e] = round(2**20 * 2**(-e / 2**E)) for e < cap
        and exp_table[cap] = 0, with cap = 21 * 2**E (all entries below cap are >= 1).
    out_mult, out_shift: MC < 2**15 and SC for the context requantisation.
    """

    heads: int
    head_dim: int
    score_mult: int
    score_shift: int
    exp_frac_bits: int
    exp_table: torch.Tensor
    out_mult: int
    out_shift: int

    @property
    def exp_cap(self) -> int:
        return self.exp_table.numel() - 1


@dataclass(frozen=True)
class LayerNormParams:
    """Integer LayerNorm over N channels (derived in ``quantize.py``).

    gamma: int64 [N] = round(gamma_f * sqrt(N) * 2**out_frac_bits) (|.| < 2**20).
    beta:  int64 [N] = round(beta_f * 2**(out_frac_bits + LN_Z_BITS)) (|.| < 2**40).
    mean_recip: round(2**LN_MEAN_SHIFT / N).
    The epsilon of the float model (1e-12) is below the integer resolution and omitted.
    """

    gamma: torch.Tensor
    beta: torch.Tensor
    mean_recip: int


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 quantisation.

    Input: int16 or int32 tensor [..., K] with |x| <= 2**31 - 1 (an int16 -32768 is
    widened first, as the Triton kernel does, so m = 32768 and q = -127).
    m = max_k |x[..., k]| (int32, the row scale: x ~ q * m / 127).
    r = (127 << 40) // max(m, 1)                       (int64, non-negative // positive)
    q = round_shift(x * r, 40)                         (|x * r| <= 127 * 2**40 < 2**47)
    Since |x| <= m, q is in [-127, 127]. A zero row gives q = 0, m = 0.
    Returns (q int8 [..., K], m int32 [...]).
    """
    m = x.to(torch.int32).abs().amax(dim=-1)  # widened first: int16 abs(-32768) wraps
    r = (127 << QUANT_SHIFT) // m.to(torch.int64).clamp_(min=1)
    q = round_shift(x.to(torch.int64) * r.unsqueeze(-1), QUANT_SHIFT)
    return q.to(torch.int8), m


def linear(x: torch.Tensor, p: LinearParams) -> torch.Tensor:
    """Exact integer GEMM with fused bias, requantisation, clamp and optional GELU.

    Input: x int16 [M, K] with |x| <= 32767 (K <= MAX_K), the activations in their
    fixed point (no per-row scale: 16-bit activations keep the model's quality).
      acc[i, j] = sum_k x[i, k] * W[j, k]          exact, |acc| <= 32767 * 127 * K < 2**33
      y = round_shift(acc * M[j] + B[j], shift)    |acc * M| < 2**49, |B| < 2**50
      y = clamp(y, -out_max, out_max); then, if gelu_lut is given, GELU by table:
      y = max(y, 0) + LUT[min(|y|, T)]
    (gelu(y) = y + gelu(-y), so one table of the negative half suffices:
    LUT[t] = round(gelu(-t / 2**F) * 2**F) for 0 <= t < T, F = y's fixed-point bits,
    T = 8 * 2**F, and LUT[T] = 0 since |gelu(-8)| < 2**-40; |result| <= |y|.)
    Returns int16 [M, N] when out_max <= 32767, else int32 [M, N].

    CPU route: one float64 GEMM on x as it is, exact because every partial sum is an
    integer below 2**33 (``cpu_kernels.PackedLinear`` has the argument), then the int64
    epilogue ``cpu_kernels.requantize``.
    """
    from . import cpu_kernels as ck

    w = p._packed
    out = torch.empty(x.shape[0], w.n, dtype=p.out_dtype)
    ck.requantize(w.gemm(x), w.mult, w.const, p.shift, p.out_max, w.lut, out.numpy())
    return out


def attention(qkv: torch.Tensor, mask: torch.Tensor, p: AttentionParams) -> torch.Tensor:
    """Multi-head self-attention with an integer softmax, per (sequence, head).

    Input: qkv int16 [B, L, 3 * H * D] with |.| <= 32767 (columns: Q | K | V, head h at
    h*D:(h+1)*D inside each), mask bool [B, L] (True = real token, >= 1 per sequence;
    the CPU route takes right padding only, a prefix per sequence; L <= 512). For one sequence and head, rows i (queries), keys j unmasked only:
      q8, mq = quantize_rows(Q)     k8, mk = quantize_rows(K)        (per token)
      v8, mv = quantize_rows(V^T)   per channel c over the sequence's unmasked tokens
                                    (masked rows of V are zeroed first)
      t[i,j] = (q8[i] . k8[j]) * mk[j]       |t| <= 32 * 127**2 * 32767 < 2**34
      delta[i,j] = max_j' t[i,j'] - t[i,j]   0 <= delta < 2**35
      R[i] = round_shift(mq[i] * CQK, 10)                              < 2**18
      e[i,j] = min(round_shift(delta * R[i], S), cap)                 delta * R < 2**53
      p[i,j] = exp_table[e[i,j]]            (masked keys: 0)           <= 2**20
      Sum[i] = sum_j p[i,j]                  2**20 <= Sum < 2**29 (the max term is 2**20)
      prob[i,j] = round_shift(p[i,j] * ((PROB_MAX << 32) // Sum[i]), 32)  in [0, PROB_MAX]
      ctx[i,c] = sum_j prob[i,j] * v8[j,c]   |ctx| <= 127 * (PROB_MAX + L/2) < 2**22
      out[i,c] = clamp(round_shift(ctx * mv[c] * MC, SC), -32767, 32767)  (< 2**52)
    Masked query rows output 0. Returns int16 [B, L, H * D] in V's fixed point.

    CPU route: ``cpu_kernels`` quantises Q, K, V and runs the softmax and the output
    requantisation in int64; torch multiplies q8 . k8 and prob . v8 in float64, exact
    because every partial sum, in any order, is an integer far below 2**53: |q8 . k8| <=
    D * 127**2, and prob >= 0 bounds any partial sum of prob . v8 by 127 * sum(prob)
    <= 127 * (PROB_MAX + L/2) < 2**22. (Float32 would be exact too, below 2**24, but only
    at the highest float32 matmul precision: ``torch.set_float32_matmul_precision`` or
    oneDNN's bf16/tf32 modes would round it. No such mode exists for float64.)
    """
    from . import cpu_kernels as ck

    b, length, _ = qkv.shape
    h, d = p.heads, p.head_dim
    if not torch.equal(mask, torch.arange(length) < mask.sum(dim=1, keepdim=True)):
        raise ValueError("the CPU attention takes right-padded masks (a prefix per sequence)")
    q8, k8, v8 = (torch.empty(b, h, length, d, dtype=torch.float64) for _ in range(3))
    mq, mk = (torch.empty(b, h, length, dtype=torch.int64) for _ in range(2))
    mv = torch.empty(b, h, d, dtype=torch.int64)
    probs = torch.empty(b, h, length, length, dtype=torch.float64)
    out = torch.empty(b, length, h * d, dtype=torch.int16)
    m = mask.numpy()
    ck.attention_quantize(qkv.numpy(), m, h, d, q8.numpy(), k8.numpy(), v8.numpy(),
                          mq.numpy(), mk.numpy(), mv.numpy())
    scores = torch.matmul(q8, k8.transpose(-1, -2))
    ck.attention_probs(scores.numpy(), m, mq.numpy(), mk.numpy(), p.score_mult,
                       p.score_shift, p.exp_table.numpy(), probs.numpy())
    ctx = torch.matmul(probs, v8)
    ck.attention_out(ctx.numpy(), m, mv.numpy(), p.out_mult, p.out_shift, out.numpy())
    return out


def add_layernorm(x: torch.Tensor, residual: torch.Tensor, p: LayerNormParams,
                  out_max: int = INT16_MAX) -> torch.Tensor:
    """Fused residual add + integer LayerNorm over the last dimension (N channels).

    Input: x, residual: int16/int32 [..., N] in the same fixed point, each
    |.| <= RESIDUAL_MAX, so |s| <= 2**22 for s = x + residual.
      mean = round_shift(sum(s) * mean_recip, 32)          |sum * recip| < 2**55
      d = s - mean                                         |d| < 2**23
      var = sum(d * d)                                     < 2**55 (N = 384)
      std = floor(sqrt(var)), exactly                      (so |d| <= std)
      r = (1 << 46) // max(std, 1)
      z = round_shift(d * r, 46 - 16)                      Q16 of d / std, |z| <= 2**16
      y = clamp(round_shift(z * gamma + beta, 16), -out_max, out_max)
    d / std * sqrt(N) = (s - mean) / sigma, hence gamma carries sqrt(N).
    The input scale cancels, so y's fixed point is the one gamma/beta were built for.
    Returns int16 [..., N].
    """
    from . import cpu_kernels as ck

    n = x.shape[-1]
    out = torch.empty(x.shape, dtype=torch.int16)
    ck.add_layernorm(x.reshape(-1, n).numpy(), residual.expand_as(x).reshape(-1, n).numpy(),
                     p.gamma.numpy(), p.beta.numpy(), p.mean_recip, out_max,
                     out.view(-1, n).numpy())
    return out


def mean_pool_normalize(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean pooling + normalisation to the committed int8 direction vector.

    Input: h int16-range [B, L, N], mask bool [B, L].
      s[b, c] = sum over unmasked l of h[b, l, c]     int32, |s| <= 512 * 32767 < 2**24
      out = quantize_rows(s)[0]                       int8 [B, N]
    Dividing by the token count and by the L2 norm only rescales s, and the int8
    vector is stored scaled to max-abs 127 (the full int8 range, more precise than a
    unit-norm scale); the decoder L2-normalises it (``client.encoding``).
    """
    s = (h.to(torch.int32) * mask.unsqueeze(-1)).sum(dim=1, dtype=torch.int32)
    return quantize_rows(s)[0]
