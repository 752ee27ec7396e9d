"""Fused CPU epilogues (numba) for the integer ops of ``intops``.

torch runs the GEMMs in float64 on integers whose every partial sum stays far below 2**53
(exact in any order, on any ISA: see ``PackedLinear`` and ``intops.attention``); these
kernels run everything between them in one pass over memory, in int64 (float64 where
every value provably stays an integer below 2**53), with
exactly the formulas ``intops`` documents. numba's int64 ``>>``
is arithmetic as torch's, and the kernels only divide non-negative by positive
numbers, so floor and truncation agree.

Threads: the kernels are serial and release the GIL. Several threads run several
forward chunks side by side (``Engine``); within one chunk only torch's GEMMs use more
than one thread. (Parallel builds were slower: numba's thread pool and torch's OpenMP
threads, which spin after each GEMM, fought over the cores.)
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from .intops import (INT16_MAX, LN_MEAN_SHIFT, LN_RECIP_SHIFT, LN_Z_BITS, MAX_K, PROB_MAX,
                     PROB_SHIFT, QUANT_SHIFT, RATE_SHIFT)

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


class PackedLinear:
    """A ``LinearParams``' weights as the float64 GEMM operand, and its epilogue constants.

    The GEMM is ``x @ W^T`` in float64 on the int16 activations as they are: every product
    and every partial sum, in any order, with or without FMA, is an integer of magnitude
    <= 32768 * 127 * K <= 32768 * 127 * 1536 < 2**33, far below 2**53, so each float64
    addition is exact and the accumulator is the exact integer whatever BLAS kernel, ISA,
    blocking or thread split computes it. No precision flag applies to float64
    (``torch.set_float32_matmul_precision`` and oneDNN's fp32 math modes touch float32
    only), so the route is exact by construction on every IEEE-754 CPU; the engine's
    self-test (``selftest``) checks it anyway before an agent serves.
    (Rejected: oneDNN's int8 linear saturates 16-bit pair sums on CPUs without VNNI, and
    ``torch._int_mm`` runs a reference loop on them, ~70x slower than this.)
    The bias constant folds in the rounding: const = B + 2**(shift - 1).
    """

    def __init__(self, p):
        w = p.weight
        if w.shape[1] > MAX_K:
            raise ValueError(f"K = {w.shape[1]} > {MAX_K}: the float64 GEMM's bound needs K <= {MAX_K}")
        self.n = w.shape[0]
        self.wt = w.to(torch.float64).t().contiguous()
        self.mult = p.multiplier.numpy()
        self.const = (p.bias + (1 << (p.shift - 1))).numpy()
        lut = p.gelu_lut if p.gelu_lut is not None else torch.empty(0, dtype=torch.int32)
        self.lut = lut.numpy()

    def gemm(self, x: torch.Tensor) -> np.ndarray:
        """x int16 [M, K] -> the exact accumulators float64 [M, N]."""
        return torch.mm(x.to(torch.float64), self.wt).numpy()


@njit(cache=True, nogil=True)
def requantize(acc, mult, const, shift, out_max, lut, out):
    """linear's epilogue: y = clamp((acc * M + const) >> shift), then GELU by table if
    ``lut`` is not empty. acc: float64 [M, N] of exact integers (|acc| < 2**33). One simple
    loop per step, so that they vectorise (a branch or a table read per element in the
    arithmetic loop stops that: 2-3x slower)."""
    m, n = out.shape
    top = lut.shape[0] - 1
    y = np.empty(n, dtype=np.int32)  # |y| <= out_max <= 2**21
    for i in range(m):
        for j in range(n):
            y[j] = min(max((np.int64(acc[i, j]) * mult[j] + const[j]) >> shift, -out_max), out_max)
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
    tokens, masked rows zero) of ``attention``, as float64 for the exact matmuls.
    qkv int16 [B, L, 3*H*D], mask a prefix per sequence; q8/k8/v8 float64 [B, H, L, D];
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
    """Integer softmax of ``attention``: scores float64 [B, H, L, L] = q8 . k8 (exact
    integers), mask a prefix per sequence (right padding); probs float64 [B, H, L, L]
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
    """ctx float64 [B, H, L, D] = prob . v8 (exact integers); out int16 [B, L, H*D] =
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
