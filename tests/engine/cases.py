"""Inputs that push the integer ops to their edges, built as CPU tensors.

Shared by the Triton-equals-CPU tests (``test_triton_ops.py``: Triton's interpreter, or
the GPU) and the first check of a GPU slot (``bench/gpu_check.py``), so that the device
runs the very cases the interpreter proves, plus ``large_cases``, which are too slow for
the interpreter. Every builder is deterministic (seeded) and returns the op's positional
arguments; ``Case`` names one op call for any backend.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from provider.engine import intops, quantize
from provider.engine.intops import INT16_MAX, RESIDUAL_MAX, AttentionParams, LayerNormParams, LinearParams


@dataclass(frozen=True)
class Case:
    """``getattr(ops, op)(*args)`` for any backend's ops (``intops``, ``TritonOps``)."""

    label: str
    op: str
    args: tuple


def rand_int(seed: int, lo: int, hi: int, shape, dtype: torch.dtype) -> torch.Tensor:
    """Uniform integers in [lo, hi] (inclusive) as ``dtype``, reproducible by seed."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, tuple(shape), generator=gen, dtype=torch.int64).to(dtype)


def lengths_mask(length: int, lengths: list[int]) -> torch.Tensor:
    """Right-padded mask [len(lengths), length]: the first ``lengths[b]`` tokens are real."""
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


# ---------------------------------------------------------------------- quantize_rows

# (shape, dtype, bound): inputs uniform in [-bound, bound]
QUANTIZE_RANDOM = [
    ((5, 37), torch.int16, INT16_MAX),
    ((3, 4, 1), torch.int16, INT16_MAX),          # rows of length 1
    ((2, 3, 1536), torch.int16, 300),             # the FFN width, several programs
    ((9, 17), torch.int32, 2**31 - 1),            # full int32 magnitude
    ((0, 8), torch.int32, 5),                     # no rows at all
]


def quantize_random(shape, dtype, bound) -> torch.Tensor:
    return rand_int(1, -bound, bound, shape, dtype)


def quantize_adversarial() -> torch.Tensor:
    """int32 rows at the rounding ties, zero rows and the extremes of each scale."""
    return torch.tensor([
        [254, 1, -1, 3, -3, 5, -5, 253],           # m = 254: r = 2**39, every odd x is a .5 tie
        [0, 0, 0, 0, 0, 0, 0, 0],                   # zero row: q = 0, m = 0
        [32767, -32767, 1, -1, 16384, -16384, 0, 2],
        [-32767, 0, 0, 0, 0, 0, 0, 0],
        [2**31 - 1, -(2**31 - 1), 1, -1, 2**30, -(2**30), 2**30 + 1, -3],
        [127, -127, 126, -126, 1, -1, 64, -64],     # m = 127: r = 2**40, exact
        [3, -3, 1, -1, 2, -2, 0, 0],                # m = 3: non-power-of-two reciprocal
        [1, 0, -1, 0, 0, 1, 0, 0],                  # m = 1: the smallest non-zero scale
    ], dtype=torch.int32)


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

# (m, k, n, bound, out_max, gelu)
LINEAR_RANDOM = [
    (1, 16, 16, INT16_MAX, INT16_MAX, False),
    (17, 100, 130, INT16_MAX, RESIDUAL_MAX, False),  # int32 output, ragged K and N
    (70, 384, 200, 4000, INT16_MAX, True),           # the FFN-in epilogue: GELU table
    (5, 1536, 33, INT16_MAX, RESIDUAL_MAX, False),   # 12 K tiles, full int16 inputs
    (64, 129, 128, 300, 1000, True),                 # exact M/N tiles, K one past a tile
]


def linear_random(m, k, n, bound, out_max, gelu) -> tuple[torch.Tensor, LinearParams]:
    x = rand_int(10 + m, -bound, bound, (m, k), torch.int16)
    return x, linear_params(12 + m, n, k, out_max, gelu, x)


def linear_extremes(out_max: int, gelu: bool, k: int = 1536,
                    n: int = 40) -> tuple[torch.Tensor, LinearParams]:
    """Rows of +-32767 against weights of +-127 over ``k`` (|acc * M| ~ 2**48.6 at the
    longest K), sums that cancel to 0 (then y = round_shift(bias): exact .5 ties on both
    signs: bias[j] = (j - n // 2 + 1/2) * 2**shift), and every plane edge."""
    edges = torch.tensor(PLANE_EDGES, dtype=torch.int16)
    x = torch.stack([
        torch.full((k,), INT16_MAX), torch.full((k,), -INT16_MAX),
        torch.zeros(k), torch.tensor([INT16_MAX, -INT16_MAX] * (k // 2)),  # acc = 0
        edges.repeat(k // len(edges) + 1)[:k],
        edges[rand_int(80, 0, len(edges) - 1, (k,), torch.int64)],
    ]).to(torch.int16)
    weight = torch.full((n, k), 127, dtype=torch.int8)
    weight[1::2] = -127
    weight[-1] = rand_int(81, -127, 127, (k,), torch.int8)
    mult = torch.full((n,), 2**16 - 1, dtype=torch.int64)
    shift = 24
    bias = (torch.arange(n, dtype=torch.int64) - n // 2) * 2**shift + 2**(shift - 1)
    lut = quantize.gelu_lut(quantize.F_FFN) if gelu else None
    return x, LinearParams(weight, mult, bias, shift, out_max, lut)


# -------------------------------------------------------------------------- attention

def scaled_attention(heads: int, head_dim: int, score_scale: float = 1.0,
                     score_shift: int | None = None) -> AttentionParams:
    """The model's attention constants for this shape; ``score_scale`` sharpens or
    flattens the softmax (CQK stays below its documented 2**13) so that both the table
    middle and the cap are exercised; a small ``score_shift`` makes rounding ties common."""
    p = quantize.attention_params(heads, head_dim)
    mult = min(2**13 - 1, max(1, int(p.score_mult * score_scale)))
    return replace(p, score_mult=mult, score_shift=score_shift or p.score_shift)


# (heads, head_dim, length, lengths, bound, scale, shift)
ATTENTION_RANDOM = [
    (2, 32, 70, [70, 41, 1], 3000, 1.0, None),  # two query/key tiles, a single real token
    (1, 32, 64, [64, 17], INT16_MAX, 1.0, None),  # exact tile; saturated scores hit the cap
    (3, 16, 5, [5, 3], 2000, 0.02, None),       # flat softmax, short sequences
    (2, 8, 19, [19, 12], 500, 1.9, None),       # head_dim below the 32-wide dot block
    (2, 32, 1, [1], 1000, 1.0, None),           # a sequence of one token
    (2, 32, 33, [33, 20], 3, 2.0, 8),           # e = round(delta * R / 256): ~100 .5 ties
]


def attention_random(heads, head_dim, length, lengths, bound, scale, shift):
    p = scaled_attention(heads, head_dim, scale, shift)
    qkv = rand_int(20 + length, -bound, bound, (len(lengths), length, 3 * heads * head_dim),
                   torch.int16)
    return qkv, lengths_mask(length, lengths), p


def attention_adversarial(heads: int = 2, head_dim: int = 32, length: int = 20):
    """Tied scores, identical keys, zero values, +-32767 everywhere, one-token sequences."""
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
    return qkv, mask, p


# ---------------------------------------------------------------------- add_layernorm

def layernorm_params(seed: int, n: int, gamma_bits: int = 15, beta_bits: int = 28):
    """Random parameters; the default magnitudes keep most outputs inside int16 (as the
    model's do), the documented bounds are |gamma| < 2**20 and |beta| < 2**40."""
    gamma = rand_int(seed, 1 - 2**gamma_bits, 2**gamma_bits - 1, (n,), torch.int64)
    beta = rand_int(seed + 1, 1 - 2**beta_bits, 2**beta_bits - 1, (n,), torch.int64)
    return LayerNormParams(gamma, beta, int(quantize.round_fixed(1.0 / n, intops.LN_MEAN_SHIFT)))


# (x_shape, r_shape, n, bound, out_max): x_shape and r_shape without the last dim n
LAYERNORM_RANDOM = [
    ((2, 9), (9,), 384, RESIDUAL_MAX, INT16_MAX),   # broadcast residual (position embeddings)
    ((7,), (7,), 33, 3000, 3000),                   # odd width, clamp to a small bound
    ((5,), (5,), 1, RESIDUAL_MAX, INT16_MAX),       # one channel: d = 0, y = beta
    ((3, 11), (3, 11), 5, 20, INT16_MAX),           # tiny values: rounding dominates
]


def layernorm_random(x_shape, r_shape, n, bound, out_max):
    """(x, residual, params, out_max), int32 inputs in [-bound, bound]."""
    p = layernorm_params(40 + n, n)
    x = rand_int(41 + n, -bound, bound, (*x_shape, n), torch.int32)
    r = rand_int(42 + n, -bound, bound, (*r_shape, n), torch.int32)
    return x, r, p, out_max


def layernorm_adversarial(n: int = 384):
    """Constant rows (var = 0), +-RESIDUAL_MAX, one spike, a mean within a hair of .5 and
    |x + residual| = 2**22 (the documented maximum), at the maximal parameters."""
    p = layernorm_params(50, n, gamma_bits=20, beta_bits=40)
    x = torch.zeros(6, n, dtype=torch.int32)
    x[1] = 12345
    x[2, ::2], x[2, 1::2] = RESIDUAL_MAX, -RESIDUAL_MAX
    x[3, 0] = RESIDUAL_MAX
    x[4] = torch.arange(n) - n // 2
    x[5] = -RESIDUAL_MAX
    r = x.flip(0).clone()
    r[5] = -RESIDUAL_MAX
    return x, r, p


def layernorm_square_variances():
    """Rows [a, -a, a, -a]: mean 0 and var = 4 a**2 exactly (the floor-sqrt edge), then
    with one residual of 1: var = 4 a**2 - 2 a + 1, just off. [(x, residual, params)]"""
    p = layernorm_params(60, 4)
    a = torch.tensor([0, 1, 2, 3, 1000, 2**20 - 1, 2**21])[:, None]
    x = (a * torch.tensor([1, -1, 1, -1])).to(torch.int32)
    r = torch.zeros_like(x)
    r[:, 3] = 1
    return [(x, torch.zeros_like(x), p), (x, r, p)]


# ------------------------------------------------------------------ mean_pool_normalize

# (batch, length, n, bound)
MEAN_POOL_RANDOM = [
    (4, 70, 384, INT16_MAX),     # several L chunks; includes a fully masked row
    (2, 1, 5, 1000),             # one token, odd width
    (1, 512, 16, INT16_MAX),     # 512 tokens: many L chunks
]


def mean_pool_random(batch, length, n, bound):
    """(h, mask): lengths full, 1, a third and 0, a hole in the first sequence."""
    h = rand_int(70 + length, -bound, bound, (batch, length, n), torch.int16)
    mask = lengths_mask(length, [length, 1, max(1, length // 3), 0][:batch])
    if length > 2:
        mask[0, 1] = False
    return h, mask


def mean_pool_extremes(length: int = 512, n: int = 24):
    """``length`` tokens at +-32767: at 512, |sum| near 2**24, the documented maximum."""
    h = torch.full((3, length, n), INT16_MAX, dtype=torch.int16)
    h[1] = -INT16_MAX
    h[2, :, ::2] = 0
    return h, torch.ones(3, length, dtype=torch.bool)


# ------------------------------------------------------------------------ case lists

def all_cases() -> list[Case]:
    """Every input of test_triton_ops.py, as op calls."""
    cases = [Case(f"random {tuple(s)} {d}", "quantize_rows", (quantize_random(s, d, b),))
             for s, d, b in QUANTIZE_RANDOM]
    rows = quantize_adversarial()
    cases += [Case("adversarial int32", "quantize_rows", (rows,)),
              Case("adversarial int16", "quantize_rows", (rows[[0, 1, 2, 3, 5, 6, 7]].to(torch.int16),))]
    cases += [Case(f"random {m}x{k}->{n} out_max {o}{' gelu' if g else ''}", "linear",
                   linear_random(m, k, n, b, o, g)) for m, k, n, b, o, g in LINEAR_RANDOM]
    cases += [Case(f"extremes K=1536{' gelu' if g else ''}", "linear", linear_extremes(o, g))
              for o, g in [(RESIDUAL_MAX, False), (INT16_MAX, True)]]
    cases += [Case(f"random {h}x{d} L={n} lengths {ls}", "attention",
                   attention_random(h, d, n, ls, b, s, sh)) for h, d, n, ls, b, s, sh in ATTENTION_RANDOM]
    cases.append(Case("adversarial", "attention", attention_adversarial()))
    cases += [Case(f"random {xs}+{rs} n={n}", "add_layernorm", layernorm_random(xs, rs, n, b, o))
              for xs, rs, n, b, o in LAYERNORM_RANDOM]
    cases.append(Case("adversarial", "add_layernorm", layernorm_adversarial()))
    cases += [Case(f"square variance {i}", "add_layernorm", args)
              for i, args in enumerate(layernorm_square_variances())]
    cases += [Case(f"random {b}x{n}x{k}", "mean_pool_normalize", mean_pool_random(b, n, k, bound))
              for b, n, k, bound in MEAN_POOL_RANDOM]
    cases.append(Case("extremes 512 tokens", "mean_pool_normalize", mean_pool_extremes()))
    return cases


# the model's shapes: hidden 384 = 12 heads x 32, FFN 1536, up to 256 tokens, a forward
# pass of up to 512 tokens (engine.BATCH_TOKENS)
HEADS, HEAD_DIM, HIDDEN, FFN, ROWS = 12, 32, 384, 1536, 512


def large_cases() -> list[Case]:
    """The model's own shapes at the int16 extremes: too slow for the interpreter."""
    cases = [Case(f"{ROWS}x{n} at +-32767", "quantize_rows",
                  (torch.where(rand_int(90 + n, 0, 1, (ROWS, n), torch.int16) > 0,
                               INT16_MAX, -INT16_MAX).to(torch.int16),)) for n in (HIDDEN, FFN)]
    for label, k, n, out_max, gelu in [("QKV", HIDDEN, 3 * HIDDEN, INT16_MAX, False),
                                       ("attention out", HIDDEN, HIDDEN, RESIDUAL_MAX, False),
                                       ("FFN in", HIDDEN, FFN, INT16_MAX, True),
                                       ("FFN out", FFN, HIDDEN, RESIDUAL_MAX, False)]:
        cases.append(Case(f"{label} {ROWS}x{k}->{n}", "linear",
                          linear_random(ROWS, k, n, INT16_MAX, out_max, gelu)))
        cases.append(Case(f"{label} extremes K={k} N={n}", "linear",
                          linear_extremes(out_max, gelu, k, n)))
    for length in (1, 32, 33, 128, 256):  # one token; the 32-tile's end; 64-tiles
        lengths = [length, max(1, length // 2), 1]
        cases.append(Case(f"{HEADS}x{HEAD_DIM} L={length} lengths {lengths}", "attention",
                          attention_random(HEADS, HEAD_DIM, length, lengths, INT16_MAX, 1.0, None)))
        qkv, mask, p = attention_random(HEADS, HEAD_DIM, length, lengths, 1, 1.0, None)
        cases.append(Case(f"{HEADS}x{HEAD_DIM} L={length} all +-32767", "attention",
                          (torch.where(qkv >= 0, INT16_MAX, -INT16_MAX).to(torch.int16), mask, p)))
    x, r, p, _ = layernorm_random((ROWS,), (ROWS,), HIDDEN, RESIDUAL_MAX, INT16_MAX)
    cases.append(Case(f"{ROWS}x{HIDDEN}, int32 + int16", "add_layernorm",
                      (x, r.clamp(-INT16_MAX, INT16_MAX).to(torch.int16), p)))
    cases.append(Case(f"4x256x{HIDDEN}", "mean_pool_normalize", mean_pool_random(4, 256, HIDDEN, INT16_MAX)))
    cases.append(Case(f"3x256x{HIDDEN} at +-32767", "mean_pool_normalize", mean_pool_extremes(256, HIDDEN)))
    return cases
