"""Integer operations of the verifiable decoder (SmolLM2, Llama architecture).

This module is the specification: every op is defined on integers only and its
docstring states the exact arithmetic, with the bounds that keep every intermediate in
int64 (and every float64 GEMM exact). The CPU route (``cpu_kernels``) computes exactly
these formulas; Triton kernels will have to reproduce them bit for bit.

Conventions
- ``shift_round(a, s, lim)``: for s > 0, floor(a / 2**s + 1/2) (round half toward
  +inf, an arithmetic shift); for s <= 0, a * 2**-s; then clamped to [-lim, lim].
  Every op assumes |a| < 2**62, so for s >= 63 the result is 0. Divisions only ever
  divide a non-negative number by a positive one.
- ``bitlen(m)``: the number of bits of m >= 0 (bitlen(0) = 0).
- Block floating point ("b16"): a row of int16-range integers x (|x| <= ACT_MAX) with one
  int64 exponent e per row: the real value is x * 2**e. ``block16(v, e)`` makes one from
  an int64 row v of exponent e: s = bitlen(max|v|) - 15 (s = 0 for a zero row),
  x = shift_round(v, s, ACT_MAX), exponent e + s. So the row's largest value lands in
  [2**14, 2**15]: 16-bit activations with a per-token (per-row) power-of-two scale.
- A row is one token's vector (or one token's head): no op mixes rows, except attention,
  which reads only the keys at or before each query's position in its own sequence.
  Hence a token's bytes never depend on the batch, on padding, or on whether keys and
  values came from a KV cache or were recomputed.
- Weights: a Q4_1 block's fp16 scale d and minimum m become integers D = round(d *
  2**shift), M = round(m * 2**shift) with one ``shift`` per matrix, so the matrix used is
  W[j, k] = D[j, b] * q[j, k] + M[j, b] (b = k // 32, q in 0..15); Q8_0 has no M and q in
  [-127, 127]. ``shift`` is the largest with max |W| <= w_max(K) =
  (2**53 - 1) // (ACT_MAX * K): then every partial sum of a row of x times W is an integer
  below 2**53 (see ``linear``). For this model every shift is >= 24, so W is exactly the
  GGUF's dequantised value times 2**shift (fp16 values are multiples of 2**-24).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Version of the arithmetic specified here; part of model_id.
SPEC_VERSION = 1
ACT_MAX = 32767
BLOCK = 32
MAX_K = 1536
MAX_CONTEXT = 2048  # positions (prompt + answer) the RoPE table covers
# Residual stream: int64 in Q(F_RES), clamped to +-RES_MAX.
F_RES = 24
RES_MAX = 1 << 56
# RMSNorm
NORM_IN_BITS = 24
NORM_RECIP_SHIFT = 60
NORM_N_BITS = 30
EPS_BITS = 60
# RoPE: Q and K heads normalised to ROPE_IN_BITS, rotated by the Q(ROPE_BITS) table.
ROPE_IN_BITS = 30
ROPE_BITS = 30
# Attention softmax
SCORE_BITS = 16
SCORE_MAX = 1 << 47
DELTA_MAX = 1 << 40
EXP_FRAC_BITS = 10
EXP_ONE_BITS = 20
EXP_RANGE = 21
RATE_SHIFT = 24
PROB_BITS = 24
PROB_SHIFT = 32
# SwiGLU
FFN_IN_BITS = 24
SILU_FRAC_BITS = 12
SILU_RANGE = 16
SIG_BITS = 24
# Logits: Q(LOGIT_BITS)
LOGIT_BITS = 16
LOGIT_MAX = 1 << 47


def w_max(k: int) -> int:
    """Largest |W| for which x . W_j is exact in float64 at reduction length k."""
    return (2**53 - 1) // (ACT_MAX * k)


@dataclass(frozen=True)
class QLinear:
    """A quantised matrix [N, K] as integers (derived in ``quantize.py``).

    q: uint8 0..15 (Q4_1) or int8 [-127, 127] (Q8_0), [N, K], K a multiple of 32.
    d: int64 [N, K / 32], the block scales in Q(shift).
    m: int64 [N, K / 32] the block minimums in Q(shift), or None (Q8_0).
    shift: the matrix's fixed point; max |W| <= w_max(K).
    """

    q: np.ndarray
    d: np.ndarray
    m: np.ndarray | None
    shift: int

    @property
    def n(self) -> int:
        return self.q.shape[0]

    @property
    def k(self) -> int:
        return self.q.shape[1]

    def dense(self) -> np.ndarray:
        """W int64 [N, K]."""
        w = self.d.repeat(BLOCK, axis=1) * self.q.astype(np.int64)
        if self.m is not None:
            w += self.m.repeat(BLOCK, axis=1)
        return w

    @cached_property
    def _transposed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q^T [K, N], D^T, M^T (D^T for Q8_0)) for the integer-loop route."""
        dt = np.ascontiguousarray(self.d.T)
        return (np.ascontiguousarray(self.q.T), dt,
                dt if self.m is None else np.ascontiguousarray(self.m.T))

    @cached_property
    def _wt(self) -> np.ndarray:
        """W^T as float64 [K, N] for the GEMM route (exact: integers below 2**27.5)."""
        return np.ascontiguousarray(self.dense().T.astype(np.float64))


@dataclass(frozen=True)
class NormParams:
    """RMSNorm: gamma: int64 [K] = round(g * sqrt(K) * 2**frac) (|.| < 2**31);
    eps: round(K * eps_f * 2**EPS_BITS)."""

    gamma: np.ndarray
    frac: int
    eps: int


@dataclass(frozen=True)
class AttentionParams:
    """heads H, kv_heads G (H / G query heads share one key/value head), head_dim D;
    rate = round(2**(EXP_FRAC_BITS + RATE_SHIFT - SCORE_BITS) / (ln 2 * sqrt(D)))
    (< 2**16); exp_table = ``tables.exp2_table()``; cos/sin = ``tables.rope_table``."""

    heads: int
    kv_heads: int
    head_dim: int
    rate: int
    exp_table: np.ndarray
    cos: np.ndarray
    sin: np.ndarray


def shift_round(a: np.ndarray, s: int, lim: int) -> np.ndarray:
    """The convention above, for an int64 array and one shift (numpy)."""
    if s >= 63:
        out = np.zeros_like(a)
    elif s > 0:
        out = (a + (1 << (s - 1))) >> s
    else:
        cap = lim >> -s if -s < 63 else 0
        return np.where(a > cap, lim, np.where(a < -cap, -lim, a << -s if -s < 63 else 0))
    return np.clip(out, -lim, lim)


def embed(ids: np.ndarray, emb: QLinear) -> np.ndarray:
    """Token embedding into the residual stream (Q8_0 table, one row per id).

      h[t, k] = shift_round(D[id, b] * q[id, k], shift - F_RES, RES_MAX)   (|D q| < 2**27)
    Returns int64 [T, K]."""
    w = emb.d[ids].repeat(BLOCK, axis=1) * emb.q[ids].astype(np.int64)
    return shift_round(w, emb.shift - F_RES, RES_MAX)


def rmsnorm(h: np.ndarray, p: NormParams) -> tuple[np.ndarray, np.ndarray]:
    """RMSNorm (times gamma) of each residual row, to block floating point.

    Input h int64 [R, K] in Q(F_RES), |h| <= RES_MAX. Per row (a zero row gives x = 0,
    e = 0):
      t = bitlen(max|h|) - NORM_IN_BITS
      u = shift_round(h, t, 2**62)                 |u| <= 2**24, max|u| >= 2**23
      ss = sum u**2                                < K * 2**48 <= 2**59 (K <= 1536)
      eps_u = shift_round(eps, EPS_BITS + 2t - 2 F_RES, 2**60)   K * eps_f in u**2 units
      r = isqrt(ss + eps_u), exactly               2**23 <= r < 2**31
      recip = 2**NORM_RECIP_SHIFT // r             <= 2**37
      n = shift_round(u * recip, 60 - NORM_N_BITS) |u * recip| <= 2**60, |n| <= 2**30
      z = n * gamma                                |z| < 2**61
      (x, e) = block16(z, -(NORM_N_BITS + frac))
    u / r * sqrt(K) = h / sqrt(mean(h**2) + eps_f), and gamma carries sqrt(K): the
    real value x * 2**e is h / rms(h) * g (t cancels).
    Returns (x int16 [R, K], e int64 [R])."""
    from . import cpu_kernels as ck

    x = np.empty(h.shape, dtype=np.int16)
    e = np.empty(h.shape[0], dtype=np.int64)
    ck.rmsnorm(h, p.gamma, p.frac, p.eps, x, e)
    return x, e


def linear(x: np.ndarray, w: QLinear) -> np.ndarray:
    """Exact accumulators of x W^T.

    Input x int16 [R, K], |x| <= ACT_MAX (block floating point rows; their exponents
    pass through: the result's row exponent is e - w.shift).
      acc[i, j] = sum_k x[i, k] * W[j, k]   |acc| <= ACT_MAX * K * w_max(K) < 2**53
    Returns int64 [R, N].

    CPU routes (``cpu_kernels``), both exact, chosen by the row count only:
    - a float64 GEMM of x by the dense W: every product and partial sum, in any order,
      with or without FMA, is an integer of magnitude <= ACT_MAX * K * w_max(K) < 2**53,
      so each float64 addition is exact whatever BLAS, ISA, blocking or threads compute
      it (no precision mode applies to float64);
    - few rows (decoding): integer loops over the packed weights,
      acc = sum_b D[j, b] * (sum_{k in b} x q) + M[j, b] * (sum_{k in b} x), int32 inner
      sums (|.| <= 32 * ACT_MAX * 127 < 2**27) and int64 outer ones.
    """
    from . import cpu_kernels as ck

    if x.shape[0] <= ck.GEMV_ROWS:
        return ck.gemv(x, w)
    return ck.gemm(x, w)


def residual_add(h: np.ndarray, acc: np.ndarray, e: np.ndarray, w_shift: int) -> None:
    """h += shift_round(acc, w_shift - e - F_RES, RES_MAX), clamped to +-RES_MAX, in place.
    acc int64 [R, N] from ``linear`` (|acc| < 2**53), e its input rows' exponents."""
    from . import cpu_kernels as ck

    ck.residual_add(h, acc, e, w_shift)


def rope_heads(acc: np.ndarray, e: np.ndarray, w_shift: int, pos: np.ndarray,
               heads: int, p: AttentionParams) -> tuple[np.ndarray, np.ndarray]:
    """Rotary embedding of Q or K heads, to block floating point per (token, head).

    acc int64 [R, heads * D] from ``linear`` (row exponent e - w_shift), pos int64 [R]
    absolute positions (< MAX_CONTEXT). Per row and head (zero heads: x = 0, e = 0):
      t = bitlen(max|acc_h|) - ROPE_IN_BITS;  v = shift_round(acc_h, t, 2**62)  (|v| <= 2**30)
      pairs (2i, 2i+1) (the GGUF's row order: llama.cpp's rotation of adjacent pairs):
      y[2i]   = v[2i] * cos[pos, i] - v[2i+1] * sin[pos, i]       |y| <= 2**61
      y[2i+1] = v[2i] * sin[pos, i] + v[2i+1] * cos[pos, i]
      (x, e_h) = block16(y, e - w_shift + t - ROPE_BITS)
    Returns (x int16 [R, heads, D], e int64 [R, heads])."""
    from . import cpu_kernels as ck

    d = p.head_dim
    x = np.empty((acc.shape[0], heads, d), dtype=np.int16)
    eh = np.empty((acc.shape[0], heads), dtype=np.int64)
    ck.rope_heads(acc, e, w_shift, pos, p.cos, p.sin, x, eh)
    return x, eh


def heads_block16(acc: np.ndarray, e: np.ndarray, w_shift: int,
                  heads: int) -> tuple[np.ndarray, np.ndarray]:
    """V heads: block16(acc_h, e - w_shift) per (token, head).
    Returns (x int16 [R, heads, D], e int64 [R, heads])."""
    from . import cpu_kernels as ck

    r = acc.shape[0]
    x = np.empty((r, heads, acc.shape[1] // heads), dtype=np.int16)
    eh = np.empty((r, heads), dtype=np.int64)
    ck.heads_block16(acc, e, w_shift, x, eh)
    return x, eh


def attention(q: np.ndarray, eq: np.ndarray, k: np.ndarray, ek: np.ndarray, v: np.ndarray,
              ev: np.ndarray, start: int, p: AttentionParams) -> tuple[np.ndarray, np.ndarray]:
    """Causal grouped-query attention of one sequence with an integer softmax.

    Input: queries q int16 [Lq, H, D] (exponents eq [Lq, H]) at positions start + i; keys
    and values of positions 0 .. start + Lq - 1: k, v int16 [Lk, G, D], ek, ev [Lk, G]
    (the KV cache followed by this call's tokens). Query head h reads kv head g = h // (H/G).
    For a query at position P and head h, over keys j <= P:
      dot[j] = q . k[j]                                        |dot| <= D * 2**30 = 2**36
      s[j] = shift_round(dot[j], -(eq + ek[j] + SCORE_BITS), SCORE_MAX)   q.k in Q(16)
      delta[j] = min(max_j' s[j'] - s[j], DELTA_MAX)                   0 <= delta <= 2**40
      x[j] = min(shift_round(delta * rate, RATE_SHIFT), cap)          delta * rate < 2**56
      p[j] = exp_table[x[j]]                      <= 2**20 (= 2**20 at the maximum)
      S = sum p[j]                                2**20 <= S <= MAX_CONTEXT * 2**20 = 2**31
      recip = 2**(PROB_BITS + PROB_SHIFT) // S    <= 2**36
      prob[j] = shift_round(p[j] * recip, PROB_SHIFT)        p * recip <= 2**56, <= 2**24
      E = max_j ev[j];  w[j] = shift_round(prob[j], E - ev[j])   values' exponents folded in
      ctx[c] = sum_j w[j] * v[j, c]     |.| <= ACT_MAX * (2**24 + MAX_CONTEXT) < 2**40
    (x is the base-2 exponent of exp(-(q.k' - q.k) / sqrt(D)) in Q(EXP_FRAC_BITS).)
    ctx's real value is ctx * 2**(E - PROB_BITS). Per query row, over its H heads:
      c_h = E_h - PROB_BITS; c = max_h c_h;  y_h = shift_round(ctx_h, c - c_h, 2**62)
      (x, e) = block16(y, c)       the o_proj input row (heads in order, h * D + c)
    Returns (x int16 [Lq, H * D], e int64 [Lq]).

    CPU route: q . k and w . v as float64 matmuls, exact since every partial sum is an
    integer below 2**53 (|q . k| partial sums <= D * 2**30; w >= 0, so partial sums of
    w . v are bounded by ACT_MAX * sum w < 2**40), or, for a few queries (decoding), int64
    loops; numba for the rest, in int64.
    """
    from . import cpu_kernels as ck

    return ck.attention(q, eq, k, ek, v, ev, start, p)


def swiglu(gate: np.ndarray, up: np.ndarray, e: np.ndarray, gate_shift: int, up_shift: int,
           sig_table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """silu(gate) * up, to block floating point (the down projection's input).

    gate, up int64 [R, F] from ``linear`` (exponents e - gate_shift, e - up_shift). Per row:
      tg = bitlen(max|gate|) - FFN_IN_BITS; g = shift_round(gate, tg, 2**62)  |g| <= 2**24
      tu likewise; u = shift_round(up, tu, 2**62)                             |u| <= 2**24
      eg = e - gate_shift + tg;  eu = e - up_shift + tu          (real g = g * 2**eg)
      i = min(shift_round(|g|, -(eg + SILU_FRAC_BITS), cap), cap)   |g| in Q(12), capped
      sig = T[i] if g < 0 else 2**SIG_BITS - T[i]     T = tables.sigmoid_table(), Q(24)
      s = shift_round(g * sig, SIG_BITS, 2**62)      silu(g) in g's units, |s| <= 2**24
      (x, ex) = block16(s * u, eg + eu)              |s * u| <= 2**48
    (A zero gate or up row is a zero row: x = 0, ex = 0.) Returns (x int16 [R, F], ex [R]).
    """
    from . import cpu_kernels as ck

    x = np.empty(gate.shape, dtype=np.int16)
    ex = np.empty(gate.shape[0], dtype=np.int64)
    ck.swiglu(gate, up, e, gate_shift, up_shift, sig_table, x, ex)
    return x, ex


def logits(acc: np.ndarray, e: np.ndarray, w_shift: int) -> np.ndarray:
    """Logits in Q(LOGIT_BITS): shift_round(acc, w_shift - e - LOGIT_BITS, LOGIT_MAX)
    per row, acc from ``linear`` on the final norm's rows. Returns int64 [R, V]."""
    from . import cpu_kernels as ck

    out = np.empty(acc.shape, dtype=np.int64)
    ck.rows_shift(acc, e, w_shift - LOGIT_BITS, LOGIT_MAX, out)
    return out
