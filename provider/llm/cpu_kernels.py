"""CPU route of the decoder's integer ops (``intops``): numba kernels in int64, and
float64 matmuls that are exact by construction (every partial sum an integer below
2**53; the arguments are in ``intops.linear`` and ``intops.attention``).

numba's int64 ``>>`` is arithmetic, and the kernels divide only non-negative numbers by
positive ones, so floor and truncation agree. Kernels are serial and release the GIL.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

from provider.engine.cpu_kernels import _isqrt  # floor(sqrt(n)), exact below 2**62

from .intops import (ACT_MAX, BLOCK, DELTA_MAX, EPS_BITS, F_RES, FFN_IN_BITS, NORM_IN_BITS,
                     NORM_N_BITS, NORM_RECIP_SHIFT, PROB_BITS, PROB_SHIFT, RATE_SHIFT,
                     RES_MAX, ROPE_BITS, ROPE_IN_BITS, SCORE_BITS, SCORE_MAX, SIG_BITS,
                     SILU_FRAC_BITS, QLinear)

# Up to this many rows, ``linear`` runs the integer loops over the packed weights
# (decoding: memory-bound, 1 byte per weight instead of 8); above, the float64 GEMM.
GEMV_ROWS = 8
BIG = np.int64(1) << 62
NORM_ONE = np.int64(1) << NORM_RECIP_SHIFT
NORM_N_SHIFT = NORM_RECIP_SHIFT - NORM_N_BITS
PROB_NUM = np.int64(1) << (PROB_BITS + PROB_SHIFT)
SIG_ONE = np.int64(1) << SIG_BITS


@njit(cache=True, nogil=True, inline="always")
def _shift_round(a, s, lim):
    """intops' shift_round for one int64 (|a| < 2**62) and any int shift."""
    if s > 0:
        if s >= 63:
            return np.int64(0)
        r = (a + (np.int64(1) << (s - 1))) >> s
    elif s == 0:
        r = a
    else:
        t = -s
        if t >= 62:
            cap = np.int64(0)
        else:
            cap = lim >> t
        if a > cap:
            return lim
        if a < -cap:
            return -lim
        r = a << t
    return min(max(r, -lim), lim)


@njit(cache=True, nogil=True, inline="always")
def _bitlen(m):
    n = 0
    while m > 0:
        m >>= 1
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _absmax(v):
    m = np.int64(0)
    for k in range(v.shape[0]):
        m = max(m, abs(np.int64(v[k])))
    return m


@njit(cache=True, nogil=True)
def _block16(v, e, out):
    """block16 of one int64 row into ``out`` (int16); returns the exponent."""
    m = _absmax(v)
    s = _bitlen(m) - 15 if m > 0 else 0
    for k in range(v.shape[0]):
        out[k] = _shift_round(np.int64(v[k]), s, np.int64(ACT_MAX))
    return e + s


@njit(cache=True, nogil=True)
def block16_rows(v, e, out, out_e):
    for i in range(v.shape[0]):
        out_e[i] = _block16(v[i], e[i], out[i])


@njit(cache=True, nogil=True)
def rmsnorm(h, gamma, frac, eps, out, out_e):
    rows, k = h.shape
    u = np.empty(k, dtype=np.int64)
    z = np.empty(k, dtype=np.int64)
    for i in range(rows):
        m = _absmax(h[i])
        if m == 0:
            out[i, :] = 0
            out_e[i] = 0
            continue
        t = _bitlen(m) - NORM_IN_BITS
        ss = np.int64(0)
        for c in range(k):
            u[c] = _shift_round(h[i, c], t, BIG)
            ss += u[c] * u[c]
        eps_u = _shift_round(np.int64(eps), EPS_BITS + 2 * t - 2 * F_RES, np.int64(1) << 60)
        recip = NORM_ONE // _isqrt(ss + eps_u)
        for c in range(k):
            z[c] = _shift_round(u[c] * recip, NORM_N_SHIFT, BIG) * gamma[c]
        out_e[i] = _block16(z, -(NORM_N_BITS + frac), out[i])


@njit(cache=True, nogil=True)
def residual_add(h, acc, e, w_shift):
    rows, n = h.shape
    for i in range(rows):
        s = w_shift - e[i] - F_RES
        for j in range(n):
            v = h[i, j] + _shift_round(acc[i, j], s, RES_MAX)
            h[i, j] = min(max(v, -RES_MAX), RES_MAX)


@njit(cache=True, nogil=True)
def rows_shift(acc, e, base, lim, out):
    """out[i] = shift_round(acc[i], base - e[i], lim)."""
    rows, n = acc.shape
    for i in range(rows):
        s = base - e[i]
        for j in range(n):
            out[i, j] = _shift_round(acc[i, j], s, lim)


@njit(cache=True, nogil=True)
def rope_heads(acc, e, w_shift, pos, cos, sin, out, out_e):
    rows, heads, d = out.shape
    v = np.empty(d, dtype=np.int64)
    y = np.empty(d, dtype=np.int64)
    for i in range(rows):
        p = pos[i]
        for h in range(heads):
            seg = acc[i, h * d:(h + 1) * d]
            m = _absmax(seg)
            if m == 0:
                out[i, h, :] = 0
                out_e[i, h] = 0
                continue
            t = _bitlen(m) - ROPE_IN_BITS
            for c in range(d):
                v[c] = _shift_round(seg[c], t, BIG)
            for c in range(d // 2):
                a, b = v[2 * c], v[2 * c + 1]
                y[2 * c] = a * cos[p, c] - b * sin[p, c]
                y[2 * c + 1] = a * sin[p, c] + b * cos[p, c]
            out_e[i, h] = _block16(y, e[i] - w_shift + t - ROPE_BITS, out[i, h])


@njit(cache=True, nogil=True)
def heads_block16(acc, e, w_shift, out, out_e):
    rows, heads, d = out.shape
    for i in range(rows):
        for h in range(heads):
            out_e[i, h] = _block16(acc[i, h * d:(h + 1) * d], e[i] - w_shift, out[i, h])


@njit(cache=True, nogil=True)
def swiglu(gate, up, e, gate_shift, up_shift, table, out, out_e):
    rows, f = gate.shape
    cap = table.shape[0] - 1
    g = np.empty(f, dtype=np.int64)
    prod = np.empty(f, dtype=np.int64)
    for i in range(rows):
        mg, mu = _absmax(gate[i]), _absmax(up[i])
        if mg == 0 or mu == 0:
            out[i, :] = 0
            out_e[i] = 0
            continue
        tg = _bitlen(mg) - FFN_IN_BITS
        tu = _bitlen(mu) - FFN_IN_BITS
        eg = e[i] - gate_shift + tg
        eu = e[i] - up_shift + tu
        si = -(eg + SILU_FRAC_BITS)
        for c in range(f):
            g[c] = _shift_round(gate[i, c], tg, BIG)
        for c in range(f):
            x = g[c]
            idx = _shift_round(abs(x), si, np.int64(cap))
            sig = np.int64(table[idx])
            if x >= 0:
                sig = SIG_ONE - sig
            s = _shift_round(x * sig, SIG_BITS, BIG)
            prod[c] = s * _shift_round(up[i, c], tu, BIG)
        out_e[i] = _block16(prod, eg + eu, out[i])


@njit(cache=True, nogil=True)
def attention_weights(dots, eq, ek, ev, start, rate, exp_table, out, out_c):
    """The integer softmax of ``intops.attention`` for one sequence.

    dots float64 [G, R * Lq, Lk] (exact integers q . k; row r * Lq + i is query i of head
    g * R + r), eq [Lq, H], ek/ev [Lk, G]. out float64 [G, R * Lq, Lk] gets w (0 for keys
    after the query), out_c [Lq, G] the exponent E - PROB_BITS of each query's context."""
    groups, rl, lk = dots.shape
    lq = eq.shape[0]
    reps = rl // lq
    cap = exp_table.shape[0] - 1
    s = np.empty(lk, dtype=np.int64)
    pe = np.empty(lk, dtype=np.int64)
    for g in range(groups):
        for i in range(lq):
            n = start + i + 1  # keys 0 .. start + i
            top_e = ev[0, g]
            for j in range(1, n):
                top_e = max(top_e, ev[j, g])
            out_c[i, g] = top_e - PROB_BITS
            for r in range(reps):
                row = r * lq + i
                qe = eq[i, g * reps + r]
                top = -SCORE_MAX
                for j in range(n):
                    s[j] = _shift_round(np.int64(dots[g, row, j]), -(qe + ek[j, g] + SCORE_BITS),
                                        SCORE_MAX)
                    top = max(top, s[j])
                total = np.int64(0)
                for j in range(n):
                    delta = min(top - s[j], DELTA_MAX)
                    x = min((delta * rate + (np.int64(1) << (RATE_SHIFT - 1))) >> RATE_SHIFT, cap)
                    pe[j] = exp_table[x]
                    total += pe[j]
                recip = PROB_NUM // total
                o = out[g, row]
                for j in range(n):
                    prob = (pe[j] * recip + (np.int64(1) << (PROB_SHIFT - 1))) >> PROB_SHIFT
                    o[j] = _shift_round(prob, top_e - ev[j, g], BIG)
                o[n:] = 0.0


@njit(cache=True, nogil=True)
def attention_out(ctx, ctx_e, out, out_e):
    """ctx float64 [G, R * Lq, D] (exact integers), ctx_e [Lq, G] -> the o_proj rows
    (block16 over the heads in order after aligning them to the largest exponent)."""
    groups, rl, d = ctx.shape
    lq = ctx_e.shape[0]
    reps = rl // lq
    y = np.empty(groups * reps * d, dtype=np.int64)
    for i in range(lq):
        c = ctx_e[i, 0]
        for g in range(1, groups):
            c = max(c, ctx_e[i, g])
        for g in range(groups):
            s = c - ctx_e[i, g]
            for r in range(reps):
                base = (g * reps + r) * d
                for k in range(d):
                    y[base + k] = _shift_round(np.int64(ctx[g, r * lq + i, k]), s, BIG)
        out_e[i] = _block16(y, c, out[i])


@njit(cache=True, nogil=True)
def _dots(q, k, out):
    """q . k in int64 loops, into out float64 [G, R * Lq, Lk] (as ``attention``'s bmm)."""
    lq, heads, d = q.shape
    lk, groups, _ = k.shape
    reps = heads // groups
    for g in range(groups):
        for r in range(reps):
            for i in range(lq):
                for j in range(lk):
                    acc = np.int64(0)
                    for c in range(d):
                        acc += np.int64(q[i, g * reps + r, c]) * np.int64(k[j, g, c])
                    out[g, r * lq + i, j] = acc


@njit(cache=True, nogil=True)
def _context(w, v, out):
    """w . v in int64 loops (w holds integers), into out float64 [G, R * Lq, D]."""
    groups, rl, lk = w.shape
    d = v.shape[2]
    acc = np.empty(d, dtype=np.int64)
    for g in range(groups):
        for i in range(rl):
            acc[:] = 0
            for j in range(lk):
                wj = np.int64(w[g, i, j])
                if wj != 0:
                    for c in range(d):
                        acc[c] += wj * np.int64(v[j, g, c])
            out[g, i, :] = acc


def attention(q, eq, k, ek, v, ev, start, p):
    """``intops.attention``; a few queries (decoding) take int64 loops instead of torch's
    float64 bmm (same integers: both exact), which costs more than it computes there."""
    lq, heads, d = q.shape
    groups = p.kv_heads
    reps = heads // groups
    lk = k.shape[0]
    if lq <= GEMV_ROWS:
        dots = np.empty((groups, reps * lq, lk), dtype=np.float64)
        _dots(q, k, dots)
        w = np.empty_like(dots)
        ctx_e = np.empty((lq, groups), dtype=np.int64)
        attention_weights(dots, eq, ek, ev, start, p.rate, p.exp_table, w, ctx_e)
        ctx = np.empty((groups, reps * lq, d), dtype=np.float64)
        _context(w, v, ctx)
        x = np.empty((lq, heads * d), dtype=np.int16)
        xe = np.empty(lq, dtype=np.int64)
        attention_out(ctx, ctx_e, x, xe)
        return x, xe
    # queries as [G, R * Lq, D]: head h = g * R + r
    qg = torch.from_numpy(q.reshape(lq, groups, reps, d).transpose(1, 2, 0, 3)
                          .reshape(groups, reps * lq, d).astype(np.float64))
    kt = torch.from_numpy(np.ascontiguousarray(k.transpose(1, 2, 0)).astype(np.float64))
    dots = torch.bmm(qg, kt).numpy()
    w = np.empty((groups, reps * lq, lk), dtype=np.float64)
    ctx_e = np.empty((lq, groups), dtype=np.int64)
    attention_weights(dots, eq, ek, ev, start, p.rate, p.exp_table, w, ctx_e)
    vg = torch.from_numpy(np.ascontiguousarray(v.transpose(1, 0, 2)).astype(np.float64))
    ctx = torch.bmm(torch.from_numpy(w), vg).numpy()
    x = np.empty((lq, heads * d), dtype=np.int16)
    xe = np.empty(lq, dtype=np.int64)
    attention_out(ctx, ctx_e, x, xe)
    return x, xe


def gemm(x: np.ndarray, w: QLinear) -> np.ndarray:
    """The float64 GEMM route of ``intops.linear`` (exact: see there)."""
    acc = torch.mm(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w._wt))
    return acc.numpy().astype(np.int64)


GEMV_TILE = 512  # output columns per pass: the int32 block sums stay in L1


@njit(cache=True, nogil=True)
def _gemv(x, xs, qt, dt, mt, has_m, out, j_start, j_stop):
    """acc[i, j] = sum_b D[j, b] * (sum_{k in b} x[i, k] q[j, k]) + M[j, b] * xs[i, b] with
    the weights transposed (qt [K, N], dt/mt [K / 32, N]), so that the innermost loop runs
    over contiguous output columns and vectorises without horizontal sums. The block sums
    are int32: |sum of 32 x q| <= 32 * ACT_MAX * 127 < 2**27; the rest int64."""
    rows, k = x.shape
    acc = np.empty(GEMV_TILE, dtype=np.int32)
    tot = np.empty(GEMV_TILE, dtype=np.int64)
    for i in range(rows):
        for j0 in range(j_start, j_stop, GEMV_TILE):
            w = min(GEMV_TILE, j_stop - j0)
            tot[:w] = 0
            for b in range(k // BLOCK):
                acc[:w] = 0
                for c in range(b * BLOCK, (b + 1) * BLOCK):
                    xv = np.int32(x[i, c])
                    row = qt[c, j0:j0 + w]
                    for jj in range(w):
                        acc[jj] += xv * np.int32(row[jj])
                d = dt[b, j0:j0 + w]
                if has_m:
                    m = mt[b, j0:j0 + w]
                    s = xs[i, b]
                    for jj in range(w):
                        tot[jj] += d[jj] * np.int64(acc[jj]) + m[jj] * s
                else:
                    for jj in range(w):
                        tot[jj] += d[jj] * np.int64(acc[jj])
            out[i, j0:j0 + w] = tot[:w]


# Matrices this large (the output head) split their columns over torch's thread count:
# the kernel releases the GIL and each thread writes its own columns (same integers).
SPLIT_WEIGHTS = 1 << 22
_pool: ThreadPoolExecutor | None = None


def gemv(x: np.ndarray, w: QLinear) -> np.ndarray:
    """The integer-loop route of ``intops.linear`` (few rows)."""
    global _pool
    qt, dt, mt = w._transposed
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0], w.n), dtype=np.int64)
    xs = x.astype(np.int64).reshape(x.shape[0], -1, BLOCK).sum(axis=2)
    threads = torch.get_num_threads()
    if threads == 1 or w.n * w.k < SPLIT_WEIGHTS:
        _gemv(x, xs, qt, dt, mt, w.m is not None, out, 0, w.n)
        return out
    if _pool is None or _pool._max_workers < threads:
        _pool = ThreadPoolExecutor(threads, "verinfer-llm-gemv")
    step = -(-w.n // (threads * GEMV_TILE)) * GEMV_TILE
    list(_pool.map(lambda j: _gemv(x, xs, qt, dt, mt, w.m is not None, out, j, min(j + step, w.n)),
                   range(0, w.n, step)))
    return out
