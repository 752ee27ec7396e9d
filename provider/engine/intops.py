"""Reference integer operations of the verifiable engine (the CPU backend).

This module is the specification the Triton kernels (``triton_ops.py``) must
reproduce bit for bit. Every op is defined on integers only; the docstrings state
the exact arithmetic. Where the torch implementation takes a fast route (int8
``torch._int_mm``, float32/float64 arithmetic on integers) the docstring proves that
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

INT16_MAX = 32767
# Linear outputs that feed a residual add are clamped to +-RESIDUAL_MAX.
RESIDUAL_MAX = 1 << 21
# Fixed-point bits of the reciprocal in quantize_rows.
QUANT_SHIFT = 40
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
                (see ``gelu``); LUT[T] == 0.
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
    def _planes(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # CPU helpers: W^T, M / 2**shift and the bias with the rounding and the lo-plane
        # offset folded in, / 2**shift, as float64 (exact: integers below 2**53 times a
        # power of two)
        w, m = self.weight, self.multiplier
        bias = 128 * w.to(torch.int64).sum(dim=1) * m + self.bias + (1 << (self.shift - 1))
        scale = 2.0 ** -self.shift
        return w.t(), m.to(torch.float64) * scale, bias.to(torch.float64) * scale


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

    Input: int16 or int32 tensor [..., K] with |x| <= 2**31 - 1.
    m = max_k |x[..., k]| (int32, the row scale: x ~ q * m / 127).
    r = (127 << 40) // max(m, 1)                       (int64, non-negative // positive)
    q = round_shift(x * r, 40)                         (|x * r| <= 127 * 2**40 < 2**47)
    Since |x| <= m, q is in [-127, 127]. A zero row gives q = 0, m = 0.
    Returns (q int8 [..., K], m int32 [...]).
    """
    m = x.abs().amax(dim=-1).to(torch.int32)
    r = (127 << QUANT_SHIFT) // m.to(torch.int64).clamp_(min=1)
    q = round_shift(x.to(torch.int64) * r.unsqueeze(-1), QUANT_SHIFT)
    return q.to(torch.int8), m


def gelu(y: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Integer GELU by table: gelu(y) = max(y, 0) + LUT[min(|y|, T)].

    Uses gelu(y) = y + gelu(-y), so one table of the negative half suffices:
    LUT[t] = round(gelu(-t / 2**F) * 2**F) for 0 <= t < T (F = the fixed-point bits
    of y, T = 8 * 2**F) and LUT[T] = 0 (|gelu(-8)| < 2**-40). ``y`` holds integers
    with |y| <= 32767 (an integer or an integer-valued float64 tensor); the result has
    the same fixed point and |result| <= |y|.
    """
    return y.clamp(min=0).add_(_lookup(lut, y.abs().clamp_(max=lut.numel() - 1)))


def _lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a 1-D table (index_select: much faster than advanced indexing)."""
    flat = index.reshape(-1).to(torch.int32)
    return table.index_select(0, flat).view(index.shape)


def linear(x: torch.Tensor, p: LinearParams) -> torch.Tensor:
    """Exact integer GEMM with fused bias, requantisation, clamp and optional GELU.

    Input: x int16 [M, K] with |x| <= 32767 (K <= 1536), the activations in their
    fixed point (no per-row scale: 16-bit activations keep the model's quality).
      acc[i, j] = sum_k x[i, k] * W[j, k]          exact, |acc| <= 32767 * 127 * K < 2**33
      y = round_shift(acc * M[j] + B[j], shift)    |acc * M| < 2**49, |B| < 2**50
      y = clamp(y, -out_max, out_max); then y = gelu(y) if gelu_lut is given.
    Returns int16 [M, N] when out_max <= 32767, else int32 [M, N].

    CPU route: x = 256 * hi + lo + 128 with int8 planes hi = x >> 8 and
    lo = (x & 255) - 128, two exact int8 ``_int_mm``s; 256 * A_hi + A_lo = (x - 128) . W
    fits int32 for K <= 514. The epilogue runs in float64 on (integer < 2**53) / 2**shift
    values, which float64 represents exactly, so floor() gives round_shift exactly.
    """
    wt, mult, bias = p._planes
    hi = (x >> 8).to(torch.int8)
    lo = (x & 255).sub_(128).to(torch.int8)
    a_hi, a_lo = torch._int_mm(hi, wt), torch._int_mm(lo, wt)
    if x.shape[1] <= 514:
        acc = a_hi.mul_(256).add_(a_lo).to(torch.float64)
    else:
        acc = a_hi.to(torch.float64).mul_(256).add_(a_lo)
    y = torch.addcmul(bias, acc, mult).floor_().clamp_(-p.out_max, p.out_max)
    if p.gelu_lut is not None:
        y = gelu(y, p.gelu_lut)
    return y.to(p.out_dtype)


def _f32_exact_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Integer matmul through float32, exact when every partial sum is below 2**24
    (callers prove it); float64 (exact below 2**53) if float32 matmuls may use TF32/bf16."""
    dtype = torch.float32 if torch.get_float32_matmul_precision() == "highest" else torch.float64
    return torch.matmul(a.to(dtype), b.to(dtype)).to(torch.float64)


# sequences per attention chunk: keeps the [chunk, H, L, L] intermediates cache-sized
_ATTENTION_CHUNK_SCORES = 1 << 18


def attention(qkv: torch.Tensor, mask: torch.Tensor, p: AttentionParams) -> torch.Tensor:
    """Multi-head self-attention with an integer softmax, per (sequence, head).

    Input: qkv int16 [B, L, 3 * H * D] with |.| <= 32767 (columns: Q | K | V, head h at
    h*D:(h+1)*D inside each), mask bool [B, L] (True = real token, >= 1 per sequence,
    L <= 512). For one sequence and head, rows i (queries), keys j unmasked only:
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

    CPU route: float64 arithmetic on integers below 2**53 (every product above), so it
    is exact; q8.k8 * mk sums stay below 2**34 and prob.v8 partial sums below 2**22.
    """
    b, length, _ = qkv.shape
    step = max(1, _ATTENTION_CHUNK_SCORES // (p.heads * length * length))
    out = torch.empty(b, length, p.heads * p.head_dim, dtype=torch.int16, device=qkv.device)
    for s in range(0, b, step):
        out[s:s + step] = _attention_chunk(qkv[s:s + step], mask[s:s + step], p)
    return out


def _attention_chunk(qkv: torch.Tensor, mask: torch.Tensor, p: AttentionParams) -> torch.Tensor:
    b, length, _ = qkv.shape
    h, d = p.heads, p.head_dim
    q, k, v = qkv.view(b, length, 3, h, d).permute(2, 0, 3, 1, 4)  # each [B, H, L, D]
    key = mask[:, None, None, :]  # [B, 1, 1, L]
    q8, mq = quantize_rows(q)
    k8, mk = quantize_rows(k)
    v8t, mv = quantize_rows(v.masked_fill(~mask[:, None, :, None], 0).transpose(-1, -2))

    kf = k8.to(torch.float64).mul_(mk.unsqueeze(-1))
    t = torch.matmul(q8.to(torch.float64), kf.transpose(-1, -2))  # [B, H, L, L]
    t.masked_fill_(~key, -2.0 ** 60)  # finite: masked keys are zeroed after the table
    rate = round_shift(mq.to(torch.int64) * p.score_mult, RATE_SHIFT)
    e = torch.sub(t.amax(dim=-1, keepdim=True), t, out=t).mul_(rate.unsqueeze(-1))
    e = e.add_(float(1 << (p.score_shift - 1))).mul_(2.0 ** -p.score_shift).floor_()
    pe = _lookup(p.exp_table, e.clamp_(max=p.exp_cap)).masked_fill_(~key, 0)

    recip = (PROB_MAX << PROB_SHIFT) // pe.sum(dim=-1, keepdim=True, dtype=torch.int64)
    prob = pe.to(torch.float64).mul_(recip * 2.0 ** -PROB_SHIFT).add_(0.5).floor_()
    ctx = _f32_exact_matmul(prob, v8t.transpose(-1, -2))  # [B, H, L, D]
    scale = (mv.to(torch.float64) * p.out_mult).unsqueeze(-2)
    out = ctx.mul_(scale).add_(float(1 << (p.out_shift - 1))).mul_(2.0 ** -p.out_shift).floor_()
    out = out.clamp_(-INT16_MAX, INT16_MAX).masked_fill_(~mask[:, None, :, None], 0)
    return out.permute(0, 2, 1, 3).reshape(b, length, h * d).to(torch.int16)


def isqrt(n: torch.Tensor) -> torch.Tensor:
    """floor(sqrt(n)) for an int64 tensor with 0 <= n < 2**62, exactly.

    floor(sqrt(n)) is unique, so any exact method gives the same bits (a kernel may use
    the bitwise restoring method). Here: the float64 square root is within 1 of it
    (relative error < 2**-52 on a value below 2**31), then one integer correction
    step in each direction makes it exact.
    """
    r = torch.sqrt(n.to(torch.float64)).to(torch.int64)
    r -= (r * r > n).to(torch.int64)
    r += ((r + 1) * (r + 1) <= n).to(torch.int64)
    return r


def add_layernorm(x: torch.Tensor, residual: torch.Tensor, p: LayerNormParams,
                  out_max: int = INT16_MAX) -> torch.Tensor:
    """Fused residual add + integer LayerNorm over the last dimension (N channels).

    Input: x, residual: int16/int32 [..., N] in the same fixed point, each
    |.| <= RESIDUAL_MAX, so |s| <= 2**22 for s = x + residual.
      mean = round_shift(sum(s) * mean_recip, 32)          |sum * recip| < 2**55
      d = s - mean                                         |d| < 2**23
      var = sum(d * d)                                     < 2**55 (N = 384)
      std = isqrt(var)                                     (so |d| <= std)
      r = (1 << 46) // max(std, 1)
      z = round_shift(d * r, 46 - 16)                      Q16 of d / std, |z| <= 2**16
      y = clamp(round_shift(z * gamma + beta, 16), -out_max, out_max)
    d / std * sqrt(N) = (s - mean) / sigma, hence gamma carries sqrt(N).
    The input scale cancels, so y's fixed point is the one gamma/beta were built for.
    Returns int16 [..., N].
    """
    s = x.to(torch.int64) + residual.to(torch.int64)
    mean = round_shift(s.sum(dim=-1, keepdim=True) * p.mean_recip, LN_MEAN_SHIFT)
    d = s.sub_(mean)
    std = isqrt((d * d).sum(dim=-1, keepdim=True))
    r = (1 << LN_RECIP_SHIFT) // std.clamp_(min=1)
    z = round_shift(d.mul_(r), LN_RECIP_SHIFT - LN_Z_BITS)
    y = round_shift(z.mul_(p.gamma).add_(p.beta), LN_Z_BITS)
    return y.clamp_(-out_max, out_max).to(torch.int16)


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
