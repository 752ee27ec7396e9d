"""The marketplace protocol as the contracts define it: limits, states, job ids, seals.

Everything here mirrors contracts/modules/*.vy exactly; tests compare the constants
with the Vyper source, the seal with an independent ABI encoding and with the seals the
contract accepts at reveal, and the draw weight with the contract's ``draw_weight``.

>>> salt = bytes(32)
>>> seal(job_id=256, provider="0x" + "11" * 20, digest=result_digest(b"r"), salt=salt).hex()[:8]
'ae84a059'
"""
from __future__ import annotations

import os
from enum import IntEnum
from math import comb

from eth_utils import keccak, to_canonical_address

# jobs.vy
MAX_REDUNDANCY = 7
R_CHALLENGE = 3  # fresh providers re-executing a challenged r = 1 job
MAX_BATCH = 32  # jobs per post_jobs (inputs of up to MAX_INPUT bytes)
MAX_RESULT_BATCH = 64  # jobs per deliver_many / reveal_many (results of up to MAX_RESULT bytes)
MAX_ID_BATCH = 256  # jobs per claim_many / commit_many / finalize_many
MAX_INPUT = 2048  # bytes of one job input
MAX_RESULT = 1024  # bytes of one result
MAX_WINDOW = 30 * 86_400  # seconds, each of claim / commit / reveal windows
MAX_REWARD = 2**96 - 1
BPS = 10_000
# staking.vy
MAX_STAKE = 2**128 - 1  # what one provider may hold: free + locked + unbonding
# sortition.vy: a provider's draw weight is its bonded stake (free + locked) >> WEIGHT_SHIFT,
# at most MAX_WEIGHT, and 0 below the owner's min_draw_stake (params.vy).
WEIGHT_SHIFT = 16
MAX_WEIGHT = 2**96 - 1
DEFAULT_MIN_DRAW_STAKE = 10**18  # one token of an 18-decimal stake token
MAX_MIN_DRAW_STAKE = 2**128 - 1


class JobStatus(IntEnum):
    """A job's state (``jobs.vy`` STATUS_*).

    OPEN: seats being drawn / taken / committed / revealed (r >= 2), or (r = 1) waiting
          for a claim, then for the claimant's delivery.
    DELIVERED: r = 1 result delivered, challenge window running (reads FINALIZED
               after it, with no transaction: pay is released lazily).
    CHALLENGED: r = 1 result disputed, re-execution round running.
    FINALIZED: a result stands and everyone is paid.
    UNRESOLVED: no strict majority, or an r = 1 job claimed and not delivered by its
                claim deadline (claimant slashed); the client was refunded the unpaid seats.
    CANCELLED: nobody claimed it; the client was refunded in full.
    """

    OPEN = 0
    DELIVERED = 1
    CHALLENGED = 2
    FINALIZED = 3
    UNRESOLVED = 4
    CANCELLED = 5

    @property
    def settled(self) -> bool:
        """True for the terminal states (no escrow left)."""
        return self >= JobStatus.FINALIZED

    @property
    def has_result(self) -> bool:
        """True when a result stands: FINALIZED, or DELIVERED (r = 1, still challengeable)."""
        return self in (JobStatus.DELIVERED, JobStatus.FINALIZED)


class Fault(IntEnum):
    """Why a provider was slashed (``settlement.vy`` FAULT_*)."""

    NO_COMMIT = 1
    NO_REVEAL = 2
    LOSING_DIGEST = 3
    LOST_CHALLENGE = 4


def draw_weight(bonded: int, min_draw_stake: int = DEFAULT_MIN_DRAW_STAKE) -> int:
    """The weight a provider serving at least one model, with ``bonded`` stake (free +
    locked), has in every seat draw of the models it serves (``sortition.vy``; 0 while it
    serves none). The contract's ``draw_weight(account)`` holds it as of the provider's
    last stake change, except that an unbond request or a slash never raises it (after
    the owner lowered the floor, a stake or ``reweigh`` does).

    >>> draw_weight(10**20), draw_weight(10**18 - 1)
    (1525878906250000, 0)
    """
    if bonded < 0 or min_draw_stake < 0:
        raise ValueError("stake amounts are non-negative")
    return min(bonded >> WEIGHT_SHIFT, MAX_WEIGHT) if bonded >= min_draw_stake else 0


def redraw_delay(min_claim_window: int) -> int:
    """Seconds after a draw when the seats nobody took are drawn again by the next claim
    transaction: half the marketplace's minimum claim window (``min_windows().claim``).

    >>> redraw_delay(120)
    60
    """
    return min_claim_window // 2


def majority_chance(share: float, seats: int = 3) -> float:
    """The chance that a provider holding ``share`` of a model's draw weight is drawn for
    a strict majority of ``seats`` independent draws (with replacement): the binomial
    tail ``P[Binomial(seats, share) > seats / 2]``; for 3 seats, ``3 s^2 - 2 s^3``. How
    the weight is split over addresses does not change it.

    >>> round(majority_chance(1 / 3), 4), round(majority_chance(0.1, 7), 6)
    (0.2593, 0.002728)
    """
    if not 0 <= share <= 1 or seats < 1:
        raise ValueError("share must be in [0, 1] and seats positive")
    return sum(comb(seats, k) * share**k * (1 - share) ** (seats - k) for k in range(seats // 2 + 1, seats + 1))


def job_id_of(batch_id: int, index: int) -> int:
    """The id of job ``index`` of a posted batch (``job_id = batch_id << 8 | index``).

    >>> job_id_of(3, 1)
    769
    """
    if not 0 <= index < 256:
        raise ValueError(f"batch index {index} out of range 0..255")
    return batch_id << 8 | index


def result_digest(result: bytes) -> bytes:
    """The digest the contract stores for a result: ``keccak256(result)``.

    >>> result_digest(b"").hex()[:8]
    'c5d24601'
    """
    return keccak(bytes(result))


def seal(job_id: int, provider: str, digest: bytes, salt: bytes) -> bytes:
    """The commitment a provider posts: ``keccak256(abi_encode(job_id, provider, digest, salt))``.

    Binding the provider's address makes another provider's seal useless to copy.

    >>> len(seal(1, "0x" + "22" * 20, bytes(32), bytes(32)))
    32
    """
    if len(digest) != 32 or len(salt) != 32:
        raise ValueError("digest and salt must be 32 bytes")
    if not 0 <= job_id < 2**256:
        raise ValueError(f"job id out of uint256 range: {job_id}")
    # Four static words, packed by hand: eth_abi's encoder cost more than the hash.
    return keccak(job_id.to_bytes(32, "big") + bytes(12) + to_canonical_address(provider)
                  + bytes(digest) + bytes(salt))


def seal_result(job_id: int, provider: str, result: bytes, salt: bytes) -> bytes:
    """The seal for result bytes (``seal`` of their ``result_digest``).

    >>> seal_result(1, "0x" + "22" * 20, b"x", bytes(32)) == seal(1, "0x" + "22" * 20, result_digest(b"x"), bytes(32))
    True
    """
    return seal(job_id, provider, result_digest(result), salt)


def new_salt() -> bytes:
    """32 random bytes for a seal; keep it until the reveal.

    >>> len(new_salt())
    32
    """
    return os.urandom(32)
