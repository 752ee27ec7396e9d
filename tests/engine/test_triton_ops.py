"""The Triton kernels equal the integer reference (``intops``) bit for bit.

Without CUDA the kernels run in Triton's interpreter on the CPU (``TRITON_INTERPRET``,
set by this folder's conftest). With CUDA the same tests run the compiled kernels on
the GPU against the CPU reference.
The interpreter costs per program instance and per op, so shapes stay small while
still crossing every tile edge (lengths not multiples of the blocks, rows of 1).
The inputs are built in ``cases.py``, which ``bench/gpu_check.py`` runs on a GPU too.
"""
from dataclasses import replace

import pytest
import torch

from provider.engine import Engine, intops
from provider.engine import triton_ops as tops
from provider.engine.backend import select_backend
from provider.engine.intops import INT16_MAX, RESIDUAL_MAX, LinearParams
from provider.engine.model import to_device
from tests.engine import cases
from tests.engine.cases import lengths_mask, scaled_attention

OPS = tops.TritonOps()


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

@pytest.mark.parametrize("shape, dtype, bound", cases.QUANTIZE_RANDOM)
def test_quantize_rows_random(shape, dtype, bound):
    x = cases.quantize_random(shape, dtype, bound)
    assert_same(OPS.quantize_rows(dev(x)), intops.quantize_rows(x))


def test_quantize_rows_adversarial():
    rows = cases.quantize_adversarial()
    assert_same(OPS.quantize_rows(dev(rows)), intops.quantize_rows(rows))
    small = rows[[0, 1, 2, 3, 5, 6, 7]].to(torch.int16)
    small[3, 1] = -32768  # int16's minimum: both paths widen before abs
    assert_same(OPS.quantize_rows(dev(small)), intops.quantize_rows(small))


def test_quantize_rows_rejects_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        OPS.quantize_rows(dev(torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="row length"):
        OPS.quantize_rows(dev(torch.zeros(2, 0, dtype=torch.int32)))


# ----------------------------------------------------------------------------- linear

@pytest.mark.parametrize("m, k, n, bound, out_max, gelu", cases.LINEAR_RANDOM)
def test_linear_random(m, k, n, bound, out_max, gelu):
    x, p = cases.linear_random(m, k, n, bound, out_max, gelu)
    # the inputs reach both sides of the clamp, or of the GELU table's end
    pre = intops.linear(x, replace(p, gelu_lut=None)).abs()
    edge = min(out_max, p.gelu_lut.numel() - 1) if gelu else out_max
    assert (pre >= edge).any() and (pre < edge).any()
    assert_same(OPS.linear(dev(x), dev(p)), intops.linear(x, p))


@pytest.mark.parametrize("out_max, gelu", [(RESIDUAL_MAX, False), (INT16_MAX, True)])
def test_linear_ties_and_extremes(out_max, gelu):
    x, p = cases.linear_extremes(out_max, gelu)
    want = intops.linear(x, p)
    assert_same(OPS.linear(dev(x), dev(p)), want)
    if not gelu:
        n = p.weight.shape[0]
        ties = [j - n // 2 + 1 for j in range(n - 1)]  # rows with acc = 0: the ties went up
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

@pytest.mark.parametrize("heads, head_dim, length, lengths, bound, scale, shift",
                         cases.ATTENTION_RANDOM)
def test_attention_random(heads, head_dim, length, lengths, bound, scale, shift):
    qkv, mask, p = cases.attention_random(heads, head_dim, length, lengths, bound, scale, shift)
    want = intops.attention(qkv, mask, p)
    assert_same(OPS.attention(dev(qkv), dev(mask), dev(p)), want)


def test_attention_adversarial():
    qkv, mask, p = cases.attention_adversarial()
    want = intops.attention(qkv, mask, p)
    assert_same(OPS.attention(dev(qkv), dev(mask), dev(p)), want)
    assert want[2].eq(0).all() and want[0, :, :p.head_dim].ne(0).any()


def test_attention_rejects_bad_input():
    p = scaled_attention(2, 16)
    qkv = torch.zeros(2, 4, 96, dtype=torch.int16)
    with pytest.raises(ValueError, match="at least one real token"):
        OPS.attention(dev(qkv), dev(lengths_mask(4, [4, 0])), dev(p))
    with pytest.raises(ValueError, match="shape mismatch"):
        OPS.attention(dev(qkv[..., :95]), dev(lengths_mask(4, [4, 4])), dev(p))


# ---------------------------------------------------------------------- add_layernorm

@pytest.mark.parametrize("x_shape, r_shape, n, bound, out_max", cases.LAYERNORM_RANDOM)
def test_add_layernorm_random(x_shape, r_shape, n, bound, out_max):
    x, r, p, out_max = cases.layernorm_random(x_shape, r_shape, n, bound, out_max)
    want = intops.add_layernorm(x, r, p, out_max)
    assert want.abs().lt(out_max).float().mean() > 0.5
    assert_same(OPS.add_layernorm(dev(x), dev(r), dev(p), out_max), want)
    x16 = x.clamp(-INT16_MAX, INT16_MAX).to(torch.int16)  # the int16 + int32 mix of the model
    assert_same(OPS.add_layernorm(dev(x16), dev(r), dev(p)), intops.add_layernorm(x16, r, p))


def test_add_layernorm_adversarial():
    x, r, p = cases.layernorm_adversarial()
    assert_same(OPS.add_layernorm(dev(x), dev(r), dev(p)), intops.add_layernorm(x, r, p))


def test_add_layernorm_perfect_square_variance():
    for x, r, p in cases.layernorm_square_variances():
        assert_same(OPS.add_layernorm(dev(x), dev(r), dev(p)), intops.add_layernorm(x, r, p))


# ------------------------------------------------------------------ mean_pool_normalize

@pytest.mark.parametrize("batch, length, n, bound", cases.MEAN_POOL_RANDOM)
def test_mean_pool_normalize(batch, length, n, bound):
    h, mask = cases.mean_pool_random(batch, length, n, bound)
    want = intops.mean_pool_normalize(h, mask)
    assert_same(OPS.mean_pool_normalize(dev(h), dev(mask)), want)


def test_mean_pool_extremes():
    h, mask = cases.mean_pool_extremes()
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
