"""Triton kernels of the verifiable engine: the five ops of ``intops``, bit for bit.

Each op is a plain ``@triton.jit`` kernel plus a host wrapper with the signature and
dtypes of its ``intops`` reference, so ``TritonOps`` is a drop-in backend for
``model.forward``. Exactness comes from the arithmetic, not from luck:
- int8 x int8 products go through ``tl.dot`` into int32 (exact in any tile order);
  int16 activations are split into two int8 planes, as intops' CPU route does;
- intops' float64 epilogues compute exact integers (every value below 2**53), so
  here they are the same integer formulas in int64: floor(v * 2**-s) == v >> s;
- divisions are ``non-negative // positive`` only, where Triton's truncating ``//``
  equals torch's flooring one.
With ``TRITON_INTERPRET=1`` set before this module is imported, the kernels run on
CPU tensors (tests); otherwise they need CUDA tensors.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import intops
from .intops import AttentionParams, LayerNormParams, LinearParams

# Decided when the kernels are decorated (import time), like triton itself does.
INTERPRETED = bool(triton.knobs.runtime.interpret)

# intops' constants, the shifted ones folded here: inside a kernel a constexpr must
# not be the left operand with a tensor on the right (the interpreter then wraps the
# tensor result in a constexpr), so numerators enter as tl.full(..., tl.int64).
QUANT_SHIFT = tl.constexpr(intops.QUANT_SHIFT)
QUANT_NUM = tl.constexpr(127 << intops.QUANT_SHIFT)
PROB_SHIFT = tl.constexpr(intops.PROB_SHIFT)
PROB_NUM = tl.constexpr(intops.PROB_MAX << intops.PROB_SHIFT)
LN_RECIP_ONE = tl.constexpr(1 << intops.LN_RECIP_SHIFT)
LN_Z_SHIFT = tl.constexpr(intops.LN_RECIP_SHIFT - intops.LN_Z_BITS)
LN_Z_BITS = tl.constexpr(intops.LN_Z_BITS)
LN_MEAN_SHIFT = tl.constexpr(intops.LN_MEAN_SHIFT)
RATE_SHIFT = tl.constexpr(intops.RATE_SHIFT)
INT16_MAX = tl.constexpr(intops.INT16_MAX)
NO_SCORE = tl.constexpr(-(1 << 62))  # below every real score; as intops' masked fill

# Widest row kept in one block by the row-wise kernels (quantize, LayerNorm, pooling).
MAX_ROW = 16384
# Elements per tile of the row-wise kernels: rows per program = TILE // row block.
TILE = 4096
# int8 tl.dot on NVIDIA needs every block dim >= 16 and the reduction dim >= 32 (the
# interpreter does not check it; tests/engine/test_triton_compile.py does).
DOT_MIN = 32
# GEMM tile: int8 tensor-core friendly (64 KiB of shared memory as compiled for sm80 and
# sm90 with the int16 activation tile: tests/engine/test_triton_compile.py), one config.
GEMM_BLOCK_M, GEMM_BLOCK_N, GEMM_BLOCK_K = 64, 128, 128
# Attention query/key tile: a few [64, 64] int64 score tiles live at once, hence 8 warps;
# a 32-wide tile (up to 32 tokens) on 8 warps gets only 128 registers from sm90's ptxas
# and spills, on 4 it doesn't (tests/engine/test_triton_compile.py).
ATTN_BLOCK = 64


# --------------------------------------------------------------------------- helpers

@triton.jit
def _round_shift(x, s):
    """intops.round_shift for int64 ``x``: (x + 2**s / 2) >> s, ties toward +inf.

    ``s`` is a scalar or a tensor of shifts in [0, 62]; the constant 1 is int64 so that
    ``1 << s`` can't overflow int32.
    """
    return (x + ((tl.full((), 1, tl.int64) << s) >> 1)) >> s


@triton.jit
def _quantize(x, m):
    """intops.quantize_rows given the row max ``m`` (broadcastable to ``x``, m >= |x|):
    r = (127 << 40) // max(m, 1) (non-negative // positive), q = round_shift(x * r, 40)."""
    r = tl.full((), QUANT_NUM, tl.int64) // tl.maximum(m.to(tl.int64), 1)
    return _round_shift(x.to(tl.int64) * r, QUANT_SHIFT).to(tl.int8)


@triton.jit
def _isqrt(n):
    """floor(sqrt(n)) for int64 0 <= n < 2**62, exactly, by 31 restoring steps."""
    res = tl.zeros_like(n)
    for i in tl.static_range(31):
        bit = tl.full((), 1, tl.int64) << (60 - 2 * i)
        trial = res + bit
        take = n >= trial
        n = tl.where(take, n - trial, n)
        res = tl.where(take, (res >> 1) + bit, res >> 1)
    return res


def _row_blocks(cols: int) -> tuple[int, int]:
    """(rows per program, row block) for a row-wise kernel over ``cols`` columns."""
    if not 0 < cols <= MAX_ROW:
        raise ValueError(f"row length {cols} outside 1..{MAX_ROW}")
    block_c = max(16, triton.next_power_of_2(cols))
    return max(1, TILE // block_c), block_c


def _check(name: str, t: torch.Tensor, dtypes: tuple[torch.dtype, ...], ndim: int | None = None):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: dtype {t.dtype}, expected one of {dtypes}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(t.shape)}")


def _same_device(*tensors: torch.Tensor) -> None:
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"tensors on several devices: {sorted(map(str, devices))}")


# ------------------------------------------------------------------ quantize_rows

@triton.jit
def _quantize_rows_kernel(x_ptr, q_ptr, m_ptr, rows, cols, stride_x, stride_q,
                          BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = tl.arange(0, BLOCK_C)
    row_ok = row < rows
    ok = row_ok[:, None] & (col < cols)[None, :]
    x = tl.load(x_ptr + row[:, None] * stride_x + col[None, :], mask=ok, other=0).to(tl.int32)
    m = tl.max(tl.abs(x), axis=1)
    q = _quantize(x, m[:, None])
    tl.store(q_ptr + row[:, None] * stride_q + col[None, :], q, mask=ok)
    tl.store(m_ptr + row, m, mask=row_ok)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """intops.quantize_rows: int16/int32 [..., K] -> (int8 [..., K], int32 row max [...])."""
    _check("x", x, (torch.int16, torch.int32))
    if x.dim() == 0:
        raise ValueError("x: expected at least one dimension")
    cols = x.shape[-1]
    block_r, block_c = _row_blocks(cols)
    x2 = x.reshape(-1, cols).contiguous()
    q = torch.empty(x2.shape, dtype=torch.int8, device=x.device)
    m = torch.empty(x2.shape[0], dtype=torch.int32, device=x.device)
    if x2.shape[0]:
        _quantize_rows_kernel[(triton.cdiv(x2.shape[0], block_r),)](
            x2, q, m, x2.shape[0], cols, x2.stride(0), q.stride(0),
            BLOCK_R=block_r, BLOCK_C=block_c)
    return q.view(x.shape), m.view(x.shape[:-1])


# ------------------------------------------------------------------------- linear

@triton.jit
def _linear_kernel(x_ptr, w_ptr, mult_ptr, bias_ptr, lut_ptr, y_ptr,
                   M, N, K, stride_xm, stride_xk, stride_wn, stride_wk, stride_ym,
                   shift, out_max, lut_last,
                   HAS_GELU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr):
    rm = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < N
    # x = 256 * hi + lo + 128 with int8 planes hi = x >> 8, lo = (x & 255) - 128, so
    # acc = 256 * (hi . w) + (lo . w) + 128 * sum_k w, each dot exact in int32
    acc_hi = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    acc_lo = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    w_sum = tl.zeros((BLOCK_N,), dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        k_ok = kk < K
        a = tl.load(x_ptr + rm[:, None] * stride_xm + kk[None, :] * stride_xk,
                    mask=m_ok[:, None] & k_ok[None, :], other=0)
        b = tl.load(w_ptr + rn[None, :] * stride_wn + kk[:, None] * stride_wk,
                    mask=n_ok[None, :] & k_ok[:, None], other=0)  # masked k: w = 0
        acc_hi = tl.dot((a >> 8).to(tl.int8), b, acc_hi, out_dtype=tl.int32)  # |.| < 2**25
        acc_lo = tl.dot(((a & 255) - 128).to(tl.int8), b, acc_lo, out_dtype=tl.int32)
        w_sum += tl.sum(b.to(tl.int32), axis=0)

    mult = tl.load(mult_ptr + rn, mask=n_ok, other=0).to(tl.int64)
    bias = tl.load(bias_ptr + rn, mask=n_ok, other=0).to(tl.int64)
    acc = acc_hi.to(tl.int64) * 256 + acc_lo.to(tl.int64) + w_sum.to(tl.int64)[None, :] * 128
    y = _round_shift(acc * mult[None, :] + bias[None, :], shift)  # |acc * M + B| < 2**51
    y = tl.minimum(tl.maximum(y, -out_max), out_max)
    ok = m_ok[:, None] & n_ok[None, :]
    if HAS_GELU:  # gelu(y) = max(y, 0) + LUT[min(|y|, T)]
        t = tl.minimum(tl.abs(y), lut_last)
        y = tl.maximum(y, 0) + tl.load(lut_ptr + t, mask=ok, other=0).to(tl.int64)
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], y.to(y_ptr.dtype.element_ty), mask=ok)


def linear(x: torch.Tensor, p: LinearParams) -> torch.Tensor:
    """intops.linear: int16 [M, K] x int8 W [N, K] with the fused requant/clamp/GELU epilogue."""
    _check("x", x, (torch.int16,), 2)
    _check("weight", p.weight, (torch.int8,), 2)
    _check("multiplier", p.multiplier, (torch.int64,), 1)
    _check("bias", p.bias, (torch.int64,), 1)
    rows, k = x.shape
    n = p.weight.shape[0]
    if p.weight.shape[1] != k or k == 0:
        raise ValueError(f"shape mismatch: x {tuple(x.shape)}, weight {tuple(p.weight.shape)}")
    if p.multiplier.shape[0] != n or p.bias.shape[0] != n:
        raise ValueError(f"multiplier/bias must have {n} entries")
    if not 1 <= p.shift <= 62:
        raise ValueError(f"shift {p.shift} outside 1..62")
    lut = p.gelu_lut
    if lut is not None:
        _check("gelu_lut", lut, (torch.int32,), 1)
    _same_device(x, p.weight, p.multiplier, p.bias, *(() if lut is None else (lut,)))
    y = torch.empty(rows, n, dtype=p.out_dtype, device=x.device)
    if rows and n:
        grid = (triton.cdiv(rows, GEMM_BLOCK_M), triton.cdiv(n, GEMM_BLOCK_N))
        _linear_kernel[grid](
            x, p.weight, p.multiplier, p.bias, lut, y, rows, n, k,
            x.stride(0), x.stride(1), p.weight.stride(0), p.weight.stride(1), y.stride(0),
            p.shift, p.out_max, 0 if lut is None else lut.numel() - 1,
            HAS_GELU=lut is not None, BLOCK_M=GEMM_BLOCK_M, BLOCK_N=GEMM_BLOCK_N,
            BLOCK_K=GEMM_BLOCK_K, num_warps=8, num_stages=3)
    return y


# ---------------------------------------------------------------------- attention

@triton.jit
def _key_scores(q8, k_base, mask_row, j0, L, stride_l, cols, col_ok,
                D: tl.constexpr, BLOCK_K: tl.constexpr):
    """t = (q8 . k8) * mk for keys j0..j0+BLOCK_K-1, which of them are real tokens, and j."""
    j = j0 + tl.arange(0, BLOCK_K)
    in_seq = j < L
    key_ok = in_seq & (tl.load(mask_row + j, mask=in_seq, other=0) != 0)
    kt = tl.load(k_base + j[None, :] * stride_l + cols[:, None],  # K^T tile [BLOCK_D, BLOCK_K]
                 mask=col_ok[:, None] & in_seq[None, :], other=0).to(tl.int32)
    mk = tl.max(tl.abs(kt), axis=0)
    k8 = _quantize(kt, mk[None, :])
    t = tl.dot(q8, k8, out_dtype=tl.int32).to(tl.int64) * mk.to(tl.int64)[None, :]
    return t, key_ok, j


@triton.jit
def _exp_terms(t, key_ok, t_max, rate, table_ptr, score_shift, exp_cap):
    """p[i, j] of intops.attention: exp_table[min(round_shift(delta * R, S), cap)],
    0 for masked keys (delta * R < 2**53)."""
    delta = tl.where(key_ok[None, :], t_max[:, None] - t, 0)
    e = tl.minimum(_round_shift(delta * rate[:, None], score_shift), exp_cap)
    return tl.load(table_ptr + e, mask=key_ok[None, :], other=0).to(tl.int64)


@triton.jit
def _attention_kernel(qkv_ptr, mask_ptr, table_ptr, out_ptr, L,
                      stride_qb, stride_ql, stride_mb, stride_ob, stride_ol,
                      score_mult, score_shift, exp_cap, out_mult, out_shift,
                      H: tl.constexpr, D: tl.constexpr,
                      BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    bh = tl.program_id(0).to(tl.int64)
    b = bh // H
    h = bh % H
    qi = tl.program_id(1).to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D
    q_in = qi < L
    q_base = qkv_ptr + b * stride_qb + h * D
    k_base = q_base + H * D
    v_base = k_base + H * D
    mask_row = mask_ptr + b * stride_mb

    q = tl.load(q_base + qi[:, None] * stride_ql + cols[None, :],
                mask=q_in[:, None] & col_ok[None, :], other=0).to(tl.int32)
    mq = tl.max(tl.abs(q), axis=1)
    q8 = _quantize(q, mq[:, None])
    rate = _round_shift(mq.to(tl.int64) * score_mult, RATE_SHIFT)  # per-row R < 2**18

    # pass 1: each query's max score over real keys; V's per-channel max over real tokens
    t_max = tl.full((BLOCK_Q,), NO_SCORE, tl.int64)
    v_max = tl.zeros((BLOCK_D,), tl.int32)
    for j0 in range(0, L, BLOCK_K):
        t, key_ok, j = _key_scores(q8, k_base, mask_row, j0, L, stride_ql, cols, col_ok,
                                   D, BLOCK_K)
        t_max = tl.maximum(t_max, tl.max(tl.where(key_ok[None, :], t, NO_SCORE), axis=1))
        v = tl.load(v_base + j[:, None] * stride_ql + cols[None, :],
                    mask=key_ok[:, None] & col_ok[None, :], other=0).to(tl.int32)
        v_max = tl.maximum(v_max, tl.max(tl.abs(v), axis=0))

    # pass 2: the softmax denominators (>= 2**20: the max term is exactly 2**20)
    total = tl.zeros((BLOCK_Q,), tl.int64)
    for j0 in range(0, L, BLOCK_K):
        t, key_ok, j = _key_scores(q8, k_base, mask_row, j0, L, stride_ql, cols, col_ok,
                                   D, BLOCK_K)
        p = _exp_terms(t, key_ok, t_max, rate, table_ptr, score_shift, exp_cap)
        total += tl.sum(p, axis=1)
    recip = tl.full((), PROB_NUM, tl.int64) // total

    # pass 3: prob x v8, prob split into two int8-range halves so tl.dot stays int8
    ctx_hi = tl.zeros((BLOCK_Q, BLOCK_D), tl.int32)
    ctx_lo = tl.zeros((BLOCK_Q, BLOCK_D), tl.int32)
    for j0 in range(0, L, BLOCK_K):
        t, key_ok, j = _key_scores(q8, k_base, mask_row, j0, L, stride_ql, cols, col_ok,
                                   D, BLOCK_K)
        p = _exp_terms(t, key_ok, t_max, rate, table_ptr, score_shift, exp_cap)
        prob = _round_shift(p * recip[:, None], PROB_SHIFT)  # masked keys: exactly 0
        v = tl.load(v_base + j[:, None] * stride_ql + cols[None, :],
                    mask=key_ok[:, None] & col_ok[None, :], other=0).to(tl.int32)
        v8 = _quantize(v, v_max[None, :])
        ctx_hi = tl.dot((prob >> 7).to(tl.int8), v8, ctx_hi, out_dtype=tl.int32)
        ctx_lo = tl.dot((prob & 127).to(tl.int8), v8, ctx_lo, out_dtype=tl.int32)
    ctx = ctx_hi.to(tl.int64) * 128 + ctx_lo.to(tl.int64)

    out = _round_shift(ctx * (v_max.to(tl.int64) * out_mult)[None, :], out_shift)
    out = tl.minimum(tl.maximum(out, -INT16_MAX), INT16_MAX)
    q_real = q_in & (tl.load(mask_row + qi, mask=q_in, other=0) != 0)
    out = tl.where(q_real[:, None], out, 0)
    tl.store(out_ptr + b * stride_ob + qi[:, None] * stride_ol + h * D + cols[None, :],
             out.to(tl.int16), mask=q_in[:, None] & col_ok[None, :])


def attention(qkv: torch.Tensor, mask: torch.Tensor, p: AttentionParams) -> torch.Tensor:
    """intops.attention: qkv int16-range [B, L, 3*H*D], mask bool [B, L] -> int16 [B, L, H*D].

    One program per (sequence, head, block of queries), three passes over the keys
    (max score, denominator, prob x V) so that no online rescaling touches the integers.
    """
    _check("qkv", qkv, (torch.int16, torch.int32), 3)
    _check("mask", mask, (torch.bool,), 2)
    _check("exp_table", p.exp_table, (torch.int32,), 1)
    batch, length, width = qkv.shape
    h, d = p.heads, p.head_dim
    if width != 3 * h * d or tuple(mask.shape) != (batch, length):
        raise ValueError(f"shape mismatch: qkv {tuple(qkv.shape)}, mask {tuple(mask.shape)}, "
                         f"heads {h} x head_dim {d}")
    if p.exp_cap < 1 or not 1 <= p.score_shift <= 62 or not 1 <= p.out_shift <= 62:
        raise ValueError("attention params: empty exp_table or a shift outside 1..62")
    _same_device(qkv, mask, p.exp_table)
    out = torch.empty(batch, length, h * d, dtype=torch.int16, device=qkv.device)
    if batch == 0 or length == 0:
        return out
    if not bool(mask.any(dim=1).all()):  # the denominator needs a real key
        raise ValueError("mask: every sequence needs at least one real token")
    qkv = qkv.contiguous()
    mask = mask.contiguous()
    block = min(ATTN_BLOCK, max(DOT_MIN, triton.next_power_of_2(length)))
    grid = (batch * h, triton.cdiv(length, block))
    _attention_kernel[grid](
        qkv, mask, p.exp_table, out, length,
        qkv.stride(0), qkv.stride(1), mask.stride(0), out.stride(0), out.stride(1),
        p.score_mult, p.score_shift, p.exp_cap, p.out_mult, p.out_shift,
        H=h, D=d, BLOCK_Q=block, BLOCK_K=block,
        BLOCK_D=max(DOT_MIN, triton.next_power_of_2(d)), num_warps=8 if block == ATTN_BLOCK else 4)
    return out


# ------------------------------------------------------------------ add_layernorm

@triton.jit
def _add_layernorm_kernel(x_ptr, r_ptr, gamma_ptr, beta_ptr, y_ptr, rows, N,
                          stride_x, stride_r, stride_y, mean_recip, out_max,
                          BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = tl.arange(0, BLOCK_N)
    col_ok = col < N
    ok = (row < rows)[:, None] & col_ok[None, :]
    s = (tl.load(x_ptr + row[:, None] * stride_x + col[None, :], mask=ok, other=0).to(tl.int64)
         + tl.load(r_ptr + row[:, None] * stride_r + col[None, :], mask=ok, other=0).to(tl.int64))
    mean = _round_shift(tl.sum(s, axis=1) * mean_recip, LN_MEAN_SHIFT)
    d = tl.where(ok, s - mean[:, None], 0)
    std = _isqrt(tl.sum(d * d, axis=1))
    r = tl.full((), LN_RECIP_ONE, tl.int64) // tl.maximum(std, 1)
    z = _round_shift(d * r[:, None], LN_Z_SHIFT)
    gamma = tl.load(gamma_ptr + col, mask=col_ok, other=0).to(tl.int64)
    beta = tl.load(beta_ptr + col, mask=col_ok, other=0).to(tl.int64)
    y = _round_shift(z * gamma[None, :] + beta[None, :], LN_Z_BITS)
    y = tl.minimum(tl.maximum(y, -out_max), out_max)
    tl.store(y_ptr + row[:, None] * stride_y + col[None, :], y.to(tl.int16), mask=ok)


def add_layernorm(x: torch.Tensor, residual: torch.Tensor, p: LayerNormParams,
                  out_max: int = intops.INT16_MAX) -> torch.Tensor:
    """intops.add_layernorm: LayerNorm(x + residual) over the last dim -> int16.

    ``x`` and ``residual`` broadcast against each other, as in the reference.
    """
    _check("x", x, (torch.int16, torch.int32))
    _check("residual", residual, (torch.int16, torch.int32))
    _check("gamma", p.gamma, (torch.int64,), 1)
    _check("beta", p.beta, (torch.int64,), 1)
    if not 0 <= out_max <= intops.INT16_MAX:
        raise ValueError(f"out_max {out_max} outside 0..{intops.INT16_MAX}")
    _same_device(x, residual, p.gamma, p.beta)
    shape = torch.broadcast_shapes(x.shape, residual.shape)
    if not shape:
        raise ValueError("x: expected at least one dimension")
    n = shape[-1]
    if p.gamma.shape[0] != n or p.beta.shape[0] != n:
        raise ValueError(f"gamma/beta must have {n} entries")
    block_r, block_n = _row_blocks(n)
    x2 = x.expand(shape).reshape(-1, n).contiguous()
    r2 = residual.expand(shape).reshape(-1, n).contiguous()
    y = torch.empty(x2.shape, dtype=torch.int16, device=x.device)
    if x2.shape[0]:
        _add_layernorm_kernel[(triton.cdiv(x2.shape[0], block_r),)](
            x2, r2, p.gamma, p.beta, y, x2.shape[0], n, x2.stride(0), r2.stride(0), y.stride(0),
            p.mean_recip, out_max, BLOCK_R=block_r, BLOCK_N=block_n)
    return y.view(shape)


# ------------------------------------------------------------ mean_pool_normalize

@triton.jit
def _mean_pool_kernel(h_ptr, mask_ptr, q_ptr, L, N, stride_hb, stride_hl, stride_mb, stride_qb,
                      BLOCK_L: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    col = tl.arange(0, BLOCK_N)
    col_ok = col < N
    s = tl.zeros((BLOCK_N,), tl.int32)  # |s| <= 512 * 32767 < 2**24
    for l0 in range(0, L, BLOCK_L):
        pos = l0 + tl.arange(0, BLOCK_L)
        in_seq = pos < L
        keep = in_seq & (tl.load(mask_ptr + b * stride_mb + pos, mask=in_seq, other=0) != 0)
        x = tl.load(h_ptr + b * stride_hb + pos[:, None] * stride_hl + col[None, :],
                    mask=keep[:, None] & col_ok[None, :], other=0).to(tl.int32)
        s += tl.sum(x, axis=0)
    m = tl.max(tl.abs(s), axis=0)
    tl.store(q_ptr + b * stride_qb + col, _quantize(s, m), mask=col_ok)


def mean_pool_normalize(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """intops.mean_pool_normalize: int16-range [B, L, N], bool [B, L] -> int8 [B, N]."""
    _check("h", h, (torch.int16, torch.int32), 3)
    _check("mask", mask, (torch.bool,), 2)
    batch, length, n = h.shape
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"shape mismatch: h {tuple(h.shape)}, mask {tuple(mask.shape)}")
    _same_device(h, mask)
    block_l, block_n = _row_blocks(n)
    h = h.contiguous()
    mask = mask.contiguous()
    q = torch.empty(batch, n, dtype=torch.int8, device=h.device)
    if batch:
        _mean_pool_kernel[(batch,)](
            h, mask, q, length, n, h.stride(0), h.stride(1), mask.stride(0), q.stride(0),
            BLOCK_L=block_l, BLOCK_N=block_n)
    return q


def triton_device(interpreted: bool = INTERPRETED) -> torch.device:
    """Where the Triton backends (this one and the LLM's) run: the CPU when the calling
    module's kernels are interpreted (each module decided at its own import), else the
    GPU, with TF32 turned off."""
    if interpreted:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("needs a CUDA GPU (or TRITON_INTERPRET=1 set before import)")
    # The kernels multiply integers only; TF32 off anyway, so that no float op a
    # provider's process runs beside them rounds to 10 bits (torch 2.13 turns
    # cuDNN's TF32 on by default).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda")


class TritonOps:
    """The ``intops`` ops as Triton kernels: CUDA tensors, or CPU ones when interpreted."""

    name = "triton"
    quantize_rows = staticmethod(quantize_rows)
    linear = staticmethod(linear)
    attention = staticmethod(attention)
    add_layernorm = staticmethod(add_layernorm)
    mean_pool_normalize = staticmethod(mean_pool_normalize)

    def __init__(self):
        self.device = triton_device()

    @property
    def route(self) -> str:
        where = "interpreter" if INTERPRETED else torch.cuda.get_device_name(self.device)
        return f"triton {triton.__version__} ({where})"
