"""The decoder's Triton kernels against its CPU path, case by case, at the model's real
shapes (hidden 576, 9 query / 3 kv heads of 64, FFN 1536, vocabulary 49152) with the
real weights, on inputs that reach the edges of the integer formulas: int16's extremes
(-32768 included), zero rows and heads, exponents that saturate a shift or push it past
63 bits, clamps of the residual stream and the logits, the exp table's cap, positions 0
and 2047.

Shared by the Triton-equals-CPU tests (``test_triton_ops.py``: Triton's interpreter, or
the GPU) and the first check of a GPU slot (``bench/gpu_check.py``), which adds
``LARGE`` (too slow for the interpreter). Every input is seeded; a ``Case`` computes the
CPU path's arrays (``intops``, i.e. ``cpu_kernels``) and the kernels' on any
``TritonOps`` (its device), and ``compare`` says how they differ.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from provider.llm import intops
from provider.llm import triton_ops as T
from provider.llm.intops import ACT_MAX, RES_MAX
from provider.llm.quantize import DecoderParams


@dataclass(frozen=True)
class Case:
    label: str
    reference: Callable[[], tuple[np.ndarray, ...]]
    triton: Callable[[T.TritonOps], tuple[torch.Tensor, ...]]
    inputs: tuple = ()  # the op's arrays, where a test looks at them


def compare(case: Case, ops: T.TritonOps) -> list[str]:
    """What differs between the kernels' outputs and the CPU path's (dtype, shape, bits);
    [] when identical."""
    want = case.reference()
    got = case.triton(ops)
    problems = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = g.cpu().numpy()
        if (g.dtype, g.shape) != (w.dtype, w.shape):
            problems.append(f"output {i}: {g.dtype} {g.shape}, expected {w.dtype} {w.shape}")
        elif bad := int((g != w).sum()):
            problems.append(f"output {i}: {bad} of {w.size} values differ")
    return problems


def values(case: Case) -> int:
    return sum(w.size for w in case.reference())


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([14, *seed])


def activations(seed: int, rows: int, k: int) -> np.ndarray:
    """int16 rows: random, then (when there are rows for them) a zero row, all +32767,
    all -32768, alternating extremes and a single non-zero value."""
    x = _rng(seed).integers(-32768, 32768, (rows, k)).astype(np.int16)
    x[0, ::7] = -32768
    edges = [np.zeros(k), np.full(k, ACT_MAX), np.full(k, -32768),
             np.where(np.arange(k) % 2, ACT_MAX, -32768), np.eye(1, k, k // 2)[0] * 3]
    for i, row in enumerate(edges[:rows - 1], start=1):
        x[i] = row
    return x


def exponents(seed: int, rows: int, lo: int, hi: int, edges=()) -> np.ndarray:
    e = _rng(seed).integers(lo, hi + 1, rows).astype(np.int64)
    e[:len(edges)] = edges[:rows]
    return e


def magnitudes(seed: int, rows: int, cols: int, bits: int, zero=(), tiny=()) -> np.ndarray:
    """int64 [rows, cols] of mixed magnitudes up to 2**bits, with zero and +-1 columns
    ranges (slices) that make zero and tiny heads or rows."""
    rng = _rng(seed)
    top = rng.integers(1, bits + 1, (rows, 1))
    v = rng.integers(-(1 << 62), 1 << 62, (rows, cols)) >> (62 - top)
    for cut in zero:
        v[cut] = 0
    for cut in tiny:
        v[cut] = np.sign(v[cut]) + (v[cut] == 0)
    return v


def _t(a: np.ndarray, ops: T.TritonOps) -> torch.Tensor:
    return ops.asarray(np.ascontiguousarray(a))


# ------------------------------------------------------------------------ builders

def _linear(params: DecoderParams, name: str, rows: int) -> Case:
    """One matrix (or fused pair/triple) of layer 0 or the head, with its epilogue."""
    layer = params.layers[0]
    seed = 100 * ("qkv", "o", "gate_up", "down", "head").index(name) + rows

    def dev(ops):
        return ops.prepare(params)

    if name in ("qkv", "gate_up"):
        mats = (layer.q, layer.k, layer.v) if name == "qkv" else (layer.gate, layer.up)
        x = activations(seed, rows, mats[0].k)
        return Case(f"linear {name}, {rows} rows",
                    lambda: (np.concatenate([intops.linear(x, w) for w in mats], axis=1),),
                    lambda ops: (T.linear(_t(x, ops), getattr(dev(ops).layers[0], name)),))
    if name in ("o", "down"):  # the residual add fused: h within +-RES_MAX, some at it
        w = getattr(layer, name)
        x = activations(seed, rows, w.k)
        h = magnitudes(seed + 1, rows, w.n, 56)
        h[-1, ::3] = RES_MAX
        h[-1, 1::3] = -RES_MAX
        # rows 0..3 (random, zero, +32767, -32768): plain, -, saturating left, past 63
        e = exponents(seed + 2, rows, -30, 0, (-15, -15, 20, -70))
        shift = w.shift

        def reference():
            out = h.copy()
            intops.residual_add(out, intops.linear(x, w), e, shift)
            return (out,)

        def triton(ops):
            out = _t(h, ops)
            dl = dev(ops).layers[0]
            T.linear_residual(out, _t(x, ops), _t(e, ops), getattr(dl, name),
                              getattr(dl, f"{name}_shift"))
            return (out,)

        return Case(f"linear {name} + residual add, {rows} rows", reference, triton)
    assert name == "head"
    w = params.embed
    x = activations(seed, rows, w.k)
    # rows 0..3 (random, zero, +32767, -32768): plain, -, saturated, shifted past 63
    e = exponents(seed + 2, rows, -16, -10, (-13, -13, 40, -60))
    return Case(f"linear head + logits, {rows} rows",
                lambda: (intops.logits(intops.linear(x, w), e, w.shift),),
                lambda ops: (T.linear_logits(_t(x, ops), _t(e, ops), dev(ops).embed,
                                             dev(ops).embed_shift),))


def _rmsnorm(params: DecoderParams, which: str, rows: int) -> Case:
    norm = params.out_norm if which == "out" else params.layers[0].attn_norm
    k = params.config.hidden
    h = magnitudes(rows, rows, k, 56)
    edges = [np.zeros(k), np.ones(k), np.where(np.arange(k) % 2, RES_MAX, -RES_MAX),
             np.eye(1, k, 5)[0] * -7, np.full(k, RES_MAX)]
    for i, row in enumerate(edges[:rows - 1], start=1):
        h[i] = row

    def triton(ops):
        dev = ops.prepare(params)
        return T.rmsnorm(_t(h, ops), dev.out_norm if which == "out" else dev.layers[0].attn_norm)

    return Case(f"rmsnorm {which}, {rows} rows", lambda: intops.rmsnorm(h, norm), triton)


def _heads(params: DecoderParams, rows: int) -> Case:
    """RoPE of the q and k heads, block16 of the v heads: zero and +-1 heads of each kind,
    positions 0, 1 and the last the table has."""
    layer, att, cfg = params.layers[0], params.attention, params.config
    d = cfg.head_dim
    slots = cfg.heads + 2 * cfg.kv_heads
    acc = magnitudes(100 + rows, rows, slots * d, 53,
                     zero=[np.s_[0, 0:d], np.s_[0, 9 * d:10 * d], np.s_[0, 12 * d:13 * d]],
                     tiny=[np.s_[-1, d:2 * d], np.s_[-1, 10 * d:11 * d], np.s_[-1, 13 * d:14 * d]])
    e = exponents(101 + rows, rows, -16, -12, (-15, 30, -60))
    pos = _rng(102, rows).integers(0, intops.MAX_CONTEXT, rows)
    pos[:3] = [0, intops.MAX_CONTEXT - 1, 1][:rows]
    hq, hk = cfg.heads, cfg.kv_heads

    def reference():
        q, eq = intops.rope_heads(acc[:, :hq * d], e, layer.q.shift, pos, hq, att)
        k, ek = intops.rope_heads(acc[:, hq * d:(hq + hk) * d], e, layer.k.shift, pos, hk, att)
        v, ev = intops.heads_block16(acc[:, (hq + hk) * d:], e, layer.v.shift, hk)
        return np.concatenate([q, k, v], axis=1), np.concatenate([eq, ek, ev], axis=1)

    def triton(ops):
        dev = ops.prepare(params)
        return T.qkv_heads(_t(acc, ops), _t(e, ops), _t(pos, ops), dev.layers[0].qkv_shifts,
                           dev.attention)

    return Case(f"rope q, k + block16 v, {rows} rows", reference, triton)


def _attention(params: DecoderParams, lq: int, start: int, wide: bool = False) -> Case:
    """Queries start..start+lq-1 over keys 0..start+lq-1. Exponents as the model makes
    them (q, k near -13, v -19..-11), or ``wide``: scores saturating at SCORE_MAX, deltas
    past DELTA_MAX and the exp table, value exponents 80 apart (weights shifted to 0)."""
    att, cfg = params.attention, params.config
    lk, seed = start + lq, 200 + lq + start + wide
    q = activations(seed, lq * cfg.heads, cfg.head_dim).reshape(lq, cfg.heads, cfg.head_dim)
    k = activations(seed + 1, lk * cfg.kv_heads, cfg.head_dim).reshape(lk, cfg.kv_heads, -1)
    v = activations(seed + 2, lk * cfg.kv_heads, cfg.head_dim).reshape(lk, cfg.kv_heads, -1)
    q[-1, 0] = 0  # a zero query head: every score 0, a uniform softmax
    rng = _rng(seed + 3)
    lo = (-40, 10) if wide else (-14, -11)
    eq = rng.integers(*lo, (lq, cfg.heads))
    ek = rng.integers(*lo, (lk, cfg.kv_heads))
    ev = rng.integers(*((-80, 5) if wide else (-19, -11)), (lk, cfg.kv_heads))

    def triton(ops):
        return T.attention(*(_t(a, ops) for a in (q, eq, k, ek, v, ev)), start,
                           ops.prepare(params).attention)

    label = f"attention {lq} queries at {start} ({lk} keys){', wide exponents' if wide else ''}"
    return Case(label, lambda: intops.attention(q, eq, k, ek, v, ev, start, att), triton,
                (q, eq, k, ek, v, ev))


def _swiglu(params: DecoderParams, rows: int) -> Case:
    layer, f = params.layers[0], params.config.ffn
    acc = magnitudes(300 + rows, rows, 2 * f, 53)
    if rows > 2:
        acc[1, :f] = 0     # zero gate
        acc[2, f:] = 0     # zero up
    if rows > 3:
        acc[3] = np.sign(acc[3]) + (acc[3] == 0)  # +-1 everywhere: left shifts
    e = exponents(301 + rows, rows, -16, -12, (-14, 40, -80))  # table cap / index 0
    return Case(f"swiglu, {rows} rows",
                lambda: intops.swiglu(acc[:, :f], acc[:, f:], e, layer.gate.shift,
                                      layer.up.shift, params.sig_table),
                lambda ops: T.swiglu(_t(acc, ops), _t(e, ops),
                                     ops.prepare(params).layers[0].gate_up_shifts,
                                     ops.prepare(params).sig_table))


def _embed(params: DecoderParams, rows: int) -> Case:
    vocab = params.config.vocab
    ids = _rng(400, rows).integers(0, vocab, rows)
    ids[:2] = [0, vocab - 1][:rows]
    return Case(f"embed, {rows} ids", lambda: (intops.embed(ids, params.embed),),
                lambda ops: (T.embed(_t(ids, ops), ops.prepare(params).embed,
                                     params.embed.shift),))


# Case label -> builder(params). GEMV up to 8 rows, GEMM from 9 (70: two row tiles).
CASES: dict[str, Callable[[DecoderParams], Case]] = {}
for _name in ("qkv", "o", "gate_up", "down"):
    for _rows in (1, 3, 8, 9, 70):
        CASES[f"linear-{_name}-{_rows}"] = lambda p, n=_name, r=_rows: _linear(p, n, r)
for _rows in (1, 3, 9):
    CASES[f"linear-head-{_rows}"] = lambda p, r=_rows: _linear(p, "head", r)
for _which, _rows in (("attn", 1), ("attn", 6), ("attn", 70), ("out", 3)):
    CASES[f"rmsnorm-{_which}-{_rows}"] = lambda p, w=_which, r=_rows: _rmsnorm(p, w, r)
for _rows in (1, 5, 40):
    CASES[f"heads-{_rows}"] = lambda p, r=_rows: _heads(p, r)
for _lq, _start, _wide in ((1, 0, False), (1, 32, False), (1, 299, False), (1, 2047, False),
                           (3, 5, False), (20, 0, False), (37, 60, False), (1, 40, True),
                           (20, 0, True)):
    CASES[f"attention-{_lq}-{_start}{'-wide' if _wide else ''}"] = \
        lambda p, q=_lq, s=_start, w=_wide: _attention(p, q, s, w)
for _rows in (1, 4, 20):
    CASES[f"swiglu-{_rows}"] = lambda p, r=_rows: _swiglu(p, r)
for _rows in (1, 5):
    CASES[f"embed-{_rows}"] = lambda p, r=_rows: _embed(p, r)

# Too slow for the interpreter: the GEMM head over every row of a long prompt, and
# attention over a whole context at once.
LARGE: dict[str, Callable[[DecoderParams], Case]] = {
    "linear-head-100": lambda p: _linear(p, "head", 100),
    "linear-down-300": lambda p: _linear(p, "down", 300),
    "attention-2048-0": lambda p: _attention(p, 2048, 0),
    "attention-500-1548-wide": lambda p: _attention(p, 500, 1548, True),
}
