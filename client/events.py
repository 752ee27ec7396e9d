"""The marketplace's events as frozen dataclasses (decoded by ``client.marketplace``).

Field names equal the event's ABI argument names (a test checks every event of the
shipped ABI); ``meta`` says where the log sits in the chain, for ordering and for
reorg checks by block hash.

>>> EVENT_TYPES["JobPosted"] is JobPosted
True
"""
from __future__ import annotations

from dataclasses import dataclass

from client.protocol import Fault, JobStatus


@dataclass(frozen=True)
class LogMeta:
    """Where a log was emitted."""

    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    address: str

    @property
    def position(self) -> tuple[int, int]:
        """Sort key: chain order."""
        return self.block_number, self.log_index


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every decoded marketplace event."""

    meta: LogMeta


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True, kw_only=True)
class JobPosted(Event):
    job_id: int
    client: str
    model_id: bytes
    r: int
    reward: int
    claim_deadline: int
    commit_deadline: int
    reveal_deadline: int
    input: bytes


@dataclass(frozen=True, kw_only=True)
class SeatDrawn(Event):
    """A seat of an r >= 2 job or of a challenge's re-execution round drawn to ``provider``
    (stake-weighted; one event per seat, an address may be drawn for several; the empty
    address when nobody serving the model has draw weight). Only the drawn provider may
    take the seat (``JobClaimed``); seats not taken within half the minimum claim window
    are drawn again by the next claim."""

    job_id: int
    provider: str
    seat: int


@dataclass(frozen=True, kw_only=True)
class JobClaimed(Event):
    """A drawn seat taken (its collateral locked): one event per seat, so a provider drawn
    for several seats of a job emits several. An r = 1 claim logs none (to save gas):
    ``Marketplace.seat(job_id, 0)`` shows its claimant, and its delivery names it."""

    job_id: int
    provider: str
    seat: int


@dataclass(frozen=True, kw_only=True)
class SealCommitted(Event):
    """One per seat: a commit covers every seat the provider holds in the round and had
    not committed."""

    job_id: int
    provider: str
    seat: int
    seal: bytes


@dataclass(frozen=True, kw_only=True)
class ResultRevealed(Event):
    """A revealed (r >= 2) or delivered (r = 1) result; the chain is the delivery channel.
    A reveal emits one per seat the provider holds in the round (same result bytes)."""

    job_id: int
    provider: str
    seat: int
    digest: bytes
    result: bytes


@dataclass(frozen=True, kw_only=True)
class ItemSkipped(Event):
    """A batch item that was skipped instead of reverting the batch: e.g. ``jobs: not drawn``
    (claim_many by a provider no seat was drawn to: a draw the call made stands),
    ``jobs: draw not ready`` (still the post's or challenge's block), ``jobs: already
    claimed`` (r = 1 taken), ``jobs: claimed in this block`` (an r = 1 delivery must come
    from a later block than its claim), ``jobs: not your seat``, ``jobs: not open``."""

    job_id: int
    caller: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class JobFinalized(Event):
    job_id: int
    status: JobStatus
    result_digest: bytes
    provider_pay: int
    client_refund: int
    slashed: int


@dataclass(frozen=True, kw_only=True)
class JobChallenged(Event):
    job_id: int
    challenger: str
    bond: int
    claim_deadline: int
    commit_deadline: int
    reveal_deadline: int


@dataclass(frozen=True, kw_only=True)
class ProviderSlashed(Event):
    job_id: int
    provider: str
    seat: int
    amount: int
    reason: Fault


@dataclass(frozen=True, kw_only=True)
class SlashShareCredited(Event):
    """A share of a job's slashed stake credited (stake token) to the client, an honest
    provider or challenger, or the treasury: one event per recipient."""

    job_id: int
    account: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class BondReturned(Event):
    """What was left of a challenge bond after the re-execution round's pay, credited
    (payment token) to the challenger."""

    job_id: int
    challenger: str
    amount: int


# ---------------------------------------------------------------- providers and money


@dataclass(frozen=True, kw_only=True)
class ProviderRegistered(Event):
    provider: str
    price: int
    model_ids: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class ProviderUpdated(Event):
    provider: str
    price: int
    model_ids: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class Staked(Event):
    provider: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class WeightChanged(Event):
    """A provider's draw weight changed (stake, unbond, slash, served models, ``reweigh``):
    ``client.protocol.draw_weight`` of its bonded stake."""

    provider: str
    weight: int


@dataclass(frozen=True, kw_only=True)
class UnbondRequested(Event):
    provider: str
    amount: int
    ready_at: int


@dataclass(frozen=True, kw_only=True)
class StakeWithdrawn(Event):
    provider: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class PayoutsReleased(Event):
    """A provider's matured r = 1 payouts credited (pay, treasury fees) and collateral unlocked.

    ``treasury`` got the fees: the oldest treasury (at post) among the bucket's jobs."""

    provider: str
    generation: int
    pay: int
    fees: int
    collateral: int
    treasury: str


@dataclass(frozen=True, kw_only=True)
class Deposited(Event):
    account: str
    amount: int


@dataclass(frozen=True, kw_only=True)
class Withdrawn(Event):
    account: str
    pay_amount: int
    stake_amount: int


# ---------------------------------------------------------------- owner


@dataclass(frozen=True, kw_only=True)
class ModelRegistered(Event):
    model_id: bytes
    index: int
    name: str
    weights_digest: bytes
    format_version: int


@dataclass(frozen=True, kw_only=True)
class ModelStatusChanged(Event):
    model_id: bytes
    active: bool


@dataclass(frozen=True, kw_only=True)
class ParameterChanged(Event):
    name: str
    old_value: int
    new_value: int


@dataclass(frozen=True, kw_only=True)
class TreasuryChanged(Event):
    old_treasury: str
    new_treasury: str


@dataclass(frozen=True, kw_only=True)
class OwnershipTransferStarted(Event):
    """The owner named a new owner, who takes over once it calls accept_ownership."""

    previous_owner: str
    new_owner: str


@dataclass(frozen=True, kw_only=True)
class OwnershipTransferred(Event):
    previous_owner: str
    new_owner: str


EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in (
    JobPosted, JobClaimed, SealCommitted, ResultRevealed, ItemSkipped, JobFinalized,
    JobChallenged, ProviderSlashed, ProviderRegistered, ProviderUpdated, Staked,
    UnbondRequested, StakeWithdrawn, PayoutsReleased, Deposited, Withdrawn, ModelRegistered,
    ModelStatusChanged, ParameterChanged, TreasuryChanged, OwnershipTransferStarted, OwnershipTransferred,
    SlashShareCredited, BondReturned, SeatDrawn, WeightChanged,
)}
# Events that carry the job id as their first indexed topic (a job's history).
JOB_EVENTS = (JobPosted, SeatDrawn, JobClaimed, SealCommitted, ResultRevealed, ItemSkipped,
              JobFinalized, JobChallenged, ProviderSlashed, SlashShareCredited, BondReturned)
