"""Every op of provider/llm/intops.py against its docstring formula, written again here
in Python integers, on small shapes and at the extremes of the documented ranges."""
import hashlib
import math

import numpy as np
import pytest

from provider.llm import intops, tables
from provider.llm.intops import ACT_MAX, AttentionParams, NormParams, QLinear

RNG = np.random.default_rng(14)


def sr(a: int, s: int, lim: int) -> int:
    """shift_round in Python integers."""
    r = (a + (1 << (s - 1))) >> s if s > 0 else a << -s
    return max(-lim, min(lim, r))


def block16(v: list[int], e: int) -> tuple[list[int], int]:
    m = max(abs(x) for x in v)
    s = m.bit_length() - 15 if m else 0
    return [sr(x, s, ACT_MAX) for x in v], e + s


def ints(a: np.ndarray) -> list:
    return a.astype(object).tolist()


def magnitudes(rows: int, k: int, top_bits: int) -> np.ndarray:
    """int64 rows of very different sizes (one bit length per row), a zero row first."""
    out = np.zeros((rows, k), dtype=np.int64)
    for i in range(1, rows):
        bits = int(RNG.integers(1, top_bits))
        out[i] = RNG.integers(-(1 << bits), 1 << bits, k)
    return out


def test_shift_round_matches_python_integers():
    for a in (0, 1, -1, 5, -5, 6, -6, 2**61 - 3, -(2**61), 12345678901):
        for s in (-70, -40, -3, 0, 1, 2, 7, 40, 62, 63, 70):
            got = int(intops.shift_round(np.array([a], dtype=np.int64), s, 2**56)[0])
            assert got == sr(a, s, 2**56), (a, s)


def test_block16_rows():
    from provider.llm import cpu_kernels as ck

    v = magnitudes(6, 40, 61)
    v[2, 3] = 2**45 - 1  # rounds up to exactly 2**15: clamped to ACT_MAX
    v[2, :3] = 2**45 - 2**29
    e = RNG.integers(-50, 50, 6)
    x = np.empty(v.shape, np.int16)
    xe = np.empty(6, np.int64)
    ck.block16_rows(v, e, x, xe)
    for i in range(6):
        want, we = block16(ints(v[i]), int(e[i]))
        assert ints(x[i]) == want and xe[i] == we


def test_rmsnorm_matches_the_formula():
    k = 64
    h = magnitudes(8, k, 56)
    h[1] = 3  # a tiny row: eps dominates (its shift is clamped)
    gamma = RNG.integers(-(2**31) + 1, 2**31, k)
    p = NormParams(gamma, frac=29, eps=int(round(k * 1e-5 * 2**intops.EPS_BITS)))
    x, e = intops.rmsnorm(h, p)
    for i in range(len(h)):
        row = ints(h[i])
        m = max(abs(v) for v in row)
        if m == 0:
            assert not x[i].any() and e[i] == 0
            continue
        t = m.bit_length() - 24
        u = [sr(v, t, 2**62) for v in row]
        eps_u = sr(p.eps, intops.EPS_BITS + 2 * t - 2 * intops.F_RES, 2**60)
        recip = 2**60 // math.isqrt(sum(v * v for v in u) + eps_u)
        z = [sr(v * recip, 30, 2**62) * int(g) for v, g in zip(u, gamma)]
        want, we = block16(z, -(30 + p.frac))
        assert ints(x[i]) == want and e[i] == we, i


@pytest.mark.parametrize("rows", [1, 3, 8, 9, 20])  # both routes: GEMV (<= 8 rows) and GEMM
def test_linear_is_the_exact_integer_product(llm, rows):
    for w in (llm.params.layers[3].down, llm.params.layers[0].q, llm.params.embed):
        sub = QLinear(w.q[:24], w.d[:24], None if w.m is None else w.m[:24], w.shift)
        dense = sub.dense()
        x = RNG.integers(-ACT_MAX, ACT_MAX + 1, (rows, sub.k)).astype(np.int16)
        x[0] = np.where(dense[0] >= 0, ACT_MAX, -ACT_MAX)  # the largest |acc| of row 0
        want = np.array(x.astype(object) @ dense.T.astype(object))
        got = intops.linear(x, sub)
        assert (got.astype(object) == want).all()


def test_every_matrix_keeps_the_float64_gemm_exact(llm):
    """max |W| <= w_max(K), hence ACT_MAX * K * max|W| < 2**53, for every matrix."""
    p = llm.params
    mats = [p.embed] + [getattr(layer, n) for layer in p.layers
                        for n in ("q", "k", "v", "o", "gate", "up", "down")]
    for w in mats:
        worst = int(np.abs(w.dense()).max())
        assert worst <= intops.w_max(w.k) and ACT_MAX * w.k * worst < 2**53
        assert w.shift >= 24  # so W is the GGUF's dequantised value times 2**shift, exactly


def test_embed_and_residual_add_and_logits():
    emb = QLinear(RNG.integers(-127, 128, (5, 64)).astype(np.int8),
                  RNG.integers(0, 2**19, (5, 2)), None, 27)
    ids = np.array([4, 0, 4])
    h = intops.embed(ids, emb)
    dense = emb.dense()
    assert ints(h) == [[sr(int(v), 27 - intops.F_RES, intops.RES_MAX) for v in dense[i]] for i in ids]
    acc = RNG.integers(-(2**52), 2**52, (3, 64))
    e = np.array([-40, -3, 10])
    before = ints(h)
    intops.residual_add(h, acc, e, 27)
    for i in range(3):
        for j in range(64):
            v = before[i][j] + sr(int(acc[i, j]), 27 - int(e[i]) - intops.F_RES, intops.RES_MAX)
            assert h[i, j] == max(-intops.RES_MAX, min(intops.RES_MAX, v))
    got = intops.logits(acc, e, 27)
    assert ints(got) == [[sr(int(a), 27 - int(ei) - intops.LOGIT_BITS, intops.LOGIT_MAX)
                          for a in row] for row, ei in zip(acc, e)]


def _attention_params(heads=4, kv_heads=2, d=8) -> AttentionParams:
    from provider.llm.quantize import attention_rate

    cos, sin = tables.rope_table(10000.0, d, 16)
    return AttentionParams(heads, kv_heads, d, attention_rate(d), tables.exp2_table(), cos, sin)


def test_rope_heads_and_v_heads_match_the_formula():
    p = _attention_params()
    acc = magnitudes(5, 4 * 8, 53)
    e = RNG.integers(-30, 0, 5)
    pos = np.array([0, 3, 15, 7, 1])
    x, eh = intops.rope_heads(acc, e, 27, pos, 4, p)
    for i in range(5):
        for h in range(4):
            seg = ints(acc[i, h * 8:(h + 1) * 8])
            m = max(abs(v) for v in seg)
            if m == 0:
                assert not x[i, h].any() and eh[i, h] == 0
                continue
            t = m.bit_length() - 30
            v = [sr(a, t, 2**62) for a in seg]
            y = []
            for c in range(4):
                co, si = int(p.cos[pos[i], c]), int(p.sin[pos[i], c])
                y += [v[2 * c] * co - v[2 * c + 1] * si, v[2 * c] * si + v[2 * c + 1] * co]
            want, we = block16(y, int(e[i]) - 27 + t - intops.ROPE_BITS)
            assert ints(x[i, h]) == want and eh[i, h] == we
    xv, ev = intops.heads_block16(acc, e, 27, 4)
    for i in range(5):
        for h in range(4):
            want, we = block16(ints(acc[i, h * 8:(h + 1) * 8]), int(e[i]) - 27)
            assert ints(xv[i, h]) == want and ev[i, h] == we


@pytest.mark.parametrize("lq", [3, 10])  # both routes: int64 loops (<= 8 queries) and bmm
def test_attention_matches_the_formula(lq):
    p = _attention_params()
    start, d = 4, 8
    lk = start + lq
    q = RNG.integers(-ACT_MAX, ACT_MAX + 1, (lq, 4, d)).astype(np.int16)
    k = RNG.integers(-ACT_MAX, ACT_MAX + 1, (lk, 2, d)).astype(np.int16)
    v = RNG.integers(-ACT_MAX, ACT_MAX + 1, (lk, 2, d)).astype(np.int16)
    eq = RNG.integers(-24, -14, (lq, 4))
    ek = RNG.integers(-24, -14, (lk, 2))
    ev = RNG.integers(-20, -10, (lk, 2))
    k[2, 1] = 0  # a zero key
    x, xe = intops.attention(q, eq, k, ek, v, ev, start, p)
    table = [int(t) for t in p.exp_table]
    cap = len(table) - 1
    for i in range(lq):
        n = start + i + 1
        ctx, cexp = [], []
        for h in range(4):
            g = h // 2
            s = [sr(sum(int(a) * int(b) for a, b in zip(q[i, h], k[j, g])),
                    -(int(eq[i, h]) + int(ek[j, g]) + intops.SCORE_BITS), intops.SCORE_MAX)
                 for j in range(n)]
            pe = [table[min(sr(min(max(s) - sj, intops.DELTA_MAX) * p.rate, intops.RATE_SHIFT, 2**62), cap)]
                  for sj in s]
            recip = 2**(intops.PROB_BITS + intops.PROB_SHIFT) // sum(pe)
            prob = [sr(pj * recip, intops.PROB_SHIFT, 2**62) for pj in pe]
            top = max(int(ev[j, g]) for j in range(n))
            w = [sr(prob[j], top - int(ev[j, g]), 2**62) for j in range(n)]
            ctx.append([sum(w[j] * int(v[j, g, c]) for j in range(n)) for c in range(d)])
            cexp.append(top - intops.PROB_BITS)
        c = max(cexp)
        y = [sr(val, c - ce, 2**62) for row, ce in zip(ctx, cexp) for val in row]
        want, we = block16(y, c)
        assert ints(x[i]) == want and xe[i] == we, i


def test_swiglu_matches_the_formula():
    f = 48
    gate, up = magnitudes(6, f, 52), magnitudes(6, f, 52)
    up[0] = RNG.integers(-1000, 1000, f)  # gate row 0 is zero: a zero row
    e = RNG.integers(-30, 0, 6)
    table = tables.sigmoid_table()
    x, xe = intops.swiglu(gate, up, e, 27, 26, table)
    cap = len(table) - 1
    for i in range(6):
        g_row, u_row = ints(gate[i]), ints(up[i])
        mg, mu = max(map(abs, g_row)), max(map(abs, u_row))
        if not mg or not mu:
            assert not x[i].any() and xe[i] == 0
            continue
        tg, tu = mg.bit_length() - 24, mu.bit_length() - 24
        eg, eu = int(e[i]) - 27 + tg, int(e[i]) - 26 + tu
        prod = []
        for a, b in zip(g_row, u_row):
            g = sr(a, tg, 2**62)
            t = int(table[min(sr(abs(g), -(eg + intops.SILU_FRAC_BITS), cap), cap)])
            sig = t if g < 0 else 2**intops.SIG_BITS - t
            prod.append(sr(g * sig, intops.SIG_BITS, 2**62) * sr(b, tu, 2**62))
        want, we = block16(prod, eg + eu)
        assert ints(x[i]) == want and xe[i] == we, i


# The pinned tables (tables.py derives them with integer arithmetic only).
TABLE_SHA256 = {
    "rope_cos": "9ee91097a8ec25cf4afba3b1c28a291454da5a875d609141b8fbfc99da1d64b0",
    "rope_sin": "c83b71d0568bc3c8d71191c3f23585c774759fa25dfc5c2f1922227f4b85e0dd",
    "exp2": "47ee6e30a881ffe536009b8a2202f8214716ae61f41fb183db7e10380dcec89f",
    "sigmoid": "7ec38e58eae9feda3f3e3dfdd1266882ca14c86384f0aeafb79d1896fca80b1a",
}


def test_tables_are_pinned_and_accurate(llm):
    att = llm.params.attention
    got = {"rope_cos": tables.table_sha256(att.cos), "rope_sin": tables.table_sha256(att.sin),
           "exp2": tables.table_sha256(att.exp_table),
           "sigmoid": tables.table_sha256(llm.params.sig_table)}
    assert got == TABLE_SHA256
    theta = 100000.0 ** (-np.arange(0, 64, 2) / 64)
    angle = np.arange(intops.MAX_CONTEXT)[:, None] * theta
    assert np.abs(att.cos / 2**30 - np.cos(angle)).max() < 2**-30
    assert np.abs(att.sin / 2**30 - np.sin(angle)).max() < 2**-30
    e = np.arange(len(att.exp_table) - 1) / 2**intops.EXP_FRAC_BITS
    assert np.abs(att.exp_table[:-1] / 2**20 - np.exp2(-e)).max() <= 2**-21
    t = np.arange(len(llm.params.sig_table) - 1) / 2**intops.SILU_FRAC_BITS
    assert np.abs(llm.params.sig_table[:-1] / 2**24 - 1 / (1 + np.exp(t))).max() <= 2**-25
