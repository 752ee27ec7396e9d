"""Fused CPU epilogues (numba) for the integer ops of ``intops``.

torch runs the GEMMs (exact int8 ``_int_mm``, float32 matmuls on small integers whose
sums stay below 2**24); these kernels run everything between them in one pass over
memory, in int64, with exactly the formulas ``intops`` documents. numba's int64 ``>>``
is arithmetic as torch's, and the kernels only divide non-negative by positive
numbers, so floor and truncation agree.

numba's default threading layer must not be entered from two Python threads at once
(the agent and the demo call the engine from worker threads): every call holds
``LOCK`` and uses as many threads as torch is set to.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager

import numba
import numpy as np
import torch
from numba import njit, prange

from .intops import (INT16_MAX, LN_MEAN_SHIFT, LN_RECIP_SHIFT, LN_Z_BITS,
                     PROB_MAX, PROB_SHIFT, QUANT_SHIFT, RATE_SHIFT)

LOCK = threading.Lock()

# numba freezes module globals into the compiled code as constants
QUANT_NUM = 127 << QUANT_SHIFT
QUANT_HALF = 1 << (QUANT_SHIFT - 1)
PROB_NUM = PROB_MAX << PROB_SHIFT
PROB_HALF = 1 << (PROB_SHIFT - 1)
RATE_HALF = 1 << (RATE_SHIFT - 1)
MEAN_HALF = 1 << (LN_MEAN_SHIFT - 1)
LN_ONE = 1 << LN_RECIP_SHIFT
Z_SHIFT = LN_RECIP_SHIFT - LN_Z_BITS
Z_HALF = 1 << (Z_SHIFT - 1)
Y_HALF = 1 << (LN_Z_BITS - 1)


@contextmanager
def threads():
    """Hold the kernel lock with numba's thread count set to torch's."""
    with LOCK:
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        yield


@njit(cache=True, parallel=True)
def split_planes(x, planes):
    """x int16 [M, K] -> planes int8 [2M, K]: rows 0..M-1 hi = x >> 8, then lo =
    (x & 255) - 128, so that x = 256 * hi + lo + 128 (one ``_int_mm`` for both)."""
    m = x.shape[0]
    for i in prange(m):
        for k in range(x.shape[1]):
            v = np.int32(x[i, k])
            planes[i, k] = v >> 8
            planes[m + i, k] = (v & 255) - 128


@njit(cache=True, parallel=True)
def requantize(acc2, mult, const, shift, out_max, lut, out):
    """linear's epilogue: acc = 256 * A_hi + A_lo (+ 128 * sum(W) folded in ``const``),
    y = clamp((acc * M + B + 2**(shift-1)) >> shift), then GELU by table if ``lut``
    is not empty. acc2 int32 [2M, N] (hi rows, then lo rows)."""
    m = out.shape[0]
    cap = lut.shape[0] - 1
    for i in prange(m):
        for j in range(out.shape[1]):
            acc = np.int64(acc2[i, j]) * 256 + acc2[m + i, j]
            y = (acc * mult[j] + const[j]) >> shift
            y = min(max(y, -out_max), out_max)
            if cap >= 0:
                y = max(y, 0) + lut[min(abs(y), cap)]
            out[i, j] = y


@njit(cache=True)
def _quantize(x, r_num, q):
    """quantize_rows of one strided row ``x`` into ``q`` (float32); returns the row max."""
    m = 0
    for k in range(x.shape[0]):
        m = max(m, abs(np.int64(x[k])))
    r = r_num // max(m, 1)
    for k in range(x.shape[0]):
        q[k] = (np.int64(x[k]) * r + QUANT_HALF) >> QUANT_SHIFT
    return m


@njit(cache=True, parallel=True)
def attention_quantize(qkv, mask, heads, dim, q8, k8, v8, mq, mk, mv):
    """Per-token int8 Q and K rows and per-channel int8 V columns (over unmasked
    tokens, masked rows zero) of ``attention``, as float32 for the exact matmuls.
    qkv int16 [B, L, 3*H*D]; q8/k8/v8 float32 [B, H, L, D]; mq/mk int64 [B, H, L];
    mv int64 [B, H, D]."""
    b, length = mask.shape
    hd = heads * dim
    for bh in prange(b * heads):
        s, h = bh // heads, bh % heads
        for t in range(length):
            mq[s, h, t] = _quantize(qkv[s, t, h * dim:(h + 1) * dim], QUANT_NUM, q8[s, h, t])
            mk[s, h, t] = _quantize(qkv[s, t, hd + h * dim:hd + (h + 1) * dim], QUANT_NUM, k8[s, h, t])
        for c in range(dim):
            col = 2 * hd + h * dim + c
            m = 0
            for t in range(length):
                if mask[s, t]:
                    m = max(m, abs(np.int64(qkv[s, t, col])))
            mv[s, h, c] = m
            r = QUANT_NUM // max(m, 1)
            for t in range(length):
                v8[s, h, t, c] = ((np.int64(qkv[s, t, col]) * r + QUANT_HALF) >> QUANT_SHIFT
                                  if mask[s, t] else 0)


@njit(cache=True, parallel=True)
def attention_probs(scores, mask, mq, mk, score_mult, score_shift, exp_table, probs):
    """Integer softmax of ``attention``: scores float32 [B, H, L, L] = q8 . k8 (exact
    integers); probs float32 [B, H, 2L, L] gets prob >> 7 in rows 0..L-1 and prob & 127
    in rows L..2L-1 (int8-range halves, so prob . v8 stays exact in float32)."""
    b, heads, length, _ = scores.shape
    cap = exp_table.shape[0] - 1
    half = np.int64(1) << (score_shift - 1)
    for bh in prange(b * heads):
        s, h = bh // heads, bh % heads
        t = np.empty(length, dtype=np.int64)
        for i in range(length):
            if not mask[s, i]:
                for j in range(length):
                    probs[s, h, i, j] = 0
                    probs[s, h, length + i, j] = 0
                continue
            top = np.int64(-(1 << 62))
            for j in range(length):
                if mask[s, j]:
                    t[j] = np.int64(scores[s, h, i, j]) * mk[s, h, j]
                    top = max(top, t[j])
            rate = (mq[s, h, i] * score_mult + RATE_HALF) >> RATE_SHIFT
            total = np.int64(0)
            for j in range(length):
                if mask[s, j]:
                    t[j] = exp_table[min(((top - t[j]) * rate + half) >> score_shift, cap)]
                    total += t[j]
                else:
                    t[j] = 0
            recip = PROB_NUM // total
            for j in range(length):
                prob = (t[j] * recip + PROB_HALF) >> PROB_SHIFT
                probs[s, h, i, j] = prob >> 7
                probs[s, h, length + i, j] = prob & 127


@njit(cache=True, parallel=True)
def attention_out(ctx2, mask, mv, out_mult, out_shift, out):
    """ctx = 128 * (prob_hi . v8) + (prob_lo . v8) from ctx2 float32 [B, H, 2L, D];
    out int16 [B, L, H*D] = clamp(round_shift(ctx * mv * MC, SC)), masked rows 0."""
    b, heads, length2, dim = ctx2.shape
    length = length2 // 2
    half = np.int64(1) << (out_shift - 1)
    for bh in prange(b * heads):
        s, h = bh // heads, bh % heads
        for i in range(length):
            for c in range(dim):
                y = 0
                if mask[s, i]:
                    ctx = np.int64(ctx2[s, h, i, c]) * 128 + np.int64(ctx2[s, h, length + i, c])
                    y = min(max((ctx * (mv[s, h, c] * out_mult) + half) >> out_shift, -INT16_MAX), INT16_MAX)
                out[s, i, h * dim + c] = y


@njit(cache=True)
def _isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**62, exactly: the float64 root is within 1 of it
    (relative error < 2**-52 on a value below 2**31), one correction each way fixes it."""
    r = np.int64(math.sqrt(np.float64(n)))
    if r * r > n:
        r -= 1
    if (r + 1) * (r + 1) <= n:
        r += 1
    return r


@njit(cache=True, parallel=True)
def add_layernorm(x, residual, gamma, beta, mean_recip, out_max, out):
    """Fused residual add + integer LayerNorm of ``intops.add_layernorm`` per row.
    x, residual int16/int32 [R, N]; out int16 [R, N]."""
    n = x.shape[1]
    for i in prange(x.shape[0]):
        d = np.empty(n, dtype=np.int64)
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
