"""The marketplace protocol as the contracts define it: limits, states, job ids, seals.

Everything here mirrors contracts/modules/*.vy exactly; tests compare the constants
with the Vyper source and the seal with the contract's own ``seal_of``.

>>> salt = bytes(32)
>>> seal(job_id=256, provider="0x" + "11" * 20, digest=result_digest(b"r"), salt=salt).hex()[:8]
'ae84a059'
"""
from __future__ import annotations

import os
from enum import IntEnum

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


class JobStatus(IntEnum):
    """A job's state (``jobs.vy`` STATUS_*).

    OPEN: seats being claimed / committed / revealed (r >= 2) or awaiting delivery (r = 1).
    DELIVERED: r = 1 result delivered, challenge window running (reads FINALIZED
               after it, with no transaction: pay is released lazily).
    CHALLENGED: r = 1 result disputed, re-execution round running.
    FINALIZED: a result stands and everyone is paid.
    UNRESOLVED: no strict majority; the client was refunded the unpaid seats.
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
