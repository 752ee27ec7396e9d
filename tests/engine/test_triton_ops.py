"""The Triton kernels equal the integer reference (``intops``) bit for bit.

Without CUDA the kernels run in Triton's interpreter on the CPU (``TRITON_INTERPRET``,
set by this folder's conftest). With CUDA the same tests run the compiled kernels on
the GPU against the CPU reference.
The interpreter costs per program instance and per op, so shapes stay small while
still crossing every tile edge (lengths not multiples of the blocks, rows of 1).
"""
from dataclasses import replace

import pytest
import torch

from provider.engine import Engine, intops, quantize
from provider.engine import triton_ops as tops
from provider.engine.backend import select_backend
from provider.engine.intops import INT16_MAX, RESIDUAL_MAX, AttentionParams, LayerNormParams, LinearParams
from provider.engine.model import to_device

OPS = tops.TritonOps()


def rand_int(seed: int, lo: int, hi: int, shape, dtype: torch.dtype) -> torch.Tensor:
    """Uniform integers in [lo, hi] (inclusive) as ``dtype``, reproducible by seed."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, tuple(shape), generator=gen, dtype=torch.int64).to(dtype)


def dev(obj):
    """A tensor or a params dataclass with every tensor on the kernels' device."""
    return to_device(obj, OPS.device)


def assert_same(got, want) -> None:
    """Bit equality, dtype and shape included, for a tensor or a tuple of tensors."""
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
        return
    got = got.cpu()
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    assert torch.equal(got, want), f"{int((got != want).sum())} of {want.numel()} elements differ"


# ---------------------------------------------------------------------- quantize_rows

@pytest.mark.parametrize("shape, dtype, bound", [
    ((5, 37), torch.int16, INT16_MAX),
    ((3, 4, 1), torch.int16, INT16_MAX),          # rows of length 1
    ((2, 3, 1536), torch.int16, 300),             # the FFN width, several programs
    ((9, 17), torch.int32, 2**31 - 1),            # full int32 magnitude
    ((0, 8), torch.int32, 5),                     # no rows at all
])
def test_quantize_rows_random(shape, dtype, bound):
    x = rand_int(1, -bound, bound, shape, dtype)
    assert_same(OPS.quantize_rows(dev(x)), intops.quantize_rows(x))


def test_quantize_rows_adversarial():
    rows = torch.tensor([
        [254, 1, -1, 3, -3, 5, -5, 253],           # m = 254: r = 2**39, every odd x is a .5 tie
        [0, 0, 0, 0, 0, 0, 0, 0],                   # zero row: q = 0, m = 0
        [32767, -32767, 1, -1, 16384, -16384, 0, 2],
        [-32767, 0, 0, 0, 0, 0, 0, 0],
        [2**31 - 1, -(2**31 - 1), 1, -1, 2**30, -(2**30), 2**30 + 1, -3],
        [127, -127, 126, -126, 1, -1, 64, -64],     # m = 127: r = 2**40, exact
        [3, -3, 1, -1, 2, -2, 0, 0],                # m = 3: non-power-of-two reciprocal
        [1, 0, -1, 0, 0, 1, 0, 0],                  # m = 1: the smallest non-zero scale
    ], dtype=torch.int32)
    assert_same(OPS.quantize_rows(dev(rows)), intops.quantize_rows(rows))
    small = rows[[0, 1, 2, 3, 5, 6, 7]].to(torch.int16)
    assert_same(OPS.quantize_rows(dev(small)), intops.quantize_rows(small))


def test_quantize_rows_rejects_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        OPS.quantize_rows(dev(torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="row length"):
        OPS.quantize_rows(dev(torch.zeros(2, 0, dtype=torch.int32)))


# ----------------------------------------------------------------------------- linear

def linear_params(seed: int, n: int, k: int, out_max: int, gelu: bool, x) -> LinearParams:
    """Random layer whose shift puts typical outputs near the clamp / the GELU table edge,
    inside intops' documented bounds (|acc * M| < 2**49, |B| < 2**50)."""
    weight = rand_int(seed, -127, 127, (n, k), torch.int8)
    mult = rand_int(seed + 1, 0, 2**16 - 1, (n,), torch.int64)
    raw = (x.long() @ weight.long().t()) * mult
    target = 12 if gelu else out_max.bit_length() - 1  # GELU table: |y| < 8 * 2**9 = 2**12
    shift = max(1, int(raw.abs().float().median()).bit_length() - target)
    # a bias of up to half the output range, with random bits below the rounding point
    bias = (rand_int(seed + 2, -(out_max // 2), out_max // 2, (n,), torch.int64) << shift) + \
        rand_int(seed + 3, 0, (1 << shift) - 1, (n,), torch.int64)
    assert raw.abs().max() < 2**49 and bias.abs().max() < 2**50
    lut = quantize.gelu_lut(quantize.F_FFN) if gelu else None
    return LinearParams(weight, mult, bias, shift, out_max, lut)


# int16 values on both sides of every hi/lo plane edge (x = 256 * (x >> 8) + (x & 255))
PLANE_EDGES = [-INT16_MAX, -32513, -32512, -257, -256, -255, -129, -128, -127, -1, 0, 1,
               127, 128, 255, 256, 257, 32511, 32512, INT16_MAX]


@pytest.mark.parametrize("m, k, n, bound, out_max, gelu", [
    (1, 16, 16, INT16_MAX, INT16_MAX, False),
    (17, 100, 130, INT16_MAX, RESIDUAL_MAX, False),  # int32 output, ragged K and N
    (70, 384, 200, 4000, INT16_MAX, True),           # the FFN-in epilogue: GELU table
    (5, 1536, 33, INT16_MAX, RESIDUAL_MAX, False),   # 12 K tiles, full int16 inputs
    (64, 129, 128, 300, 1000, True),                 # exact M/N tiles, K one past a tile
])
def test_linear_random(m, k, n, bound, out_max, gelu):
    x = rand_int(10 + m, -bound, bound, (m, k), torch.int16)
    p = linear_params(12 + m, n, k, out_max, gelu, x)
    # the inputs reach both sides of the clamp, or of the GELU table's end
    pre = intops.linear(x, replace(p, gelu_lut=None)).abs()
    edge = min(out_max, p.gelu_lut.numel() - 1) if gelu else out_max
    assert (pre >= edge).any() and (pre < edge).any()
    assert_same(OPS.linear(dev(x), dev(p)), intops.linear(x, p))


def test_linear_ties_and_extremes():
    k, n, shift = 1536, 40, 24
    edges = torch.tensor(PLANE_EDGES, dtype=torch.int16)
    x = torch.stack([
        torch.full((k,), INT16_MAX), torch.full((k,), -INT16_MAX),  # |acc * M| ~ 2**48.6
        torch.zeros(k), torch.tensor([INT16_MAX, -INT16_MAX] * (k // 2)),  # acc = 0
        edges.repeat(k // len(edges) + 1)[:k],
        edges[rand_int(80, 0, len(edges) - 1, (k,), torch.int64)],
    ]).to(torch.int16)
    weight = torch.full((n, k), 127, dtype=torch.int8)
    weight[1::2] = -127
    weight[-1] = rand_int(81, -127, 127, (k,), torch.int8)
    mult = torch.full((n,), 2**16 - 1, dtype=torch.int64)
    # rows with acc = 0 give y = round_shift(bias): exact .5 ties on both signs
    bias = (torch.arange(n, dtype=torch.int64) - n // 2) * 2**shift + 2**(shift - 1)
    for out_max, lut in [(RESIDUAL_MAX, None), (INT16_MAX, quantize.gelu_lut(quantize.F_FFN))]:
        p = LinearParams(weight, mult, bias, shift, out_max, lut)
        want = intops.linear(x, p)
        assert_same(OPS.linear(dev(x), dev(p)), want)
        if lut is None:
            ties = [j - n // 2 + 1 for j in range(n - 1)]  # ties went up
            assert want[2, :-1].tolist() == ties and want[3, :-1].tolist() == ties
            assert want[0, :-1].abs().eq(out_max).all()


def test_linear_rejects_bad_input():
    p = LinearParams(torch.zeros(4, 8, dtype=torch.int8), torch.ones(4, dtype=torch.int64),
                     torch.zeros(4, dtype=torch.int64), 3, INT16_MAX)
    with pytest.raises(ValueError, match="shape mismatch"):
        OPS.linear(dev(torch.zeros(2, 9, dtype=torch.int16)), dev(p))
    with pytest.raises(TypeError, match="x: dtype"):
        OPS.linear(dev(torch.zeros(2, 8, dtype=torch.int8)), dev(p))


# -------------------------------------------------------------------------- attention

def scaled_attention(heads: int, head_dim: int, score_scale: float = 1.0,
                     score_shift: int | None = None) -> AttentionParams:
    """The model's attention constants for this shape; ``score_scale`` sharpens or
    flattens the softmax (CQK stays below its documented 2**13) so that both the table
    middle and the cap are exercised; a small ``score_shift`` makes rounding ties common."""
    p = quantize.attention_params(heads, head_dim)
    mult = min(2**13 - 1, max(1, int(p.score_mult * score_scale)))
    return replace(p, score_mult=mult, score_shift=score_shift or p.score_shift)


def lengths_mask(length: int, lengths: list[int]) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("heads, head_dim, length, lengths, bound, scale, shift", [
    (2, 32, 70, [70, 41, 1], 3000, 1.0, None),  # two query/key tiles, a single real token
    (1, 32, 64, [64, 17], INT16_MAX, 1.0, None),  # exact tile; saturated scores hit the cap
    (3, 16, 5, [5, 3], 2000, 0.02, None),       # flat softmax, short sequences
    (2, 8, 19, [19, 12], 500, 1.9, None),       # head_dim below the 32-wide dot block
    (2, 32, 1, [1], 1000, 1.0, None),           # a sequence of one token
    (2, 32, 33, [33, 20], 3, 2.0, 8),           # e = round(delta * R / 256): ~100 .5 ties
])
def test_attention_random(heads, head_dim, length, lengths, bound, scale, shift):
    p = scaled_attention(heads, head_dim, scale, shift)
    qkv = rand_int(20 + length, -bound, bound, (len(lengths), length, 3 * heads * head_dim),
                   torch.int16)
    mask = lengths_mask(length, lengths)
    want = intops.attention(qkv, mask, p)
    assert_same(OPS.attention(dev(qkv), dev(mask), dev(p)), want)


def test_attention_adversarial():
    heads, head_dim, length = 2, 32, 20
    p = scaled_attention(heads, head_dim)
    qkv = rand_int(30, -4000, 4000, (4, length, 3 * heads * head_dim), torch.int32)
    q, k, v = (slice(i * heads * head_dim, (i + 1) * heads * head_dim) for i in range(3))
    qkv[0, :, q] = 0                                  # mq = 0: every score ties, uniform prob
    qkv[1, :, k] = qkv[1, :1, k]                      # identical keys: ties for the max
    qkv[2, :, v] = 0                                  # zero values: mv = 0
    qkv[3, :, :] = torch.where(qkv[3] > 0, INT16_MAX, -INT16_MAX)  # max magnitudes
    mask = torch.ones(4, length, dtype=torch.bool)
    mask[1, 7:] = False                               # padding after tied keys
    mask[3, 1:] = False                               # a one-token sequence
    want = intops.attention(qkv, mask, p)
    assert_same(OPS.attention(dev(qkv), dev(mask), dev(p)), want)
    assert want[2].eq(0).all() and want[0, :, :head_dim].ne(0).any()


def test_attention_rejects_bad_input():
    p = scaled_attention(2, 16)
    qkv = torch.zeros(2, 4, 96, dtype=torch.int16)
    with pytest.raises(ValueError, match="at least one real token"):
        OPS.attention(dev(qkv), dev(lengths_mask(4, [4, 0])), dev(p))
    with pytest.raises(ValueError, match="shape mismatch"):
        OPS.attention(dev(qkv[..., :95]), dev(lengths_mask(4, [4, 4])), dev(p))


# ---------------------------------------------------------------------- add_layernorm

def layernorm_params(seed: int, n: int, gamma_bits: int = 15, beta_bits: int = 28):
    """Random parameters; the default magnitudes keep most outputs inside int16 (as the
    model's do), the documented bounds are |gamma| < 2**20 and |beta| < 2**40."""
    gamma = rand_int(seed, 1 - 2**gamma_bits, 2**gamma_bits - 1, (n,), torch.int64)
    beta = rand_int(seed + 1, 1 - 2**beta_bits, 2**beta_bits - 1, (n,), torch.int64)
    return LayerNormParams(gamma, beta, int(quantize.round_fixed(1.0 / n, intops.LN_MEAN_SHIFT)))


@pytest.mark.parametrize("x_shape, r_shape, n, bound, out_max", [
    ((2, 9), (9,), 384, RESIDUAL_MAX, INT16_MAX),   # broadcast residual (position embeddings)
    ((7,), (7,), 33, 3000, 3000),                   # odd width, clamp to a small bound
    ((5,), (5,), 1, RESIDUAL_MAX, INT16_MAX),       # one channel: d = 0, y = beta
    ((3, 11), (3, 11), 5, 20, INT16_MAX),           # tiny values: rounding dominates
])
def test_add_layernorm_random(x_shape, r_shape, n, bound, out_max):
    p = layernorm_params(40 + n, n)
    x = rand_int(41 + n, -bound, bound, (*x_shape, n), torch.int32)
    r = rand_int(42 + n, -bound, bound, (*r_shape, n), torch.int32)
    want = intops.add_layernorm(x, r, p, out_max)
    assert want.abs().lt(out_max).float().mean() > 0.5
    assert_same(OPS.add_layernorm(dev(x), dev(r), dev(p), out_max), want)
    x16 = x.clamp(-INT16_MAX, INT16_MAX).to(torch.int16)  # the int16 + int32 mix of the model
    assert_same(OPS.add_layernorm(dev(x16), dev(r), dev(p)), intops.add_layernorm(x16, r, p))


def test_add_layernorm_adversarial():
    n = 384
    p = layernorm_params(50, n, gamma_bits=20, beta_bits=40)  # the documented maxima
    x = torch.zeros(6, n, dtype=torch.int32)
    x[1] = 12345                                     # constant row: var = 0
    x[2, ::2], x[2, 1::2] = RESIDUAL_MAX, -RESIDUAL_MAX
    x[3, 0] = RESIDUAL_MAX                           # one spike: |d| close to std
    x[4] = torch.arange(n) - n // 2                  # a mean within a hair of .5
    x[5] = -RESIDUAL_MAX
    r = x.flip(0).clone()
    r[5] = -RESIDUAL_MAX                             # |s| = 2**22, the documented maximum
    assert_same(OPS.add_layernorm(dev(x), dev(r), dev(p)), intops.add_layernorm(x, r, p))


def test_add_layernorm_perfect_square_variance():
    """Rows [a, -a, a, -a]: mean 0 and var = 4 a**2 exactly, the floor-sqrt edge."""
    p = layernorm_params(60, 4)
    a = torch.tensor([0, 1, 2, 3, 1000, 2**20 - 1, 2**21])[:, None]
    x = (a * torch.tensor([1, -1, 1, -1])).to(torch.int32)
    r = torch.zeros_like(x)
    r[:, 3] = 1                                      # and var = 4 a**2 - 2 a + 1, just off
    for res in (torch.zeros_like(x), r):
        want = intops.add_layernorm(x, res, p)
        assert_same(OPS.add_layernorm(dev(x), dev(res), dev(p)), want)


# ------------------------------------------------------------------ mean_pool_normalize

@pytest.mark.parametrize("batch, length, n, bound", [
    (4, 70, 384, INT16_MAX),     # several L chunks; includes a fully masked row
    (2, 1, 5, 1000),             # one token, odd width
    (1, 512, 16, INT16_MAX),     # 512 tokens: many L chunks
])
def test_mean_pool_normalize(batch, length, n, bound):
    h = rand_int(70 + length, -bound, bound, (batch, length, n), torch.int16)
    lengths = [length, 1, max(1, length // 3), 0][:batch]
    mask = lengths_mask(length, lengths)
    if length > 2:
        mask[0, 1] = False                           # a hole in a sequence
    want = intops.mean_pool_normalize(h, mask)
    assert_same(OPS.mean_pool_normalize(dev(h), dev(mask)), want)


def test_mean_pool_extremes():
    """512 tokens at +-32767: |sum| near 2**24, the documented maximum."""
    h = torch.full((3, 512, 24), INT16_MAX, dtype=torch.int16)
    h[1] = -INT16_MAX
    h[2, :, ::2] = 0
    mask = torch.ones(3, 512, dtype=torch.bool)
    assert_same(OPS.mean_pool_normalize(dev(h), dev(mask)), intops.mean_pool_normalize(h, mask))


# ------------------------------------------------------------------------ whole model

SENTENCES = ["A man is playing a guitar.", "Hello!",
             "Verifiable inference on many GPUs, bit for bit."]


def test_model_triton_equals_cpu_bit_for_bit():
    """Real weights, real tokenizer, one padded batch: the result bytes are identical."""
    triton_engine = Engine.load(backend="triton")
    cpu_engine = Engine.load(backend="cpu")
    assert (triton_engine.backend, cpu_engine.backend) == ("triton", "cpu")
    assert triton_engine.model_id == cpu_engine.model_id
    want = cpu_engine.embed(SENTENCES)
    assert len(set(want)) == len(SENTENCES)
    assert triton_engine.embed(SENTENCES) == want


def test_backend_selection_returns_triton_ops():
    ops = select_backend("triton")
    assert isinstance(ops, tops.TritonOps) and ops.device == OPS.device
