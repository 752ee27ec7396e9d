"""Frozen records of what the SDK reads from the chain and computes for the caller.

Addresses are checksummed strings, bytes32 values are ``bytes``, token amounts are
integers in the token's base units.

>>> Estimate(r=3, reward=100, count=2, fee_per_seat=2, collateral_per_seat=500).total
612
"""
from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np

from client.chat import ChatAnswer
from client.encoding import decode_embedding
from client.events import Event
from client.protocol import R_CHALLENGE, JobStatus


@dataclass(frozen=True)
class ModelInfo:
    """A registered model (``Marketplace.model``)."""

    model_id: bytes
    name: str
    weights_digest: bytes
    format_version: int
    active: bool
    index: int


@dataclass(frozen=True)
class ProviderInfo:
    """A provider's registration, asking price, stake and served models."""

    address: str
    registered: bool
    price: int
    free: int
    locked: int
    unbonding: int
    unbond_ready_at: int
    model_ids: tuple[bytes, ...]

    @property
    def total_stake(self) -> int:
        """All stake still held by the contract: free + locked + unbonding."""
        return self.free + self.locked + self.unbonding


@dataclass(frozen=True)
class JobInfo:
    """A job's terms and current state (``Marketplace.job``).

    Deadlines and counters are those of the current round: a challenge opens a new
    round of ``R_CHALLENGE`` seats with fresh deadlines.
    """

    job_id: int
    client: str
    model_id: bytes
    r: int
    reward: int
    fee_per_seat: int
    collateral_per_seat: int
    status: JobStatus
    posted_at: int
    claim_deadline: int
    commit_deadline: int
    reveal_deadline: int
    challenge_end: int
    challenger: str
    nclaimed: int  # seats taken in the current round (drawn seats count once their provider claims)
    ncommitted: int
    nrevealed: int
    input_hash: bytes
    result_digest: bytes

    @property
    def price(self) -> int:
        """The escrow the job was posted with: r x (reward + fee)."""
        return self.r * (self.reward + self.fee_per_seat)

    @property
    def round_seats(self) -> int:
        """Seats of the current round: R_CHALLENGE in a challenge's re-execution round,
        else r."""
        return R_CHALLENGE if self.status == JobStatus.CHALLENGED else self.r

    def finalize_due(self, now: int) -> bool:
        """Whether ``finalize`` settles the job at chain time ``now`` (contracts/README.md,
        "finalize is due"): every seat of the round revealed; after the commit deadline,
        every committed seat revealed; after the reveal deadline; an open job after its
        claim deadline with no seat claimed (cancelled), or (r = 1) claimed and not
        delivered. Never a delivery: it settles by itself once its window ends."""
        if self.status not in (JobStatus.OPEN, JobStatus.CHALLENGED):
            return False
        if self.status == JobStatus.OPEN and now > self.claim_deadline and (self.nclaimed == 0 or self.r == 1):
            return True
        return (self.nrevealed == self.round_seats
                or (now > self.commit_deadline and self.nrevealed == self.ncommitted)
                or now > self.reveal_deadline)


@dataclass(frozen=True)
class PendingPayouts:
    """A provider's r = 1 pay not yet released (``Marketplace.pending_payouts``): released
    into its balance once ``matures_at`` (the last challenge deadline) has passed."""

    pay: int
    fees: int
    collateral: int
    matures_at: int


@dataclass(frozen=True)
class Seat:
    """One seat of a job (``Marketplace.seat``): its drawn provider (r = 1: the claimant;
    the empty address before the draw), whether that provider took it (``claimed``), and
    the seal while committed, the digest once revealed."""

    provider: str
    claimed: bool
    committed: bool
    revealed: bool
    word: bytes


@dataclass(frozen=True)
class Assignment:
    """Whether an account holds (took) a seat of a job's current round, and the first of
    its seats there (``Marketplace.assignment``); its commit and reveal cover all of them."""

    assigned: bool
    seat: int
    committed: bool
    revealed: bool


@dataclass(frozen=True)
class Params:
    """The marketplace's owner-set parameters."""

    fee_bps: int
    collateral_bps: int
    slash_client_bps: int
    slash_honest_bps: int
    slash_treasury_bps: int
    challenge_window: int
    unbond_delay: int
    paused: bool
    treasury: str
    owner: str
    min_windows: Deadlines  # the shortest windows a post may ask for (also a re-execution round's)
    min_draw_stake: int  # least bonded stake with a draw weight (stake-token units)


@dataclass(frozen=True)
class Estimate:
    """What posting ``count`` jobs of redundancy ``r`` at ``reward`` per seat costs."""

    r: int
    reward: int
    count: int
    fee_per_seat: int
    collateral_per_seat: int
    # Registered providers of the model that would take a seat: asking price <= reward,
    # free stake >= the seat's collateral and (r >= 2, drawn seats) a draw weight.
    providers: int = 0
    # r >= 2: the share of the model's draw weight those providers hold, i.e. the chance
    # that a drawn seat goes to one that takes it; a seat drawn to another provider waits
    # half the minimum claim window before it is drawn again. r = 1 (first come): 1.0
    # when anyone takes it.
    taker_share: float = 1.0

    @property
    def enough_providers(self) -> bool:
        """Whether r providers would take these jobs (else seats wait unclaimed, then refund)."""
        return self.providers >= self.r

    @property
    def per_job(self) -> int:
        """Escrow per job: r x (reward + fee)."""
        return self.r * (self.reward + self.fee_per_seat)

    @property
    def total(self) -> int:
        """Escrow for all ``count`` jobs, taken at posting."""
        return self.count * self.per_job


@dataclass(frozen=True)
class Balances:
    """An account's money as the marketplace sees it (payment-token base units)."""

    account: str
    wallet: int  # payment tokens in the account itself
    deposited: int  # internal marketplace balance: spendable for posts, withdrawable
    stake_credits: int  # stake-token credits (slash compensation), withdrawable
    allowance: int  # payment tokens the marketplace may pull


@dataclass(frozen=True)
class Deadlines:
    """Windows of a job in seconds: claim (r = 1: delivery), then commit, then reveal.

    Each must be at least the marketplace's minimum (``Client.params().min_windows``,
    default 120 s each, set per network) and at most ``MAX_WINDOW``; the defaults (600 s)
    leave a provider room on a 12 s chain. A challenge's re-execution round runs on the
    marketplace's minimums, not on these.

    >>> Deadlines(claim=120).commit
    600
    """

    claim: int = 600
    commit: int = 600
    reveal: int = 600

    def shorter_than(self, minimums: Deadlines) -> list[str]:
        """The windows below ``minimums``, e.g. ``['claim 60 s < 120 s']``.

        >>> Deadlines(claim=60).shorter_than(Deadlines(120, 120, 120))
        ['claim 60 s < 120 s']
        """
        return [f"{name} {mine} s < {least} s" for name, mine, least in
                zip(("claim", "commit", "reveal"), astuple(self), astuple(minimums)) if mine < least]


@dataclass(frozen=True)
class VerifiedResult:
    """A job's result bytes, checked against the digest the chain settled on.

    ``final`` is False while an r = 1 result can still be challenged.
    """

    job_id: int
    model_id: bytes
    status: JobStatus
    digest: bytes
    result: bytes
    providers: tuple[str, ...]  # who revealed exactly these bytes

    @property
    def final(self) -> bool:
        return self.status == JobStatus.FINALIZED

    @property
    def embedding(self) -> np.ndarray:
        """The decoded unit-norm float32 embedding (``client.encoding``)."""
        return decode_embedding(self.result)

    @property
    def answer(self) -> ChatAnswer:
        """The decoded answer of a chat job: ids, finish and text (``client.chat``)."""
        return ChatAnswer.decode(self.result)


@dataclass(frozen=True)
class TxResult:
    """A mined transaction sent by the SDK and the marketplace events it emitted."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    events: tuple[Event, ...]

    def of(self, kind: type[Event]) -> list:
        """The events of one type, e.g. ``tx.of(JobPosted)``."""
        return [e for e in self.events if isinstance(e, kind)]
