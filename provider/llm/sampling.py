"""Choosing the next token from integer logits, replayable by anyone.

Greedy: the largest logit, ties to the lowest token id. Sampled: temperature, top-k and
top-p (nucleus) on the integer logits, with the randomness of a counter-based generator:
step n of a job with seed s draws from sha256(DOMAIN, s, n). No float, no RNG state, so
a verifier recomputes any step on its own.

Sampled, exactly (logits L int64 in Q(LOGIT_BITS), parameters integers):
  order = token ids by (L descending, id ascending); with top_k > 0, its first top_k
  delta = L[top] - L  (>= 0) for the ids in order
  rate = (LOG2E_Q * 1000) // temperature_milli       log2(e) / T in Q(RATE_BITS)
  dmax = (EXP_CAP << SHIFT) // rate + 1              beyond it the exponent is capped
  x = min(shift_round(min(delta, dmax) * rate, SHIFT), EXP_CAP)   SHIFT = RATE_BITS +
      LOGIT_BITS - EXP_FRAC_BITS; min(delta, dmax) * rate <= (EXP_CAP << SHIFT) + rate < 2**52
  w = exp2_table[x]                       2**(-x / 1024) in Q(20): the top token has 2**20
  cum = running sums of w in order; total = cum[-1]                  < 49152 * 2**20 < 2**36
  keep the shortest prefix with cum * 10**6 >= top_p_micro * total           (< 2**56)
  r = int(sha256(DOMAIN || seed (8 bytes LE) || step (4 bytes LE))[:16], LE) mod kept_total
  the token is the first in order with cum > r
(the modulo's bias is below kept_total / 2**128 < 2**-92).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Context, Decimal

import numpy as np

from .intops import EXP_FRAC_BITS, LOGIT_BITS
from .tables import exp2_table

DOMAIN = b"verinfer/llm-sample/v1\x00"
RATE_BITS = 30
SHIFT = RATE_BITS + LOGIT_BITS - EXP_FRAC_BITS
_ctx = Context(prec=40)
# round(log2(e) * 2**RATE_BITS), in Decimal: the same on every platform
LOG2E_Q = int((_ctx.divide(Decimal(1 << RATE_BITS), _ctx.ln(Decimal(2))) + Decimal("0.5"))
              .to_integral_value(rounding="ROUND_FLOOR"))
MAX_TEMPERATURE_MILLI = 100_000
TOP_P_ONE = 1_000_000


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each token. ``temperature_milli`` = 0 is greedy (the other fields are
    then unused); otherwise temperature = temperature_milli / 1000, ``top_k`` = 0 keeps
    every token, ``top_p_micro`` is the nucleus mass in millionths (10**6 keeps all),
    ``seed`` an unsigned 64-bit integer.

    >>> SamplingParams(temperature_milli=700, top_k=50, top_p_micro=900_000, seed=7).greedy
    False
    """

    temperature_milli: int = 0
    top_k: int = 0
    top_p_micro: int = TOP_P_ONE
    seed: int = 0

    def __post_init__(self):
        for name in ("temperature_milli", "top_k", "top_p_micro", "seed"):
            if type(getattr(self, name)) is not int:
                raise TypeError(f"{name} must be an int")
        if not 0 <= self.temperature_milli <= MAX_TEMPERATURE_MILLI:
            raise ValueError(f"temperature_milli outside 0..{MAX_TEMPERATURE_MILLI}")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if not 0 < self.top_p_micro <= TOP_P_ONE:
            raise ValueError(f"top_p_micro outside 1..{TOP_P_ONE}")
        if not 0 <= self.seed < 1 << 64:
            raise ValueError("seed must be an unsigned 64-bit integer")

    @property
    def greedy(self) -> bool:
        return self.temperature_milli == 0


def greedy(logits: np.ndarray) -> int:
    """The largest logit's id, ties to the lowest id."""
    return int(np.argmax(logits))  # numpy returns the first maximum


def candidates(logits: np.ndarray, p: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cumulative weights) of the tokens ``sample`` draws from, in draw order."""
    order = np.argsort(-logits, kind="stable")  # stable: equal logits by ascending id
    if p.top_k:
        order = order[:p.top_k]
    delta = logits[order[0]] - logits[order]
    rate = (LOG2E_Q * 1000) // p.temperature_milli
    table = exp2_table()
    cap = table.shape[0] - 1
    dmax = (cap << SHIFT) // rate + 1
    x = np.minimum((np.minimum(delta, dmax) * rate + (1 << (SHIFT - 1))) >> SHIFT, cap)
    cum = np.cumsum(table[x].astype(np.int64))
    keep = int(np.argmax(cum * TOP_P_ONE >= p.top_p_micro * cum[-1])) + 1
    return order[:keep], cum[:keep]


def draw(seed: int, step: int, total: int) -> int:
    """The counter-based uniform integer in [0, total) of ``step`` for ``seed``."""
    digest = hashlib.sha256(DOMAIN + seed.to_bytes(8, "little") + step.to_bytes(4, "little")).digest()
    return int.from_bytes(digest[:16], "little") % total


def sample(logits: np.ndarray, p: SamplingParams, step: int) -> int:
    """The token of ``step`` (0 for the first generated token) under ``p``."""
    if p.greedy:
        return greedy(logits)
    ids, cum = candidates(logits, p)
    r = draw(p.seed, step, int(cum[-1]))
    return int(ids[int(np.searchsorted(cum, r, side="right"))])
