"""Fused CPU epilogues (numba) for the integer ops of ``intops``.

torch runs the GEMMs (exact int8 ``_int_mm``, float32 matmuls on small integers whose
sums stay below 2**24); these kernels run everything between them in one pass over
memory, in int64 (float64 where every value provably stays an integer below 2**53), with
exactly the formulas ``intops`` documents. numba's int64 ``>>``
is arithmetic as torch's, and the kernels only divide non-negative by positive
numbers, so floor and truncation agree.

Threads: the kernels are serial and release the GIL. Several threads run several
forward chunks side by side (``Engine``); within one chunk only torch's GEMMs use more
than one thread. (Parallel builds were slower: numba's thread pool and torch's OpenMP
threads, which spin after each GEMM, fought over the cores.)
"""
from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch
from numba import njit

from .intops import (INT16_MAX, LN_MEAN_SHIFT, LN_RECIP_SHIFT, LN_Z_BITS, PROB_MAX,
                     PROB_SHIFT, QUANT_SHIFT, RATE_SHIFT, LinearParams)

# numba freezes module globals into the compiled code as constants
QUANT_NUM = 127 << QUANT_SHIFT
QUANT_HALF, QUANT_UNIT = 2.0 ** (QUANT_SHIFT - 1), 2.0 ** -QUANT_SHIFT  # float64: see _scaled
PROB_NUM = PROB_MAX << PROB_SHIFT
PROB_HALF = 1 << (PROB_SHIFT - 1)
RATE_HALF = 1 << (RATE_SHIFT - 1)
MEAN_HALF = 1 << (LN_MEAN_SHIFT - 1)
LN_ONE = 1 << LN_RECIP_SHIFT
Z_SHIFT = LN_RECIP_SHIFT - LN_Z_BITS
Z_HALF = 1 << (Z_SHIFT - 1)
Y_HALF = 1 << (LN_Z_BITS - 1)


# oneDNN's quantised linear (s8 x s8 into int32 accumulators, written out as float32:
# exact while |sum| < 2**24) is the faster exact GEMM where oneDNN has an optimised int8
# kernel for the CPU (14x ``torch._int_mm`` on small batches on an Intel x86). The planes
# are int8-range (|.| <= 128) and |W| <= 127, so K is split into chunks of at most
# K_CHUNK: 128 * 127 * 1024 < 2**24.
ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_prepack")
K_CHUNK = 1024  # and at most two chunks (K <= 2048): ``requantize`` takes two
GEMM_ROWS = 1024  # the row count oneDNN's weight packing is tuned for (2 x BATCH_TOKENS)


@functools.cache
def onednn_is_faster() -> bool:
    """Whether oneDNN's int8 linear beats ``torch._int_mm`` on this CPU. Where oneDNN has
    no optimised kernel for our call it runs its reference loop, ~3000x slower (an AMD
    EPYC with AVX-512 VNNI: 4 s per [1024 x 384] x [384 x 384] GEMM, 1.4 ms by _int_mm).
    Both are exact, so the choice changes speed only: time each once on a small GEMM."""
    if not ONEDNN:
        return False
    gen = torch.Generator().manual_seed(0)
    w = torch.randint(-127, 128, (64, 384), dtype=torch.int8, generator=gen)
    planes = torch.randint(-128, 128, (1, 64, 384), dtype=torch.int8, generator=gen)
    p = LinearParams(weight=w, multiplier=torch.ones(64, dtype=torch.int64),
                     bias=torch.zeros(64, dtype=torch.int64), shift=1, out_max=1)
    try:
        packed = PackedLinear(p, onednn=True)
        packed.gemm(planes)  # the first call builds oneDNN's primitive
    except RuntimeError:  # oneDNN refused this CPU or call: the exact fallback it is
        return False
    times = []
    for linear in (packed, PackedLinear(p, onednn=False)):
        linear.gemm(planes)
        started = time.perf_counter()
        for _ in range(3):
            linear.gemm(planes)
        times.append(time.perf_counter() - started)
    return times[0] <= times[1]


class PackedLinear:
    """A ``LinearParams``' weights packed for the CPU GEMM, and its epilogue constants.

    The GEMM input is x = 256 * hi + lo + 128 as the int8 planes hi = x >> 8 and
    lo = (x & 255) - 128 (``split_planes``); the bias constant folds in the rounding and
    the lo plane's offset, 128 * sum(W).
    """

    def __init__(self, p, onednn: bool | None = None):
        onednn = onednn_is_faster() if onednn is None else onednn
        w, m = p.weight, p.multiplier
        n, k = w.shape
        chunks = -(-k // K_CHUNK) if onednn else 1
        if chunks > 2:
            raise ValueError(f"K = {k} > {2 * K_CHUNK} is not supported")
        step = -(-k // chunks)
        self.bounds = np.array([(a, min(a + step, k)) for a in range(0, k, step)], dtype=np.int64)
        self.n = n
        self.mult = m.numpy()
        self.const = (128 * w.to(torch.int64).sum(dim=1) * m + p.bias + (1 << (p.shift - 1))).numpy()
        lut = p.gelu_lut if p.gelu_lut is not None else torch.empty(0, dtype=torch.int32)
        self.lut = lut.numpy()
        self.onednn = onednn
        if onednn:
            self.packed = [torch.ops.onednn.qlinear_prepack(w[:, a:b].contiguous(), [GEMM_ROWS, int(b - a)])
                           for a, b in self.bounds]
            self.ones, self.zeros = torch.ones(n), torch.zeros(n, dtype=torch.int64)
        else:
            self.wt = w.t()

    def gemm(self, planes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """planes int8 [C, R, Kc] -> the accumulators [R, N] (float32 or int32) of the
        first and second K chunk (the second empty if there is one chunk)."""
        if not self.onednn:
            acc = torch._int_mm(planes[0], self.wt).numpy()
            return acc, acc[:0]
        accs = [
            torch.ops.onednn.qlinear_pointwise(x, 1.0, 0, w, self.ones, self.zeros, None, 1.0, 0,
                                               torch.float32, "none", [], "").numpy()
            for x, w, (lo, hi) in zip(planes, self.packed, self.bounds)
            for x in [x[:, :hi - lo].contiguous()]]  # the last chunk may be narrower
        return accs[0], accs[1] if len(accs) > 1 else accs[0][:0]


@njit(cache=True, nogil=True)
def split_planes(x, bounds, planes):
    """x int16 [M, K] -> planes int8 [C, 2M, Kc]: for chunk c (columns bounds[c]), rows
    0..M-1 hold hi = x >> 8 and rows M..2M-1 hold lo = (x & 255) - 128."""
    m = x.shape[0]
    for i in range(m):
        for c in range(bounds.shape[0]):
            a, b = bounds[c, 0], bounds[c, 1]
            row, hi, lo = x[i, a:b], planes[c, i], planes[c, m + i]
            for k in range(b - a):
                hi[k] = row[k] >> 8
            for k in range(b - a):
                lo[k] = (row[k] & 255) - 128


@njit(cache=True, nogil=True)
def requantize(acc, acc2, mult, const, shift, out_max, lut, out):
    """linear's epilogue: acc = 256 * A_hi + A_lo over the K chunks (``const`` holds the
    rest), y = clamp((acc * M + const) >> shift), then GELU by table if ``lut`` is not
    empty. acc, acc2: float32/int32 [2M, N] of exact integers (hi rows, then lo rows) of
    the first and second K chunk; acc2 is empty when there is one chunk. One simple loop
    per case and step, so that they vectorise (a branch or a table read per element in
    the arithmetic loop stops that: 2-3x slower)."""
    m, n = out.shape
    top = lut.shape[0] - 1
    y = np.empty(n, dtype=np.int32)  # |y| <= out_max <= 2**21
    for i in range(m):
        if acc2.shape[0] == 0:
            for j in range(n):
                total = np.int64(acc[i, j]) * 256 + np.int64(acc[m + i, j])
                y[j] = min(max((total * mult[j] + const[j]) >> shift, -out_max), out_max)
        else:
            for j in range(n):
                total = (np.int64(acc[i, j]) * 256 + np.int64(acc[m + i, j])
                         + np.int64(acc2[i, j]) * 256 + np.int64(acc2[m + i, j]))
                y[j] = min(max((total * mult[j] + const[j]) >> shift, -out_max), out_max)
        if top >= 0:
            for j in range(n):
                v = y[j]
                out[i, j] = max(v, 0) + lut[min(abs(v), top)]
        else:
            for j in range(n):
                out[i, j] = y[j]


@njit(cache=True, nogil=True, inline="always")
def _scaled(x, r):
    """round_shift(x * r, QUANT_SHIFT) in float64, exactly: |x * r| <= 127 * 2**40 and
    the rounding constant keep every value an integer below 2**53, and the scaling by a
    power of two is exact, so floor gives the arithmetic shift."""
    return np.floor((x * r + QUANT_HALF) * QUANT_UNIT)


@njit(cache=True, nogil=True)
def attention_quantize(qkv, mask, heads, dim, q8, k8, v8, mq, mk, mv):
    """Per-token int8 Q and K rows and per-channel int8 V columns (over unmasked
    tokens, masked rows zero) of ``attention``, as float32 for the exact matmuls.
    qkv int16 [B, L, 3*H*D], mask a prefix per sequence; q8/k8/v8 float32 [B, H, L, D];
    mq/mk int64 [B, H, L]; mv int64 [B, H, D]."""
    b, length = mask.shape
    hd = heads * dim
    for s in range(b):
        n = 0
        while n < length and mask[s, n]:
            n += 1
        vmax = np.zeros(hd, dtype=np.int32)
        for t in range(length):
            row = qkv[s, t]
            for part in range(2):  # Q, then K
                for h in range(heads):
                    a = part * hd + h * dim
                    m = 0
                    for c in range(dim):
                        m = max(m, abs(np.int32(row[a + c])))
                    r = np.float64(QUANT_NUM // max(np.int64(m), 1))
                    out = q8[s, h, t] if part == 0 else k8[s, h, t]
                    for c in range(dim):
                        out[c] = _scaled(row[a + c], r)
                    if part == 0:
                        mq[s, h, t] = m
                    else:
                        mk[s, h, t] = m
            if t < n:
                for c in range(hd):
                    vmax[c] = max(vmax[c], abs(np.int32(row[2 * hd + c])))
        r = np.empty(hd, dtype=np.float64)
        for c in range(hd):
            r[c] = QUANT_NUM // max(np.int64(vmax[c]), 1)
        for h in range(heads):
            mv[s, h] = vmax[h * dim:(h + 1) * dim]
        for t in range(length):
            row = qkv[s, t]
            for h in range(heads):
                out = v8[s, h, t]
                if t < n:
                    for c in range(dim):
                        out[c] = _scaled(row[2 * hd + h * dim + c], r[h * dim + c])
                else:
                    out[:] = 0


@njit(cache=True, nogil=True)
def attention_probs(scores, mask, mq, mk, score_mult, score_shift, exp_table, probs):
    """Integer softmax of ``attention``: scores float32 [B, H, L, L] = q8 . k8 (exact
    integers), mask a prefix per sequence (right padding); probs float32 [B, H, L, L]
    gets prob for the unmasked keys of the unmasked queries, 0 elsewhere. One simple
    loop per step, so that they vectorise."""
    b, heads, length, _ = scores.shape
    cap = exp_table.shape[0] - 1
    half = np.int64(1) << (score_shift - 1)
    for bh in range(b * heads):
        s, h = bh // heads, bh % heads
        n = 0
        while n < length and mask[s, n]:
            n += 1
        t = np.empty(n, dtype=np.int64)
        e = np.empty(n, dtype=np.int32)  # int32 indices and values: twice the lanes
        pe = np.empty(n, dtype=np.int32)
        mkj = mk[s, h, :n]
        for i in range(n):
            row = scores[s, h, i, :n]
            for j in range(n):
                t[j] = np.int64(row[j]) * mkj[j]
            top = t.max()
            rate = (mq[s, h, i] * score_mult + RATE_HALF) >> RATE_SHIFT
            for j in range(n):
                e[j] = min(((top - t[j]) * rate + half) >> score_shift, cap)
            for j in range(n):
                pe[j] = exp_table[e[j]]
            total = np.int64(0)
            for j in range(n):
                total += pe[j]
            recip = PROB_NUM // total
            out = probs[s, h, i]
            for j in range(n):
                out[j] = (pe[j] * recip + PROB_HALF) >> PROB_SHIFT
            out[n:] = 0
        probs[s, h, n:] = 0  # masked queries: no stale NaN in the matmul

@njit(cache=True, nogil=True)
def attention_out(ctx, mask, mv, out_mult, out_shift, out):
    """ctx float32 [B, H, L, D] = prob . v8 (exact integers); out int16 [B, L, H*D] =
    clamp(round_shift(ctx * mv * MC, SC)), masked rows 0."""
    b, heads, length, dim = ctx.shape
    half = np.int64(1) << (out_shift - 1)
    for bh in range(b * heads):
        s, h = bh // heads, bh % heads
        scale = mv[s, h] * out_mult
        for i in range(length):
            row = out[s, i, h * dim:(h + 1) * dim]
            if mask[s, i]:
                for c in range(dim):
                    row[c] = min(max((np.int64(ctx[s, h, i, c]) * scale[c] + half) >> out_shift,
                                     -INT16_MAX), INT16_MAX)
            else:
                row[:] = 0


@njit(cache=True, nogil=True)
def _isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**62, exactly: the float64 root is within 1 of it
    (relative error < 2**-52 on a value below 2**31), one correction each way fixes it."""
    r = np.int64(math.sqrt(np.float64(n)))
    if r * r > n:
        r -= 1
    if (r + 1) * (r + 1) <= n:
        r += 1
    return r


@njit(cache=True, nogil=True)
def add_layernorm(x, residual, gamma, beta, mean_recip, out_max, out):
    """Fused residual add + integer LayerNorm of ``intops.add_layernorm`` per row.
    x, residual int16/int32 [R, N]; out int16 [R, N]."""
    rows, n = x.shape
    d = np.empty(n, dtype=np.int64)
    for i in range(rows):
        total = np.int64(0)
        for k in range(n):
            d[k] = np.int64(x[i, k]) + np.int64(residual[i, k])
            total += d[k]
        mean = (total * mean_recip + MEAN_HALF) >> LN_MEAN_SHIFT
        var = np.int64(0)
        for k in range(n):
            d[k] -= mean
            var += d[k] * d[k]
        r = LN_ONE // max(_isqrt(var), 1)
        for k in range(n):
            z = (d[k] * r + Z_HALF) >> Z_SHIFT
            y = (z * gamma[k] + beta[k] + Y_HALF) >> LN_Z_BITS
            out[i, k] = min(max(y, -out_max), out_max)
