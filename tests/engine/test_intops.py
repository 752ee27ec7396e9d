"""Unit tests of the reference integer ops: exact semantics, ranges, rounding edges."""
import math

import numpy as np
import pytest
import torch

from provider.engine import cpu_kernels, intops, quantize, selftest
from provider.engine.intops import INT16_MAX, LinearParams, round_shift

gen = torch.Generator().manual_seed(1234)


def randint(lo, hi, shape, dtype=torch.int64):
    return torch.randint(lo, hi, shape, generator=gen, dtype=dtype)


def test_round_shift_ties_go_up_for_both_signs():
    x = torch.tensor([-6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6])
    assert round_shift(x, 1).tolist() == [-3, -2, -1, -1, 0, 0, 1, 1, 2, 3, 3]
    assert round_shift(x, 0).tolist() == x.tolist()
    big = torch.tensor([(1 << 62) - 1, -(1 << 62)])
    assert round_shift(big, 62).tolist() == [1, -1]


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (5, 384), (2, 3, 32)])
def test_quantize_rows_matches_definition(shape):
    x = randint(-INT16_MAX, INT16_MAX + 1, shape).to(torch.int16)
    q, m = intops.quantize_rows(x)
    assert q.dtype == torch.int8 and m.dtype == torch.int32 and m.shape == shape[:-1]
    flat_x, flat_q, flat_m = x.reshape(-1, shape[-1]), q.reshape(-1, shape[-1]), m.reshape(-1)
    for row, qrow, mrow in zip(flat_x.tolist(), flat_q.tolist(), flat_m.tolist()):
        assert mrow == max(abs(v) for v in row)
        r = (127 << 40) // max(mrow, 1)
        assert qrow == [(v * r + (1 << 39)) >> 40 for v in row]  # python ints: exact
        assert max(abs(v) for v in qrow) == (127 if mrow else 0)


def test_quantize_rows_zero_row_and_int32_extremes():
    x = torch.tensor([[0, 0, 0], [-(2**31 - 1), 5, 2**31 - 1]], dtype=torch.int32)
    q, m = intops.quantize_rows(x)
    assert q.tolist() == [[0, 0, 0], [-127, 0, 127]] and m.tolist() == [0, 2**31 - 1]


def test_quantize_rows_widens_int16_min():
    # torch's int16 abs(-32768) is -32768: unwidened, m would be negative and q garbage
    x = torch.tensor([[-32768, 1, 32767], [-32768, 0, 0]], dtype=torch.int16)
    q, m = intops.quantize_rows(x)
    assert m.tolist() == [32768, 32768]
    assert q.tolist() == [[-127, 0, 127], [-127, 0, 0]]


def test_isqrt_is_exact_floor_sqrt():
    edge = [0, 1, 2, 3, 4, 15, 16, 17, (1 << 31) - 1, (1 << 32), (1 << 61) + 12345,
            (1 << 62) - 1, (2**31 - 1) ** 2, (2**31 - 1) ** 2 - 1]
    rand = randint(0, 1 << 62, (2000,)).tolist()
    squares = [v * v for v in randint(0, 1 << 31, (200,)).tolist()]
    vals = edge + rand + squares + [s - 1 for s in squares if s]
    assert [cpu_kernels._isqrt(v) for v in vals] == [math.isqrt(v) for v in vals]


def _linear_params(n, k, seed, gelu=False):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (n, k)).astype(np.float32)
    b = rng.normal(0, 0.1, n).astype(np.float32)
    lut = quantize.gelu_lut(9) if gelu else None
    return w, b, quantize.quantize_linear(w, b, 10, 9, INT16_MAX, lut)


def _gelu(y: int, lut: list[int]) -> int:
    return max(y, 0) + lut[min(abs(y), len(lut) - 1)]


def _linear_exact(x, p: LinearParams):
    """The docstring formula in Python integers."""
    acc = x.to(torch.int64) @ p.weight.to(torch.int64).t()
    lut = p.gelu_lut.tolist() if p.gelu_lut is not None else None
    out = []
    for row in acc.tolist():
        y = [max(-p.out_max, min(p.out_max, (a * m + bb + (1 << (p.shift - 1))) >> p.shift))
             for a, m, bb in zip(row, p.multiplier.tolist(), p.bias.tolist())]
        out.append([_gelu(v, lut) for v in y] if lut else y)
    return torch.tensor(out)


@pytest.mark.parametrize("m,k,n,gelu", [(1, 8, 8, False), (7, 40, 24, True), (33, 384, 64, False),
                                        (9, 384, 96, True)])
def test_linear_equals_integer_formula(m, k, n, gelu):
    _, _, p = _linear_params(n, k, seed=k, gelu=gelu)
    x = randint(-INT16_MAX, INT16_MAX + 1, (m, k)).to(torch.int16)
    assert torch.equal(intops.linear(x, p).to(torch.int64), _linear_exact(x, p))


@pytest.mark.parametrize("k", [514, 515, 1536])
def test_linear_exact_at_extremes(k):
    # all-max inputs and weights: the largest |acc| the int32 / float64 routes carry
    n = 16
    w = np.ones((n, k), dtype=np.float32) * np.where(np.arange(n) % 2, 1, -1)[:, None]
    p = quantize.quantize_linear(w, np.zeros(n, np.float32), 9, 9, intops.RESIDUAL_MAX)
    x = torch.full((3, k), INT16_MAX, dtype=torch.int16)
    x[1] = -INT16_MAX
    x[2, ::2] = -INT16_MAX
    assert torch.equal(intops.linear(x, p).to(torch.int64), _linear_exact(x, p))


def test_gemm_exact_at_worst_cases_against_python_integers():
    """The CPU GEMM route at its bounds: int16 extremes (incl. -32768) by +-127 weights over
    the longest K, alternating signs, and the 2 x 127 pattern that saturates 16-bit pair
    sums; Python integers are the reference (no tensor arithmetic at all)."""
    x, w = selftest.gemm_cases(), selftest.gemm_weights()
    n = w.shape[0]
    p = LinearParams(w, torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64), 1,
                     INT16_MAX)
    acc = cpu_kernels.PackedLinear(p).gemm(x)
    want = [[sum(a * b for a, b in zip(row, col)) for col in w.tolist()] for row in x.tolist()]
    assert acc.tolist() == want
    assert max(abs(v) for row in want for v in row) == 32768 * 127 * intops.MAX_K


def test_linear_approximates_float_layer():
    w, b, p = _linear_params(64, 384, seed=7)
    xf = np.random.default_rng(3).normal(0, 2, (16, 384))
    x = torch.from_numpy(np.round(xf * 2**10)).to(torch.int16)
    y = intops.linear(x, p).double() / 2**9
    ref = torch.from_numpy((x.double().numpy() / 2**10) @ w.T.astype(np.float64) + b)
    assert (y - ref).abs().max() < 0.02 * ref.abs().max()


def test_gelu_table_matches_float_gelu():
    _, _, p = _linear_params(8, 8, seed=1, gelu=True)
    y = torch.arange(-40000, 40000, 7, dtype=torch.int64)
    lut = p.gelu_lut.tolist()
    g = torch.tensor([_gelu(v, lut) for v in y.tolist()])
    exact = torch.nn.functional.gelu(y.double() / 2**9) * 2**9
    assert (g.double() - exact).abs().max() <= 0.5 + 1e-9
    assert (g[y.abs() >= (8 << 9)] == y.clamp(min=0)[y.abs() >= (8 << 9)]).all()


def _attention_inputs(b, length, lengths, seed):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randint(-6000, 6000, (b, length, 3 * 384), generator=g).to(torch.int16)
    qkv[..., :768] //= 4  # Q, K within +-3 (real scale): softmax not saturated
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return qkv, mask


def _round_shift(x: int, s: int) -> int:
    return (x + (1 << (s - 1))) >> s


def _quantize_row(xs: list[int]) -> tuple[list[int], int]:
    m = max(abs(v) for v in xs)
    r = (127 << intops.QUANT_SHIFT) // max(m, 1)
    return [_round_shift(v * r, intops.QUANT_SHIFT) for v in xs], m


def _attention_exact(qkv, mask, p):
    """The docstring formula of ``intops.attention`` in Python integers."""
    b, length, _ = qkv.shape
    h_d, d, table = p.heads * p.head_dim, p.head_dim, p.exp_table.tolist()
    out = torch.zeros(b, length, h_d, dtype=torch.int64)
    for s in range(b):
        keys = [j for j in range(length) if mask[s, j]]
        rows = qkv[s].tolist()
        for h in range(p.heads):
            cols = range(h * d, (h + 1) * d)
            k8 = {j: _quantize_row([rows[j][h_d + c] for c in cols]) for j in keys}
            v8 = [_quantize_row([rows[j][2 * h_d + c] if j in keys else 0 for j in range(length)])
                  for c in cols]
            for i in keys:
                q8, mq = _quantize_row([rows[i][c] for c in cols])
                t = {j: sum(a * bb for a, bb in zip(q8, k8[j][0])) * k8[j][1] for j in keys}
                rate = _round_shift(mq * p.score_mult, intops.RATE_SHIFT)
                e = {j: table[min(_round_shift((max(t.values()) - t[j]) * rate, p.score_shift),
                                  p.exp_cap)] for j in keys}
                recip = (intops.PROB_MAX << intops.PROB_SHIFT) // sum(e.values())
                prob = {j: _round_shift(e[j] * recip, intops.PROB_SHIFT) for j in keys}
                for c, (vq, mv) in enumerate(v8):
                    ctx = sum(prob[j] * vq[j] for j in keys)
                    y = _round_shift(ctx * mv * p.out_mult, p.out_shift)
                    out[s, i, h * d + c] = max(-INT16_MAX, min(INT16_MAX, y))
    return out


def test_attention_equals_integer_formula():
    # the formula in Python integers: a float route's rounding (v1 of the CPU path scaled
    # prob by a float32 reciprocal) shows up as off-by-one elements
    params = quantize.attention_params(12, 32)
    qkv, mask = _attention_inputs(2, 16, [16, 13], seed=8)
    assert torch.equal(intops.attention(qkv, mask, params).to(torch.int64),
                       _attention_exact(qkv, mask, params))


def test_attention_ignores_masked_keys_and_zeroes_padded_queries():
    params = quantize.attention_params(12, 32)
    qkv, mask = _attention_inputs(3, 9, [9, 4, 1], seed=5)
    out = intops.attention(qkv, mask, params)
    assert out.dtype == torch.int16 and out.shape == (3, 9, 384)
    assert (out[~mask] == 0).all()
    garbage = qkv.clone()
    garbage[~mask] = torch.randint(-32767, 32767, garbage[~mask].shape, dtype=torch.int16)
    assert torch.equal(intops.attention(garbage, mask, params), out)
    # a sequence alone, unpadded, gives the same rows
    for i, n in enumerate([9, 4, 1]):
        alone = intops.attention(qkv[i:i + 1, :n], mask[i:i + 1, :n], params)
        assert torch.equal(alone[0], out[i, :n])


def test_attention_approximates_float_softmax_attention():
    params = quantize.attention_params(12, 32)
    qkv, mask = _attention_inputs(2, 16, [16, 11], seed=9)
    out = intops.attention(qkv, mask, params).double()
    q, k, v = qkv.double().view(2, 16, 3, 12, 32).permute(2, 0, 3, 1, 4)
    q, k, v = q / 2**quantize.F_QK, k / 2**quantize.F_QK, v / 2**quantize.F_V
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(32)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    ref = (torch.softmax(scores, -1) @ v).permute(0, 2, 1, 3).reshape(2, 16, 384) * 2**quantize.F_V
    err = (out - ref)[mask]
    assert err.abs().max() < 0.03 * ref.abs().max()


def test_attention_single_key_copies_value_within_rounding():
    params = quantize.attention_params(12, 32)
    qkv, mask = _attention_inputs(1, 3, [1], seed=2)
    out = intops.attention(qkv, mask, params)[0, 0].double()
    v = qkv[0, 0, 768:].double()
    assert (out - v).abs().max() <= v.abs().max() / 127  # one int8 step of V's scale


def test_add_layernorm_matches_float_layernorm():
    rng = np.random.default_rng(4)
    gamma, beta = rng.normal(1, 0.3, 384), rng.normal(0, 0.3, 384)
    p = quantize.layernorm_params(gamma, beta, 10)
    x = torch.from_numpy(rng.normal(0, 3, (5, 384)) * 2**10).round().to(torch.int32)
    res = torch.from_numpy(rng.normal(0, 1, (5, 384)) * 2**10).round().to(torch.int16)
    y = intops.add_layernorm(x, res, p)
    assert y.dtype == torch.int16
    s = (x.double() + res.double())
    ref = torch.nn.functional.layer_norm(s, (384,), torch.tensor(gamma), torch.tensor(beta), 1e-12)
    assert (y.double() / 2**10 - ref).abs().max() < 3e-3
    # the input scale cancels: doubling the input changes nothing but rounding
    y2 = intops.add_layernorm(2 * x, 2 * res.to(torch.int32), p)
    assert (y2.int() - y.int()).abs().max() <= 1


def test_add_layernorm_constant_row_and_extremes():
    p = quantize.layernorm_params(np.ones(384), np.full(384, 0.5), 10)
    const = torch.full((1, 384), 1000, dtype=torch.int32)
    assert (intops.add_layernorm(const, torch.zeros_like(const), p) == 512).all()
    x = torch.full((2, 384), intops.RESIDUAL_MAX, dtype=torch.int32)
    x[0, ::2] = -intops.RESIDUAL_MAX
    x[1, 0] = -intops.RESIDUAL_MAX
    y = intops.add_layernorm(x, x, p)
    s = (2 * x).double()
    ref = torch.nn.functional.layer_norm(s, (384,), eps=0.0) + 0.5
    assert (y.double() / 2**10 - ref).abs().max() < 3e-3


def test_mean_pool_normalize_ignores_padding():
    h = randint(-INT16_MAX, INT16_MAX + 1, (2, 6, 384)).to(torch.int16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    out = intops.mean_pool_normalize(h, mask)
    assert out.dtype == torch.int8 and out.abs().amax(-1).tolist() == [127, 127]
    h2 = h.clone()
    h2[0, 3:] = 7
    assert torch.equal(intops.mean_pool_normalize(h2, mask)[0], out[0])
    assert torch.equal(intops.mean_pool_normalize(h[:1, :3], mask[:1, :3])[0], out[0])
    mean = h[0, :3].double().mean(0)
    cos = torch.nn.functional.cosine_similarity(out[0].double(), mean, dim=0)
    assert cos > 0.999
