"""The decoder's pinned integer tables, derived with integer arithmetic only.

No libm: every table comes from a handful of constants computed with Python's
``decimal`` (a software implementation, the same on every platform) and then an exact
integer recurrence in Q(WORK_BITS) with round-half-up steps, so each provider derives the
same table on any CPU and OS. The recurrences' accumulated error stays below 2**-80,
far below the tables' resolution (an output rounding could flip only if the true value
lay within 2**-80 of a half unit, and even then every machine computes the same flip:
the arithmetic is exact). ``tests/llm/test_intops.py`` pins each table's sha256.

- ``rope_table``: cos and sin of pos * theta_i in Q(ROPE_BITS), theta_i = base**(-2i/D).
- ``exp2_table``: 2**(-e / 2**EXP_FRAC_BITS) in Q(EXP_ONE_BITS), then a final 0.
- ``sigmoid_table``: sigmoid(-t) in Q(SIG_BITS) for t = k / 2**SILU_FRAC_BITS, then 0.
"""
from __future__ import annotations

import hashlib
from decimal import Context, Decimal
from functools import lru_cache

import numpy as np

from .intops import (EXP_FRAC_BITS, EXP_ONE_BITS, EXP_RANGE, ROPE_BITS, SIG_BITS,
                     SILU_FRAC_BITS, SILU_RANGE)

WORK_BITS = 100
_CTX = Context(prec=60)
_ONE = 1 << WORK_BITS


def _fixed(x: Decimal) -> int:
    """round-half-up(x * 2**WORK_BITS) of a Decimal, exactly."""
    scaled = _CTX.multiply(x, Decimal(_ONE))
    return int((scaled + Decimal("0.5")).to_integral_value(rounding="ROUND_FLOOR"))


def _rshift_round(v: int, s: int) -> int:
    return (v + (1 << (s - 1))) >> s


def _cos_sin(x: Decimal) -> tuple[Decimal, Decimal]:
    """Taylor series for |x| <= 1 to 60 digits."""
    c, s, term, n = Decimal(0), Decimal(0), Decimal(1), 0
    with_ctx = _CTX
    while True:
        if n % 4 == 0:
            c = with_ctx.add(c, term)
        elif n % 4 == 1:
            s = with_ctx.add(s, term)
        elif n % 4 == 2:
            c = with_ctx.subtract(c, term)
        else:
            s = with_ctx.subtract(s, term)
        n += 1
        term = with_ctx.divide(with_ctx.multiply(term, x), Decimal(n))
        if n > 8 and abs(term) < Decimal(10) ** -58:
            return c, s


@lru_cache(maxsize=4)
def rope_table(base: float, head_dim: int, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) int64 [positions, head_dim / 2] in Q(ROPE_BITS).

    theta_i = base**(-2i / head_dim) (base as its exact binary value, e.g. 100000), one
    rotation w_i = exp(i theta_i) in Q(WORK_BITS); z_(p+1) = round(z_p * w_i) exactly in
    integers, z_0 = 1; entry = round-half-up(z_p / 2**(WORK_BITS - ROPE_BITS))."""
    ln_base = _CTX.ln(Decimal(base))
    cos = np.empty((positions, head_dim // 2), dtype=np.int64)
    sin = np.empty_like(cos)
    shift = WORK_BITS - ROPE_BITS
    for i in range(head_dim // 2):
        theta = _CTX.exp(_CTX.multiply(Decimal(-2 * i) / Decimal(head_dim), ln_base))
        wc, ws = (_fixed(v) for v in _cos_sin(theta))
        a, b = _ONE, 0
        for p in range(positions):
            cos[p, i], sin[p, i] = _rshift_round(a, shift), _rshift_round(b, shift)
            a, b = (_rshift_round(a * wc - b * ws, WORK_BITS),
                    _rshift_round(a * ws + b * wc, WORK_BITS))
    return cos, sin


@lru_cache(maxsize=1)
def exp2_table() -> np.ndarray:
    """int32 [EXP_RANGE * 2**EXP_FRAC_BITS + 1]: round(2**EXP_ONE_BITS * 2**(-e / 2**E)),
    then 0 (the cap entry: every exponent beyond the range)."""
    w = _fixed(_CTX.power(Decimal(2), Decimal(-1) / Decimal(1 << EXP_FRAC_BITS)))
    n = EXP_RANGE << EXP_FRAC_BITS
    out = np.empty(n + 1, dtype=np.int32)
    v = _ONE
    for e in range(n):
        out[e] = _rshift_round(v, WORK_BITS - EXP_ONE_BITS)
        v = _rshift_round(v * w, WORK_BITS)
    out[n] = 0
    return out


@lru_cache(maxsize=1)
def sigmoid_table() -> np.ndarray:
    """int32 [SILU_RANGE * 2**SILU_FRAC_BITS + 1]: round(2**SIG_BITS / (1 + exp(t))) for
    t = k / 2**SILU_FRAC_BITS (sigmoid(-t)), then 0 (beyond the range: sigmoid(-t) <
    sigmoid(-SILU_RANGE) ~ 2**-23)."""
    w = _fixed(_CTX.exp(Decimal(1) / Decimal(1 << SILU_FRAC_BITS)))
    n = SILU_RANGE << SILU_FRAC_BITS
    out = np.empty(n + 1, dtype=np.int32)
    e = _ONE  # exp(t) in Q(WORK_BITS)
    num = 1 << (SIG_BITS + WORK_BITS)
    for k in range(n):
        den = _ONE + e
        out[k] = (2 * num + den) // (2 * den)  # round half up of num / den
        e = _rshift_round(e * w, WORK_BITS)
    out[n] = 0
    return out


def table_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(a.astype(a.dtype.newbyteorder("<")).tobytes()).hexdigest()
