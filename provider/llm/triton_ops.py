"""Triton kernels of the integer decoder: the ops of ``intops``, bit for bit.

Every kernel computes the integer formulas of its ``intops`` docstring; exactness comes
from the arithmetic, never from luck:
- ``linear``: acc = sum_b D[j, b] * (sum_{k in b} x q) + M[j, b] * (sum_{k in b} x), as
  the CPU's GEMV: block sums in int32 (|.| <= 32 * 32768 * 127 < 2**27), the rest in
  int64; every term and partial sum is an integer, exact in any tile order, the largest
  being acc itself (< 2**53, ``intops.linear``). Decoding (few rows) multiplies on CUDA
  cores (a GEMV is memory-bound); prefill (the GEMM) on int8 tensor cores: x split into
  int8 planes, x = 256 * hi + lo + 128 with lo = (x & 255) - 128, two ``tl.dot``s per
  block into int32 (|.| < 2**27), the planes' +128 folded into one per-column constant.
- ``attention``: q . k and w . v as float64 ``tl.dot``s, exact for the reason the CPU
  route gives (``intops.attention``): every product and partial sum, in any order, with
  or without FMA, is an integer below 2**53 (|q . k| partial sums <= D * 2**30 = 2**36;
  w >= 0 and sum w <= 2**24 + MAX_CONTEXT, so partial sums of w . v stay below 2**40).
  Everything else (scores, the exp table, the softmax division) is int64.
- the row-wise ops (embedding, RMSNorm, RoPE, V heads, SwiGLU, the attention output, the
  residual add and the logits, these two in the GEMV/GEMM's epilogue) are their int64
  formulas; divisions are ``non-negative // positive`` only (Triton's truncating ``//``
  is then floor); every shift amount is clamped to 0..62 before it is used (a shift by
  64 or more is undefined in LLVM and differs between numpy and the GPU), and the
  conventions of ``shift_round`` beyond that are selects.
The weights on the device: Q4_1 values packed two per byte (byte i of a 64-column chunk:
q[i] | q[i + 32] << 4), block scales and minimums as int32 (|M| <= w_max(K) < 2**29 and
|D| <= 2 w_max / 15: ``quantize.qlinear``'s bound), so decoding reads 0.75 bytes per
weight. q, k and v are one matrix, as are gate and up: each output column's integer is
the same whichever matrix it is computed in.

With ``TRITON_INTERPRET=1`` set before this module is imported, the kernels run on CPU
tensors (tests); otherwise they need CUDA tensors.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl

from provider.engine.triton_ops import _check, _same_device, triton_device

from . import intops
from .intops import AttentionParams, NormParams, QLinear
from .quantize import DecoderParams, LayerParams

INTERPRETED = bool(triton.knobs.runtime.interpret)

ACT_MAX = tl.constexpr(intops.ACT_MAX)
BIG = tl.constexpr(1 << 62)
RES_MAX = tl.constexpr(intops.RES_MAX)
NORM_IN_BITS = tl.constexpr(intops.NORM_IN_BITS)
NORM_ONE = tl.constexpr(1 << intops.NORM_RECIP_SHIFT)
NORM_N_SHIFT = tl.constexpr(intops.NORM_RECIP_SHIFT - intops.NORM_N_BITS)
NORM_N_BITS = tl.constexpr(intops.NORM_N_BITS)
EPS_SHIFT = tl.constexpr(intops.EPS_BITS - 2 * intops.F_RES)
EPS_MAX = tl.constexpr(1 << 60)
ROPE_IN_BITS = tl.constexpr(intops.ROPE_IN_BITS)
ROPE_BITS = tl.constexpr(intops.ROPE_BITS)
SCORE_BITS = tl.constexpr(intops.SCORE_BITS)
SCORE_MAX = tl.constexpr(intops.SCORE_MAX)
DELTA_MAX = tl.constexpr(intops.DELTA_MAX)
RATE_SHIFT = tl.constexpr(intops.RATE_SHIFT)
RATE_HALF = tl.constexpr(1 << (intops.RATE_SHIFT - 1))
PROB_BITS = tl.constexpr(intops.PROB_BITS)
PROB_SHIFT = tl.constexpr(intops.PROB_SHIFT)
PROB_HALF = tl.constexpr(1 << (intops.PROB_SHIFT - 1))
PROB_NUM = tl.constexpr(1 << (intops.PROB_BITS + intops.PROB_SHIFT))
FFN_IN_BITS = tl.constexpr(intops.FFN_IN_BITS)
SILU_FRAC_BITS = tl.constexpr(intops.SILU_FRAC_BITS)
SIG_BITS = tl.constexpr(intops.SIG_BITS)
SIG_ONE = tl.constexpr(1 << intops.SIG_BITS)
NO_EXP = tl.constexpr(-(1 << 62))  # below every exponent: the max over no value

# Tiles, as compiled for the GPU (tests/llm/test_triton_compile.py: no spills on sm80
# and sm90). Row-wise kernels: a [rows, columns] int64 tile of at most ROW_TILE elements.
ROW_TILE = 2048
# Linear: up to GEMV_ROWS rows (decoding) a GEMV kernel without dots, one program per row
# and column tile (memory-bound: it reads each weight once per step); above, the GEMM
# kernel on int8 tensor cores (int8 tl.dot on NVIDIA needs every block dim >= 16).
GEMV_ROWS = 8
GEMV_TILE = (8192, 64)  # (weight bytes per tile: BLOCK_N * BLOCK_T, the largest BLOCK_T)
GEMM_TILE = (64, 32)    # (BLOCK_M, BLOCK_N)
GEMM_WARPS = 4
# Attention: queries per program x 4 (the 3 heads of a kv group, padded), keys per tile.
ATTN_REPS_PAD = 4
ATTN_QUERIES = {"decode": 4, "prefill": 16}
ATTN_KEYS = 32
ATTN_WARPS = 8
GPU_TILES = {"ROW_TILE": ROW_TILE, "GEMV_TILE": GEMV_TILE, "GEMM_TILE": GEMM_TILE,
             "ATTN_KEYS": ATTN_KEYS}

# The interpreter pays per program instance and per op, not per element (up to ~2**20
# elements), so there the tiles are wide: the output head takes 6 GEMV programs, the
# GEMM's row tile is the rows there are (BLOCK_M None). The integers are the same in any
# tile; tests/llm/test_triton_ops.py also runs GPU_TILES in the interpreter.
if INTERPRETED:
    ROW_TILE = 1 << 16
    GEMV_TILE = (1 << 19, 1024)
    GEMM_TILE = (None, 1024)
    ATTN_KEYS = 256


# --------------------------------------------------------------------------- helpers

@triton.jit
def _bitlen(m):
    """bitlen of int64 m >= 0: a binary search over 32, 16, ..., 1-bit shifts."""
    n = tl.zeros_like(m)
    for i in tl.static_range(6):  # shifts of 2 ** (5 - i) bits
        top = m >> 2 ** (5 - i)
        big = top > 0
        m = tl.where(big, top, m)
        n = tl.where(big, n + 2 ** (5 - i), n)
    return n + (m > 0).to(tl.int64)


@triton.jit
def _isqrt(n):
    """floor(sqrt(n)) for int64 0 <= n < 2**62, exactly (as the CPU's ``_isqrt``): the
    correctly rounded float64 root of the rounded n is within 2**-20 of sqrt(n) (< 2**31),
    so its floor is off by at most one, and one correction each way fixes it."""
    r = tl.sqrt(n.to(tl.float64)).to(tl.int64)  # sqrt.rn.f64: test_triton_compile.py
    r = tl.where(r * r > n, r - 1, r)
    return tl.where((r + 1) * (r + 1) <= n, r + 1, r)


@triton.jit
def _shift_round(a, s, lim):
    """intops.shift_round for int64 ``a`` (|a| < 2**62), int64 shifts ``s`` (any value,
    broadcastable to a) and a positive ``lim``: s > 0 rounds half up (s >= 63: 0),
    s <= 0 shifts left saturating at +-lim; then clamps to [-lim, lim]."""
    lim = tl.zeros_like(a) + lim
    right_s = tl.minimum(tl.maximum(s, 1), 62)
    right = (a + ((tl.full((), 1, tl.int64) << right_s) >> 1)) >> right_s
    right = tl.where(s >= 63, 0, right)
    left_s = tl.minimum(tl.maximum(-s, 0), 62)
    cap = tl.where(s <= -62, 0, lim >> left_s)
    left = tl.where(a > cap, lim, tl.where(a < -cap, -lim, a << left_s))
    out = tl.where(s > 0, right, left)
    return tl.minimum(tl.maximum(out, -lim), lim)


@triton.jit
def _block16(v, e):
    """intops' block16 of each row of int64 ``v`` [R, C] (masked entries 0) with row
    exponents ``e`` [R]: (x within +-ACT_MAX as int64, e + s)."""
    m = tl.max(tl.abs(v), axis=1)
    s = tl.where(m > 0, _bitlen(m) - 15, 0)
    return _shift_round(v, s[:, None], ACT_MAX), e + s


def _row_tile(cols: int) -> tuple[int, int]:
    """(rows per program, column block) of a row-wise kernel over ``cols`` columns."""
    block_c = max(16, triton.next_power_of_2(cols))
    return max(1, ROW_TILE // block_c), block_c


# -------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class DeviceLinear:
    """A quantised matrix as the linear kernel reads it (see the module doc).

    q: uint8 [N, K / 2] (Q4_1, two values per byte) or int8 [N, K] (Q8_0);
    d, m: int32 [N, K / 32] (m None for Q8_0); bias: int64 [N], the planes' constant
    128 * sum_b D[j, b] * sum_{k in b} q[j, k], which the kernel's block dots leave out."""

    q: torch.Tensor
    d: torch.Tensor
    m: torch.Tensor | None
    bias: torch.Tensor
    n: int
    k: int

    @property
    def packed(self) -> bool:
        return self.m is not None


def device_linear(mats: tuple[QLinear, ...] | QLinear, device: torch.device) -> DeviceLinear:
    """One device matrix of ``mats`` stacked along their outputs (same K, same format)."""
    mats = mats if isinstance(mats, tuple) else (mats,)
    q = np.concatenate([w.q for w in mats])
    d = np.concatenate([w.d for w in mats])
    q4 = mats[0].m is not None
    if any((w.m is not None) != q4 or w.k != mats[0].k for w in mats):
        raise ValueError("stacked matrices differ in format or reduction length")
    m = np.concatenate([w.m for w in mats]) if q4 else None
    n, k = q.shape
    if k % (2 * intops.BLOCK):
        raise ValueError(f"reduction length {k} is not a multiple of {2 * intops.BLOCK}")
    for name, v in (("scales", d), ("minimums", m)):
        if v is not None and np.abs(v).max(initial=0) >= 1 << 31:
            raise ValueError(f"block {name} beyond int32")
    sums = q.astype(np.int64).reshape(n, -1, intops.BLOCK).sum(axis=2)
    bias = 128 * (d * sums).sum(axis=1)
    if q4:
        c = q.reshape(n, k // 64, 2, 32).astype(np.uint8)
        q = c[:, :, 0] | (c[:, :, 1] << 4)
        q = q.reshape(n, k // 2)
    else:
        q = q.astype(np.int8)

    def put(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device)

    return DeviceLinear(put(q, q.dtype), put(d, np.int32), None if m is None else put(m, np.int32),
                        put(bias, np.int64), n, k)


@dataclass(frozen=True)
class DeviceNorm:
    gamma: torch.Tensor  # int64 [K]
    frac: int
    eps: int


@dataclass(frozen=True)
class DeviceLayer:
    attn_norm: DeviceNorm
    qkv: DeviceLinear
    qkv_shifts: tuple[int, int, int]
    o: DeviceLinear
    o_shift: int
    ffn_norm: DeviceNorm
    gate_up: DeviceLinear
    gate_up_shifts: tuple[int, int]
    down: DeviceLinear
    down_shift: int


@dataclass(frozen=True)
class DeviceAttention:
    heads: int
    kv_heads: int
    head_dim: int
    rate: int
    exp_table: torch.Tensor  # int32
    cos: torch.Tensor        # int32 [MAX_CONTEXT, D / 2] (|.| <= 2**30)
    sin: torch.Tensor


@dataclass(frozen=True)
class DeviceParams:
    """``DecoderParams`` on the device, in the kernels' layouts."""

    embed: DeviceLinear      # Q8_0, also the output head
    embed_shift: int
    layers: tuple[DeviceLayer, ...]
    out_norm: DeviceNorm
    attention: DeviceAttention
    sig_table: torch.Tensor  # int32


def device_norm(p: NormParams, device) -> DeviceNorm:
    return DeviceNorm(torch.from_numpy(p.gamma.astype(np.int64)).to(device), p.frac, p.eps)


def device_attention(p: AttentionParams, device) -> DeviceAttention:
    def put(a):
        if np.abs(a).max() >= 1 << 31:
            raise ValueError("table beyond int32")
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32)).to(device)

    return DeviceAttention(p.heads, p.kv_heads, p.head_dim, p.rate, put(p.exp_table),
                           put(p.cos), put(p.sin))


def device_layer(layer: LayerParams, device) -> DeviceLayer:
    return DeviceLayer(
        device_norm(layer.attn_norm, device), device_linear((layer.q, layer.k, layer.v), device),
        (layer.q.shift, layer.k.shift, layer.v.shift), device_linear(layer.o, device),
        layer.o.shift, device_norm(layer.ffn_norm, device),
        device_linear((layer.gate, layer.up), device), (layer.gate.shift, layer.up.shift),
        device_linear(layer.down, device), layer.down.shift)


def device_params(params: DecoderParams, device) -> DeviceParams:
    return DeviceParams(
        device_linear(params.embed, device), params.embed.shift,
        tuple(device_layer(layer, device) for layer in params.layers),
        device_norm(params.out_norm, device), device_attention(params.attention, device),
        torch.from_numpy(params.sig_table.astype(np.int32)).to(device))


# --------------------------------------------------------------------------- embed

@triton.jit
def _embed_kernel(ids_ptr, q_ptr, d_ptr, h_ptr, rows, K, stride_q, stride_d, stride_h, shift,
                  BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = tl.arange(0, BLOCK_K)
    ok = (row < rows)[:, None] & (col < K)[None, :]
    ids = tl.load(ids_ptr + row, mask=row < rows, other=0)
    q = tl.load(q_ptr + ids[:, None] * stride_q + col[None, :], mask=ok, other=0).to(tl.int64)
    d = tl.load(d_ptr + ids[:, None] * stride_d + col[None, :] // 32, mask=ok, other=0)
    h = _shift_round(d.to(tl.int64) * q, shift, RES_MAX)
    tl.store(h_ptr + row[:, None] * stride_h + col[None, :], h, mask=ok)


def embed(ids: torch.Tensor, emb: DeviceLinear, shift: int) -> torch.Tensor:
    """intops.embed: int64 ids [T] -> the residual rows int64 [T, K]."""
    _check("ids", ids, (torch.int64,), 1)
    _same_device(ids, emb.q)
    h = torch.empty(ids.shape[0], emb.k, dtype=torch.int64, device=ids.device)
    block_r, block_k = _row_tile(emb.k)
    if ids.shape[0]:
        _embed_kernel[(triton.cdiv(ids.shape[0], block_r),)](
            ids, emb.q, emb.d, h, ids.shape[0], emb.k, emb.q.stride(0), emb.d.stride(0),
            h.stride(0), shift - intops.F_RES, BLOCK_R=block_r, BLOCK_K=block_k)
    return h


# ------------------------------------------------------------------------- rmsnorm

@triton.jit
def _rmsnorm_kernel(h_ptr, gamma_ptr, x_ptr, e_ptr, rows, K, stride_h, stride_x, frac, eps,
                    BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = tl.arange(0, BLOCK_K)
    row_ok = row < rows
    ok = row_ok[:, None] & (col < K)[None, :]
    h = tl.load(h_ptr + row[:, None] * stride_h + col[None, :], mask=ok, other=0)
    m = tl.max(tl.abs(h), axis=1)
    t = _bitlen(m) - NORM_IN_BITS
    u = _shift_round(h, t[:, None], BIG)                       # |u| <= 2**24
    ss = tl.sum(u * u, axis=1)                                 # < 2**59
    eps_u = _shift_round(tl.zeros_like(ss) + eps, 2 * t + EPS_SHIFT, EPS_MAX)
    recip = tl.full((), NORM_ONE, tl.int64) // _isqrt(ss + eps_u)  # root >= 1: eps_u > 0 or ss > 0
    gamma = tl.load(gamma_ptr + col, mask=col < K, other=0)
    z = _shift_round(u * recip[:, None], NORM_N_SHIFT, BIG) * gamma[None, :]
    x, e = _block16(z, tl.zeros_like(m) - frac - NORM_N_BITS)
    zero = m == 0
    tl.store(x_ptr + row[:, None] * stride_x + col[None, :],
             tl.where(zero[:, None], 0, x).to(tl.int16), mask=ok)
    tl.store(e_ptr + row, tl.where(zero, 0, e), mask=row_ok)


def rmsnorm(h: torch.Tensor, p: DeviceNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """intops.rmsnorm: int64 [R, K] residual rows -> (int16 [R, K], int64 exponents [R])."""
    _check("h", h, (torch.int64,), 2)
    rows, k = h.shape
    if p.gamma.shape != (k,):
        raise ValueError(f"gamma has {tuple(p.gamma.shape)} entries for rows of {k}")
    _same_device(h, p.gamma)
    h = h if h.stride(1) == 1 else h.contiguous()
    x = torch.empty(rows, k, dtype=torch.int16, device=h.device)
    e = torch.empty(rows, dtype=torch.int64, device=h.device)
    block_r, block_k = _row_tile(k)
    if rows:
        _rmsnorm_kernel[(triton.cdiv(rows, block_r),)](
            h, p.gamma, x, e, rows, k, h.stride(0), x.stride(0), p.frac, p.eps,
            BLOCK_R=block_r, BLOCK_K=block_k)
    return x, e


# -------------------------------------------------------------------------- linear

@triton.jit
def _epilogue(acc, rm, rn, m_ok, n_ok, e_ptr, y_ptr, stride_y, base, lim,
              EPILOGUE: tl.constexpr):
    """EPILOGUE 0: y = acc (int64); 1: y += shift_round(acc, base - e, lim), clamped to
    +-lim (the residual add); 2: y = shift_round(acc, base - e, lim) (logits)."""
    ok = m_ok[:, None] & n_ok[None, :]
    y_at = y_ptr + rm[:, None] * stride_y + rn[None, :]
    if EPILOGUE == 0:
        tl.store(y_at, acc, mask=ok)
    else:
        e = tl.load(e_ptr + rm, mask=m_ok, other=0)
        y = _shift_round(acc, base - e[:, None], lim)
        if EPILOGUE == 1:
            y = tl.load(y_at, mask=ok, other=0) + y
            y = tl.minimum(tl.maximum(y, -lim), lim)
        tl.store(y_at, y, mask=ok)


@triton.jit
def _gemv_kernel(x_ptr, q_ptr, d_ptr, m_ptr, e_ptr, y_ptr, M, N, K,
                 stride_x, stride_q, stride_d, stride_y, base, lim,
                 HALVES: tl.constexpr, EPILOGUE: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr):
    """acc = x W^T of row ``program_id(1)`` over BLOCK_N output columns, BLOCK_T weight
    bytes of each column at a time, then ``_epilogue``. Q4_1 (HALVES 2): byte t holds
    q[k] (low nibble) and q[k + 32] (high), k = t + 32 * (t // 32), so the bytes of chunk
    c = t // 32 are blocks 2c and 2c + 1; Q8_0 (HALVES 1): byte t is q[t], block t // 32.
    Per block, sum x q in int32 (|.| <= 32 * 32768 * 127 < 2**27), then D and M in int64.
    For few rows (decoding): each row re-reads the weights, from L2 after the first."""
    NB: tl.constexpr = BLOCK_T // 32  # chunks per tile
    row = tl.program_id(1).to(tl.int64)
    rn = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = rn < N
    x_row = x_ptr + row * stride_x
    t = tl.arange(0, BLOCK_T)
    tot = tl.zeros((BLOCK_N,), dtype=tl.int64)
    for t0 in range(0, K // HALVES, BLOCK_T):
        tt = t0 + t
        t_ok = tt < K // HALVES
        p = tl.load(q_ptr + rn[:, None] * stride_q + tt[None, :],
                    mask=n_ok[:, None] & t_ok[None, :], other=0).to(tl.int32)
        chunk = t0 // 32 + tl.arange(0, NB)
        ok = n_ok[:, None] & (chunk < K // (32 * HALVES))[None, :]
        for half in tl.static_range(HALVES):
            if HALVES == 2:
                q = (p >> (4 * half)) & 15
                k = tt + (tt // 32) * 32 + 32 * half
            else:
                q = p
                k = tt
            x = tl.load(x_row + k, mask=t_ok, other=0).to(tl.int32)
            s = tl.sum(tl.reshape(x[None, :] * q, (BLOCK_N, NB, 32)), axis=2)
            at = rn[:, None] * stride_d + (HALVES * chunk + half)[None, :]
            d = tl.load(d_ptr + at, mask=ok, other=0).to(tl.int64)
            tot += tl.sum(s.to(tl.int64) * d, axis=1)
            if HALVES == 2:
                m = tl.load(m_ptr + at, mask=ok, other=0).to(tl.int64)
                xs = tl.sum(tl.reshape(x, (NB, 32)), axis=1).to(tl.int64)  # |.| <= 2**20
                tot += tl.sum(xs[None, :] * m, axis=1)
    rm = row + tl.arange(0, 1)
    _epilogue(tot[None, :], rm, rn, rm < M, n_ok, e_ptr, y_ptr, stride_y, base, lim, EPILOGUE)


@triton.jit
def _gemm_kernel(x_ptr, q_ptr, d_ptr, m_ptr, bias_ptr, e_ptr, y_ptr, M, N, K,
                 stride_x, stride_q, stride_d, stride_y, base, lim,
                 HALVES: tl.constexpr, EPILOGUE: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """acc = x W^T on a [BLOCK_M, BLOCK_N] tile, 32 weight bytes of each column (the
    GEMV's layout: HALVES blocks) at a time, then ``_epilogue``. Each block on int8 tensor
    cores: x int32 [BLOCK_M, 32] (|x| <= 32768) as 256 * hi + lo + 128 with int8 planes
    hi = x >> 8 and lo = (x & 255) - 128, so the two dots give x . q - 128 * sum q in
    int32 (|.| <= 256 * 32 * 128 * 127 < 2**27), the bias adds 128 * sum_b D sum q back
    once; D and M in int64."""
    rm = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, 32)
    m_ok = rm < M
    n_ok = rn < N
    x_rows = x_ptr + rm[:, None] * stride_x + rk[None, :]
    q_cols = q_ptr + rn[None, :] * stride_q + rk[:, None]  # [32, BLOCK_N] bytes of W^T
    tot = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int64)
    for t0 in range(0, K // HALVES, 32):
        p = tl.load(q_cols + t0, mask=n_ok[None, :], other=0)
        for half in tl.static_range(HALVES):
            if HALVES == 2:
                q = ((p >> (4 * half)) & 15).to(tl.int8)
            else:
                q = p
            k0 = t0 * HALVES + 32 * half  # the block's first column
            x = tl.load(x_rows + k0, mask=m_ok[:, None], other=0).to(tl.int32)
            hi = (x >> 8).to(tl.int8)
            lo = ((x & 255) - 128).to(tl.int8)
            s = tl.dot(lo, q, tl.dot(hi, q, out_dtype=tl.int32) * 256, out_dtype=tl.int32)
            at = rn * stride_d + k0 // 32
            d = tl.load(d_ptr + at, mask=n_ok, other=0).to(tl.int64)
            tot += s.to(tl.int64) * d[None, :]
            if HALVES == 2:
                m = tl.load(m_ptr + at, mask=n_ok, other=0).to(tl.int64)
                tot += tl.sum(x, axis=1).to(tl.int64)[:, None] * m[None, :]
    tot += tl.load(bias_ptr + rn, mask=n_ok, other=0)[None, :]
    _epilogue(tot, rm, rn, m_ok, n_ok, e_ptr, y_ptr, stride_y, base, lim, EPILOGUE)


def _gemv_tile(w: DeviceLinear) -> tuple[int, int]:
    """(BLOCK_N, BLOCK_T) of the GEMV: GEMV_TILE[0] weights' bytes per tile, each row's
    bytes in tiles of the largest power of two up to GEMV_TILE[1] dividing them. The
    interpreter (per op, not per element, below ~2**21 elements) takes a whole row, its
    tail masked, wherever that stays below the limit."""
    row = w.q.shape[1]
    block_t = min(GEMV_TILE[1], row & -row)
    if INTERPRETED and w.n * triton.next_power_of_2(row) <= 1 << 21:
        block_t = triton.next_power_of_2(row)
    return min(max(16, GEMV_TILE[0] // block_t), triton.next_power_of_2(w.n)), block_t


def _linear(x: torch.Tensor, w: DeviceLinear, y: torch.Tensor, e: torch.Tensor | None,
            epilogue: int, base: int = 0, lim: int = 1) -> None:
    _check("x", x, (torch.int16,), 2)
    rows, k = x.shape
    if k != w.k:
        raise ValueError(f"shape mismatch: x {tuple(x.shape)}, weights [{w.n}, {w.k}]")
    if tuple(y.shape) != (rows, w.n) or y.dtype != torch.int64 or y.stride(1) != 1:
        raise ValueError(f"output: int64 [{rows}, {w.n}] with unit column stride expected")
    if e is not None:
        _check("e", e, (torch.int64,), 1)
        if e.shape[0] != rows:
            raise ValueError(f"{e.shape[0]} exponents for {rows} rows")
    _same_device(x, w.q, y, *(() if e is None else (e,)))
    x = x if x.stride(1) == 1 else x.contiguous()
    if not rows:
        return
    args = (x.stride(0), w.q.stride(0), w.d.stride(0), y.stride(0), base, lim)
    m = w.d if w.m is None else w.m
    e = y if e is None else e
    if rows <= GEMV_ROWS:
        block_n, block_t = _gemv_tile(w)
        _gemv_kernel[(triton.cdiv(w.n, block_n), rows)](
            x, w.q, w.d, m, e, y, rows, w.n, k, *args, HALVES=2 if w.packed else 1,
            EPILOGUE=epilogue, BLOCK_N=block_n, BLOCK_T=block_t, num_warps=4)
        return
    block_m, block_n = GEMM_TILE
    block_m = block_m or min(64, triton.next_power_of_2(rows))
    grid = (triton.cdiv(rows, block_m), triton.cdiv(w.n, block_n))
    _gemm_kernel[grid](
        x, w.q, w.d, m, w.bias, e, y, rows, w.n, k, *args, HALVES=2 if w.packed else 1,
        EPILOGUE=epilogue,
        BLOCK_M=block_m, BLOCK_N=block_n, num_warps=GEMM_WARPS)


def linear(x: torch.Tensor, w: DeviceLinear) -> torch.Tensor:
    """intops.linear: int16 [R, K] -> the exact accumulators int64 [R, N]."""
    y = torch.empty(x.shape[0], w.n, dtype=torch.int64, device=x.device)
    _linear(x, w, y, None, 0)
    return y


def linear_residual(h: torch.Tensor, x: torch.Tensor, e: torch.Tensor, w: DeviceLinear,
                    w_shift: int) -> None:
    """intops.residual_add(h, intops.linear(x, w), e, w_shift), in place, in one kernel."""
    _check("h", h, (torch.int64,), 2)
    _linear(x, w, h, e, 1, w_shift - intops.F_RES, intops.RES_MAX)


def linear_logits(x: torch.Tensor, e: torch.Tensor, w: DeviceLinear, w_shift: int) -> torch.Tensor:
    """intops.logits(intops.linear(x, w), e, w_shift) in one kernel: int64 [R, N]."""
    y = torch.empty(x.shape[0], w.n, dtype=torch.int64, device=x.device)
    _linear(x, w, y, e, 2, w_shift - intops.LOGIT_BITS, intops.LOGIT_MAX)
    return y


# ---------------------------------------------------------------------- qkv heads

@triton.jit
def _heads_kernel(acc_ptr, e_ptr, pos_ptr, cos_ptr, sin_ptr, x_ptr, xe_ptr, n, stride_cos,
                  stride_xe, q_shift, k_shift, v_shift, HQ: tl.constexpr, HK: tl.constexpr,
                  D: tl.constexpr, BLOCK_R: tl.constexpr):
    """Each row is one (token, head slot) of the [tokens * slots, D] heads: RoPE for the
    HQ query and HK key slots, plain block16 for the value slots after them. A token's
    slots are consecutive, as are its accumulators; even and odd columns are separate
    [BLOCK_R, D / 2] tiles (RoPE rotates adjacent pairs). Exponents: row ``stride_xe``."""
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    half = tl.arange(0, D // 2)
    row_ok = row < n
    ok = row_ok[:, None]
    slot = row % (HQ + 2 * HK)
    token = row // (HQ + 2 * HK)
    rope = slot < HQ + HK
    w_shift = tl.where(slot < HQ, q_shift, tl.where(rope, k_shift, v_shift))
    at = acc_ptr + row[:, None] * D + 2 * half[None, :]
    a = tl.load(at, mask=ok, other=0)
    b = tl.load(at + 1, mask=ok, other=0)
    m = tl.maximum(tl.max(tl.abs(a), axis=1), tl.max(tl.abs(b), axis=1))
    t = tl.where(rope, _bitlen(m) - ROPE_IN_BITS, 0)
    a = _shift_round(a, t[:, None], BIG)  # q, k: |.| <= 2**30; v: unchanged
    b = _shift_round(b, t[:, None], BIG)
    trig = tl.load(pos_ptr + token, mask=row_ok, other=0)[:, None] * stride_cos + half[None, :]
    cos = tl.load(cos_ptr + trig, mask=ok, other=0).to(tl.int64)
    sin = tl.load(sin_ptr + trig, mask=ok, other=0).to(tl.int64)
    turn = rope[:, None]
    a, b = (tl.where(turn, a * cos - b * sin, a),  # |.| <= 2**61
            tl.where(turn, a * sin + b * cos, b))
    e = tl.load(e_ptr + token, mask=row_ok, other=0) - w_shift + tl.where(rope, t - ROPE_BITS, 0)
    top = tl.maximum(tl.max(tl.abs(a), axis=1), tl.max(tl.abs(b), axis=1))  # block16 of both
    s = tl.where(top > 0, _bitlen(top) - 15, 0)
    out = x_ptr + row[:, None] * D + 2 * half[None, :]
    tl.store(out, _shift_round(a, s[:, None], ACT_MAX).to(tl.int16), mask=ok)
    tl.store(out + 1, _shift_round(b, s[:, None], ACT_MAX).to(tl.int16), mask=ok)
    # a zero q or k head is x = 0, e = 0; a zero v head keeps its exponent (block16)
    tl.store(xe_ptr + token * stride_xe + slot, tl.where(rope & (m == 0), 0, e + s), mask=row_ok)


def qkv_heads(acc: torch.Tensor, e: torch.Tensor, pos: torch.Tensor, shifts: tuple[int, int, int],
              p: DeviceAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """intops.rope_heads of the q and k heads and intops.heads_block16 of the v heads of
    one fused q|k|v accumulator int64 [R, (H + 2G) * D], in one kernel.
    Returns (x int16 [R, H + 2G, D], e int64 [R, H + 2G]): q, k, v heads in that order."""
    _check("acc", acc, (torch.int64,), 2)
    _check("e", e, (torch.int64,), 1)
    _check("pos", pos, (torch.int64,), 1)
    d, hq, hk = p.head_dim, p.heads, p.kv_heads
    slots = hq + 2 * hk
    rows = acc.shape[0]
    if acc.shape[1] != slots * d or e.shape[0] != rows or pos.shape[0] != rows:
        raise ValueError(f"shape mismatch: acc {tuple(acc.shape)}, e {tuple(e.shape)}, "
                         f"pos {tuple(pos.shape)} for {slots} heads of {d}")
    if rows and not 0 <= int(pos.min()) <= int(pos.max()) < p.cos.shape[0]:
        raise ValueError(f"positions outside 0..{p.cos.shape[0] - 1}")
    _same_device(acc, e, pos, p.cos)
    acc = acc.contiguous()
    x = torch.empty(rows, slots, d, dtype=torch.int16, device=acc.device)
    # rows of exponents padded to 16 bytes: a sequence's queries start aligned in a batch
    xe = torch.empty(rows, -(-slots // 2) * 2, dtype=torch.int64, device=acc.device)[:, :slots]
    block_r = max(1, ROW_TILE // d)
    if rows:
        _heads_kernel[(triton.cdiv(rows * slots, block_r),)](
            acc, e, pos, p.cos, p.sin, x, xe, rows * slots, p.cos.stride(0), xe.stride(0),
            *shifts, HQ=hq, HK=hk, D=d, BLOCK_R=block_r)
    return x, xe


# ------------------------------------------------------------------------ attention

@triton.jit
def _attention_kernel(q_ptr, eq_ptr, k_ptr, ek_ptr, v_ptr, ev_ptr, table_ptr, ctx_ptr, ce_ptr,
                      Lq, start, rate, cap, stride_q, stride_eq, stride_k, stride_ek,
                      stride_ctx, stride_ce,
                      REPS: tl.constexpr, REPS_PAD: tl.constexpr, D: tl.constexpr,
                      BLOCK_Q: tl.constexpr, BLOCK_J: tl.constexpr):
    """Queries i0..i0+BLOCK_Q-1 of the REPS query heads of kv head g: rows r = query *
    REPS_PAD + head, keys 0..kend-1 in tiles of BLOCK_J. Three passes over the keys (the
    softmax's integer division needs the whole denominator before any weight):
    0: the max score and the values' max exponent, 1: the denominator, 2: w . v."""
    i0 = tl.program_id(0) * BLOCK_Q
    g = tl.program_id(1)
    r = tl.arange(0, BLOCK_Q * REPS_PAD)
    i = i0 + r // REPS_PAD
    h = g * REPS + r % REPS_PAD
    row_ok = (i < Lq) & (r % REPS_PAD < REPS)
    qpos = tl.where(row_ok, start + i, -1)  # a padding row reads no key
    col = tl.arange(0, D)
    q = tl.load(q_ptr + i[:, None] * stride_q + h[:, None] * D + col[None, :],
                mask=row_ok[:, None], other=0).to(tl.float64)
    eq = tl.load(eq_ptr + i * stride_eq + h, mask=row_ok, other=0)
    kend = tl.minimum(Lq, i0 + BLOCK_Q) + start
    top = tl.full((BLOCK_Q * REPS_PAD,), -SCORE_MAX, tl.int64)
    top_e = tl.full((BLOCK_Q * REPS_PAD,), NO_EXP, tl.int64)
    total = tl.zeros((BLOCK_Q * REPS_PAD,), tl.int64)
    recip = tl.zeros((BLOCK_Q * REPS_PAD,), tl.int64)
    ctx = tl.zeros((BLOCK_Q * REPS_PAD, D), tl.float64)
    for phase in tl.static_range(3):
        if phase == 2:  # total >= 2**20 for a real row (its top key); padding rows: 1
            recip = tl.full((), PROB_NUM, tl.int64) // tl.maximum(total, 1)
        for j0 in range(0, kend, BLOCK_J):
            j = j0 + tl.arange(0, BLOCK_J)
            in_cache = j < kend
            kt = tl.load(k_ptr + j[None, :] * stride_k + g * D + col[:, None],
                         mask=in_cache[None, :], other=0).to(tl.float64)  # K^T [D, BLOCK_J]
            dot = tl.dot(q, kt).to(tl.int64)  # exact: partial sums are integers below 2**36
            ek = tl.load(ek_ptr + j * stride_ek + g, mask=in_cache, other=0)
            ev = tl.load(ev_ptr + j * stride_ek + g, mask=in_cache, other=0)
            s = _shift_round(dot, -(eq[:, None] + ek[None, :] + SCORE_BITS), SCORE_MAX)
            valid = j[None, :] <= qpos[:, None]
            if phase == 0:
                top = tl.maximum(top, tl.max(tl.where(valid, s, -SCORE_MAX), axis=1))
                top_e = tl.maximum(top_e, tl.max(tl.where(valid, ev[None, :], NO_EXP), axis=1))
            else:  # p = exp_table[min(shift_round(delta * rate, RATE_SHIFT), cap)] < 2**56
                delta = tl.minimum(top[:, None] - s, DELTA_MAX)
                x = tl.minimum((delta * rate + RATE_HALF) >> RATE_SHIFT, cap)
                p = tl.load(table_ptr + tl.where(valid, x, cap), mask=valid, other=0).to(tl.int64)
                if phase == 1:
                    total += tl.sum(p, axis=1)
                else:
                    prob = (p * recip[:, None] + PROB_HALF) >> PROB_SHIFT  # <= 2**24
                    w = tl.where(valid, _shift_round(prob, top_e[:, None] - ev[None, :], BIG), 0)
                    v = tl.load(v_ptr + j[:, None] * stride_k + g * D + col[None, :],
                                mask=in_cache[:, None], other=0).to(tl.float64)
                    ctx = tl.dot(w.to(tl.float64), v, ctx)  # exact: partial sums below 2**40
    tl.store(ctx_ptr + i[:, None] * stride_ctx + h[:, None] * D + col[None, :],
             ctx.to(tl.int64), mask=row_ok[:, None])
    tl.store(ce_ptr + i * stride_ce + h, top_e - PROB_BITS, mask=row_ok)


@triton.jit
def _attention_out_kernel(ctx_ptr, ce_ptr, x_ptr, xe_ptr, rows, stride_ctx, stride_ce, stride_x,
                          H: tl.constexpr, D: tl.constexpr, BLOCK_R: tl.constexpr,
                          BLOCK_C: tl.constexpr):
    """c = max_h c_h; y_h = shift_round(ctx_h, c - c_h, 2**62); block16(y, c) per row."""
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = tl.arange(0, BLOCK_C)
    row_ok = row < rows
    ok = row_ok[:, None] & (col < H * D)[None, :]
    ctx = tl.load(ctx_ptr + row[:, None] * stride_ctx + col[None, :], mask=ok, other=0)
    ch = tl.load(ce_ptr + row[:, None] * stride_ce + col[None, :] // D, mask=ok, other=NO_EXP)
    c = tl.max(ch, axis=1)
    x, e = _block16(_shift_round(ctx, c[:, None] - ch, BIG), c)
    tl.store(x_ptr + row[:, None] * stride_x + col[None, :], x.to(tl.int16), mask=ok)
    tl.store(xe_ptr + row, e, mask=row_ok)


def attention(q: torch.Tensor, eq: torch.Tensor, k: torch.Tensor, ek: torch.Tensor,
              v: torch.Tensor, ev: torch.Tensor, start: int,
              p: DeviceAttention) -> tuple[torch.Tensor, torch.Tensor]:
    """intops.attention of one sequence: queries int16 [Lq, H, D] (exponents [Lq, H]) at
    positions start..start+Lq-1, keys and values int16 [>= start + Lq, G, D] (their
    exponents [.., G]; rows past start + Lq are not read).
    Returns (x int16 [Lq, H * D], e int64 [Lq])."""
    for name, t, ndim in (("q", q, 3), ("k", k, 3), ("v", v, 3)):
        _check(name, t, (torch.int16,), ndim)
    for name, t in (("eq", eq), ("ek", ek), ("ev", ev)):
        _check(name, t, (torch.int64,), 2)
    lq, hq, d = q.shape
    g = p.kv_heads
    if (hq, d) != (p.heads, p.head_dim) or tuple(k.shape[1:]) != (g, d) or k.shape != v.shape:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    if tuple(eq.shape) != (lq, hq) or tuple(ek.shape) != (k.shape[0], g) or ek.shape != ev.shape:
        raise ValueError("exponents do not match their heads")
    if start < 0 or start + lq > k.shape[0] or start + lq > p.cos.shape[0]:
        raise ValueError(f"{lq} queries at {start} beyond {k.shape[0]} cached keys")
    reps = hq // g
    if reps * g != hq or reps > ATTN_REPS_PAD:
        raise ValueError(f"{hq} query heads over {g} kv heads")
    _same_device(q, eq, k, ek, v, ev, p.exp_table)
    q, eq = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, eq))
    if q.stride(1) != d:
        q = q.contiguous()
    k, ek, v, ev = (t if t.is_contiguous() else t.contiguous() for t in (k, ek, v, ev))
    x = torch.empty(lq, hq * d, dtype=torch.int16, device=q.device)
    xe = torch.empty(lq, dtype=torch.int64, device=q.device)
    if not lq:
        return x, xe
    ctx = torch.empty(lq, hq * d, dtype=torch.int64, device=q.device)
    ce = torch.empty(lq, hq, dtype=torch.int64, device=q.device)
    block_q = ATTN_QUERIES["decode" if lq <= ATTN_QUERIES["decode"] else "prefill"]
    _attention_kernel[(triton.cdiv(lq, block_q), g)](
        q, eq, k, ek, v, ev, p.exp_table, ctx, ce, lq, start, p.rate, p.exp_table.shape[0] - 1,
        q.stride(0), eq.stride(0), k.stride(0), ek.stride(0), ctx.stride(0), ce.stride(0),
        REPS=reps, REPS_PAD=ATTN_REPS_PAD, D=d, BLOCK_Q=block_q, BLOCK_J=ATTN_KEYS,
        num_warps=ATTN_WARPS)
    block_r, block_c = _row_tile(hq * d)
    _attention_out_kernel[(triton.cdiv(lq, block_r),)](
        ctx, ce, x, xe, lq, ctx.stride(0), ce.stride(0), x.stride(0), H=hq, D=d,
        BLOCK_R=block_r, BLOCK_C=block_c)
    return x, xe


# --------------------------------------------------------------------------- swiglu

@triton.jit
def _swiglu_kernel(acc_ptr, e_ptr, table_ptr, x_ptr, xe_ptr, rows, F, stride_acc, stride_x,
                   gate_shift, up_shift, cap, BLOCK_R: tl.constexpr, BLOCK_F: tl.constexpr):
    row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    col = tl.arange(0, BLOCK_F)
    row_ok = row < rows
    ok = row_ok[:, None] & (col < F)[None, :]
    at = acc_ptr + row[:, None] * stride_acc + col[None, :]
    gate = tl.load(at, mask=ok, other=0)
    up = tl.load(at + F, mask=ok, other=0)
    mg = tl.max(tl.abs(gate), axis=1)
    mu = tl.max(tl.abs(up), axis=1)
    tg = _bitlen(mg) - FFN_IN_BITS
    tu = _bitlen(mu) - FFN_IN_BITS
    e = tl.load(e_ptr + row, mask=row_ok, other=0)
    eg = e - gate_shift + tg
    eu = e - up_shift + tu
    g = _shift_round(gate, tg[:, None], BIG)                                  # |g| <= 2**24
    i = _shift_round(tl.abs(g), -(eg[:, None] + SILU_FRAC_BITS), cap)
    sig = tl.load(table_ptr + i, mask=ok, other=0).to(tl.int64)
    sig = tl.where(g >= 0, tl.full((), SIG_ONE, tl.int64) - sig, sig)
    s = _shift_round(g * sig, SIG_BITS, BIG)                                  # |s| <= 2**24
    x, ex = _block16(s * _shift_round(up, tu[:, None], BIG), eg + eu)      # |s u| <= 2**48
    zero = (mg == 0) | (mu == 0)
    tl.store(x_ptr + row[:, None] * stride_x + col[None, :],
             tl.where(zero[:, None], 0, x).to(tl.int16), mask=ok)
    tl.store(xe_ptr + row, tl.where(zero, 0, ex), mask=row_ok)


def swiglu(acc: torch.Tensor, e: torch.Tensor, shifts: tuple[int, int],
           sig_table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """intops.swiglu of one fused gate|up accumulator int64 [R, 2F]:
    (x int16 [R, F], e int64 [R])."""
    _check("acc", acc, (torch.int64,), 2)
    _check("e", e, (torch.int64,), 1)
    _check("sig_table", sig_table, (torch.int32,), 1)
    rows, f2 = acc.shape
    if f2 % 2 or e.shape[0] != rows:
        raise ValueError(f"shape mismatch: acc {tuple(acc.shape)}, e {tuple(e.shape)}")
    _same_device(acc, e, sig_table)
    acc = acc if acc.stride(1) == 1 else acc.contiguous()
    f = f2 // 2
    x = torch.empty(rows, f, dtype=torch.int16, device=acc.device)
    xe = torch.empty(rows, dtype=torch.int64, device=acc.device)
    block_r, block_f = _row_tile(f)
    if rows:
        _swiglu_kernel[(triton.cdiv(rows, block_r),)](
            acc, e, sig_table, x, xe, rows, f, acc.stride(0), x.stride(0), *shifts,
            sig_table.shape[0] - 1, BLOCK_R=block_r, BLOCK_F=block_f)
    return x, xe


# ------------------------------------------------------------------------ the backend

class TritonOps:
    """The decoder's ops (``decoder.forward``) as Triton kernels: CUDA tensors, or CPU
    tensors when interpreted. ``prepare`` puts a model's parameters on the device once."""

    name = "triton"

    def __init__(self, device: torch.device | None = None):
        """On CUDA (or the CPU when interpreted). ``device`` forces one: CPU tensors with
        compiled kernels only compile (tests/llm/test_triton_compile.py), never run."""
        self.device = torch.device(device) if device is not None else triton_device(INTERPRETED)
        self._prepared: dict[int, tuple[weakref.ref, DeviceParams]] = {}

    @property
    def route(self) -> str:
        where = "interpreter" if INTERPRETED else torch.cuda.get_device_name(self.device)
        return f"triton {triton.__version__} ({where})"

    def prepare(self, params: DecoderParams) -> DeviceParams:
        """``params`` on the device (built on first use, kept while ``params`` lives)."""
        held = self._prepared.get(id(params))
        if held is None or held[0]() is not params:
            self._prepared = {k: v for k, v in self._prepared.items() if v[0]() is not None}
            held = (weakref.ref(params), device_params(params, self.device))
            self._prepared[id(params)] = held
        return held[1]

    # arrays
    def zeros(self, shape, dtype) -> torch.Tensor:
        return torch.zeros(shape, dtype=getattr(torch, np.dtype(dtype).name), device=self.device)

    def empty(self, shape, dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device=self.device)

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    @staticmethod
    def to_host(t: torch.Tensor) -> np.ndarray:
        return t.cpu().numpy()

    # the forward's steps
    def embed(self, ids: torch.Tensor, dev: DeviceParams) -> torch.Tensor:
        return embed(ids, dev.embed, dev.embed_shift)

    @staticmethod
    def rmsnorm(h, norm: DeviceNorm):
        return rmsnorm(h, norm)

    def qkv(self, x, e, layer: DeviceLayer, pos, att: DeviceAttention):
        """(q, eq), (k, ek), (v, ev) of one layer: [R, heads, D] int16, [R, heads]."""
        heads, eh = qkv_heads(linear(x, layer.qkv), e, pos, layer.qkv_shifts, att)
        hq, hk = att.heads, att.kv_heads
        return ((heads[:, :hq], eh[:, :hq]), (heads[:, hq:hq + hk], eh[:, hq:hq + hk]),
                (heads[:, hq + hk:], eh[:, hq + hk:]))

    @staticmethod
    def attention(q, eq, k, ek, v, ev, start, att: DeviceAttention):
        return attention(q, eq, k, ek, v, ev, start, att)

    @staticmethod
    def attn_residual(h, ox, oe, layer: DeviceLayer) -> None:
        linear_residual(h, ox, oe, layer.o, layer.o_shift)

    @staticmethod
    def ffn_in(x, e, layer: DeviceLayer, sig_table):
        return swiglu(linear(x, layer.gate_up), e, layer.gate_up_shifts, sig_table)

    @staticmethod
    def ffn_residual(h, gx, ge, layer: DeviceLayer) -> None:
        linear_residual(h, gx, ge, layer.down, layer.down_shift)

    @staticmethod
    def head(x, e, dev: DeviceParams):
        return linear_logits(x, e, dev.embed, dev.embed_shift)
