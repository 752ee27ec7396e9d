"""A Python model of the Marketplace, written from contracts/README.md (not from the Vyper).

The property test drives the real contract and this model side by side and
compares them after every step. Each action method either raises `Revert` with
the exact reason the contract must give (and then changes nothing: the caller
runs it on a copy) or applies the action and returns the events it must emit.

Single-provider (r = 1) pay settles lazily in payout buckets whose release
timing is the contract's business; the model keeps the aggregate per provider
and applies the `PayoutsReleased` events it observes, checking that nothing is
released before its job's challenge window ends and that everything is
released once every window is over.

Seats of r >= 2 jobs and of re-execution rounds are drawn by stake-weighted
sortition from a block hash, which the model cannot predict: a claim whose draw
is due is run with the `SeatDrawn` events the transaction emitted (`draws`),
and the model checks them (one per untaken seat of the round, in seat order,
each to a provider with weight for the job's model, or to nobody when no
provider has any) before applying the claim's rules to them. Without the
events (before sending), such a claim raises `Undetermined` with the revert
reasons the draw could lead to; a draw among fewer than two weighted providers
is predicted outright. r = 1: claim binds the seat, deliver from a later block.
"""

from dataclasses import dataclass, field

from eth_abi import encode
from eth_utils import keccak

BPS = 10_000
MAX_REDUNDANCY = 7
R_CHALLENGE = 3
MAX_WINDOW = 30 * 86_400
MAX_REWARD = 2**96 - 1
MAX_AMOUNT = 2**128 - 1
# Draw weight = bonded stake >> WEIGHT_SHIFT, capped at MAX_WEIGHT (sortition.vy).
WEIGHT_SHIFT = 16
MAX_WEIGHT = 2**96 - 1
MAX_MIN_DRAW_STAKE = 2**128 - 1
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_WORD = b"\x00" * 32

OPEN, DELIVERED, CHALLENGED, FINALIZED, UNRESOLVED, CANCELLED = range(6)
TERMINAL = (FINALIZED, UNRESOLVED, CANCELLED)
NO_COMMIT, NO_REVEAL, LOSING_DIGEST, LOST_CHALLENGE = 1, 2, 3, 4

# Status transitions a job may make between two observations (view statuses).
ALLOWED = {
    OPEN: {OPEN, DELIVERED, FINALIZED, UNRESOLVED, CANCELLED},
    DELIVERED: {DELIVERED, CHALLENGED, FINALIZED},
    CHALLENGED: {CHALLENGED, FINALIZED},
    FINALIZED: {FINALIZED},
    UNRESOLVED: {UNRESOLVED},
    CANCELLED: {CANCELLED},
}


class Revert(Exception):
    """The contract must revert with exactly this reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Undetermined(Exception):
    """The outcome hangs on a seat draw the model cannot predict: the transaction either
    succeeds (then rerun the model with its SeatDrawn events) or reverts with one of `reasons`."""

    def __init__(self, reasons=()):
        super().__init__(sorted(reasons))
        self.reasons = set(reasons)


def require(condition: bool, reason: str):
    if not condition:
        raise Revert(reason)


def seal_of(job_id: int, provider: str, result: bytes, salt: bytes) -> bytes:
    return keccak(encode(["uint256", "address", "bytes32", "bytes32"], [job_id, provider, keccak(result), salt]))


def draw_weight(bonded: int, floor: int, serving: bool) -> int:
    """A provider's draw weight: its bonded (free + locked) stake >> 16, 0 below the floor
    (min_draw_stake as of its last stake change or reweigh) or while it serves no model."""
    if not serving or bonded < floor:
        return 0
    return min(bonded >> WEIGHT_SHIFT, MAX_WEIGHT)


class DrawLog:
    """The SeatDrawn events of one transaction, consumed in order by the claims that drew."""

    def __init__(self, events):
        self.events = list(events)
        self.next = 0

    def take(self, job_id: int, seat: int) -> str:
        assert self.next < len(self.events), f"job {job_id} seat {seat}: a draw was due but not made"
        j, provider, s = self.events[self.next]
        assert (j, s) == (job_id, seat), f"drew job {j} seat {s}, the model expected job {job_id} seat {seat}"
        self.next += 1
        return provider

    def done(self):
        assert self.next == len(self.events), f"unexpected draws: {self.events[self.next:]}"


@dataclass
class Params:
    treasury: str
    owner: str
    fee_bps: int = 250
    collateral_bps: int = 50_000
    slash_client_bps: int = 3_000
    slash_honest_bps: int = 6_000
    challenge_window: int = 3_600
    unbond_delay: int = 3 * 86_400
    paused: bool = False
    min_windows: tuple = (120, 120, 120)  # claim, commit, reveal
    min_draw_stake: int = 10**18
    # Every treasury set so far, by epoch; the current one is the last.
    treasuries: list = field(default_factory=list)

    def __post_init__(self):
        self.treasuries = [self.treasury]


@dataclass
class Provider:
    registered: bool = False
    models: frozenset = frozenset()
    free: int = 0
    locked: int = 0
    unbonding: int = 0
    ready_at: int = 0
    # Unreleased r = 1 deliveries, in aggregate (their collateral is part of `locked`).
    pending_pay: int = 0
    pending_fees: int = 0
    pending_collateral: int = 0
    # Latest challenge deadline of any delivery: past it, every bucket is releasable.
    horizon: int = 0
    # Draw weight (draw_weight) and the min_draw_stake it was computed with: a new floor
    # applies at the provider's next stake change, slash, update_provider or reweigh
    # (None: a slash or unbond kept a lower weight than the current floor's formula gives).
    weight: int = 0
    floor: int | None = 10**18


@dataclass
class Seat:
    # The drawn provider (r = 1: the claimant); `claimed` once it took the seat.
    provider: str
    claimed: bool = False
    committed: bool = False
    revealed: bool = False
    word: bytes = ZERO_WORD


@dataclass
class Job:
    id: int
    client: str
    model: bytes
    r: int
    reward: int
    fee: int
    collateral: int
    posted_at: int
    windows: tuple
    # Settlement terms snapshotted at post (README: owner changes apply to later posts).
    slash_client_bps: int = 3_000
    slash_honest_bps: int = 6_000
    treasury: str = ZERO_ADDRESS
    treasury_epoch: int = 0
    status: int = OPEN
    seats: dict = field(default_factory=dict)
    ncommitted: int = 0
    nrevealed: int = 0
    # r = 1: the end of the challenge window once delivered.
    until: int = 0
    # r = 1: when the seat was claimed (delivery from a later block only).
    claimed_at: int = 0
    # Draw rounds: when the round's seats were last drawn (0: not yet).
    drawn_at: int = 0
    challenger: str = ZERO_ADDRESS
    challenged_at: int = 0
    # A re-execution round's windows: the protocol minimums when it was challenged.
    round_windows: tuple = (0, 0, 0)
    result_digest: bytes = ZERO_WORD
    # Collateral locked for this job over its life: the bound on its slashes.
    collateral_locked: int = 0

    def round(self) -> tuple[int, int]:
        return (1, R_CHALLENGE) if self.status == CHALLENGED else (0, self.r)

    def deadlines(self) -> tuple[int, int, int]:
        if self.status == CHALLENGED:
            start, windows = self.challenged_at, self.round_windows
        else:
            start, windows = self.posted_at, self.windows
        claim = start + windows[0]
        commit = claim + windows[1]
        return claim, commit, commit + windows[2]

    def round_seats(self) -> list:
        base, size = self.round()
        return list(range(base, base + size))

    def taken(self) -> list:
        """Seats of the current round that their provider took."""
        return [s for s in self.round_seats() if self.seats[s].claimed]

    def untaken(self) -> list:
        return [s for s in self.round_seats() if not self.seats[s].claimed]

    def seats_of(self, provider: str) -> list:
        """The seats `provider` took in the current round."""
        return [s for s in self.taken() if self.seats[s].provider == provider]

    def is_draw_round(self) -> bool:
        return self.r >= 2 or self.status == CHALLENGED

    def round_start(self) -> int:
        return self.challenged_at if self.status == CHALLENGED else self.posted_at

    def view_nclaimed(self) -> int:
        """job().nclaimed: taken seats of the round; a settled job counts every seat ever
        taken (a challenged r = 1 job: the delivery's seat 0 and the round's)."""
        taken = [s for s, seat in self.seats.items() if seat.claimed]
        if self.status == CHALLENGED:
            taken = [s for s in taken if s >= 1]
        return len(taken)

    def view_status(self, now: int) -> int:
        """An unchallenged delivery reads FINALIZED once its window is over."""
        if self.status == DELIVERED and now > self.until:
            return FINALIZED
        return self.status

    def bond(self) -> int:
        return (R_CHALLENGE + 1) * self.reward

    def escrow(self) -> int:
        if self.status == OPEN:
            return self.r * (self.reward + self.fee)
        if self.status == CHALLENGED:
            return self.r * (self.reward + self.fee) + self.bond()
        return 0

    def is_due(self, now: int) -> bool:
        """finalize must succeed: the permissionless action behind every deadline."""
        if self.status not in (OPEN, CHALLENGED):
            return False
        _, size = self.round()
        claim, commit, reveal = self.deadlines()
        if self.status == OPEN and not self.taken() and now > claim:
            return True
        if self.r == 1 and self.status == OPEN and now > claim:
            return True  # claimed, not delivered by the claim (delivery) deadline
        return self.nrevealed == size or now > reveal or (now > commit and self.nrevealed == self.ncommitted)


@dataclass
class Effects:
    """Events one successful transaction must emit (besides payout releases)."""

    finalized: list = field(default_factory=list)  # (job_id, status, digest, pay, refund, slashed)
    slashed: list = field(default_factory=list)  # (job_id, provider, seat, amount, reason)
    skipped: list = field(default_factory=list)  # (job_id, reason)
    job_ids: list = field(default_factory=list)
    shares: list = field(default_factory=list)  # (job_id, account, amount): SlashShareCredited, one per recipient
    bonds: list = field(default_factory=list)  # (job_id, challenger, amount): BondReturned
    drawn: list = field(default_factory=list)  # (job_id, provider, seat): SeatDrawn
    claimed: list = field(default_factory=list)  # (job_id, provider, seat): JobClaimed
    weights: list = field(default_factory=list)  # (provider, weight): WeightChanged


class Market:
    """The marketplace's documented behaviour, over plain Python state."""

    def __init__(self, owner: str, treasury: str, models: dict, accounts: list, funded: list):
        self.params = Params(treasury=treasury, owner=owner)
        # Accounts holding tokens and an allowance for the market; others can't be pulled from.
        self.funded = set(funded)
        self.models = dict(models)  # model_id -> active
        self.model_ids = list(models)  # registry order
        self.balances = {a: 0 for a in accounts}
        self.credits = {a: 0 for a in accounts}
        self.providers: dict[str, Provider] = {}
        self.jobs: dict[int, Job] = {}
        self.batch_sizes: dict[int, int] = {}
        self.next_batch_id = 1
        # Money across the contract's boundary, and what was slashed.
        self.token_in = 0
        self.token_out = 0
        self.slashes: list = []  # (job_id, provider, seat, amount, reason)
        self.finalized_events: dict[int, int] = {}

    # ------------------------------------------------------------ helpers

    def provider(self, account: str) -> Provider:
        """The provider record to change (created on first use)."""
        return self.providers.setdefault(account, Provider())

    def peek(self, account: str) -> Provider:
        """The provider record to read (a blank one for strangers)."""
        return self.providers.get(account) or Provider()

    def internal_total(self) -> int:
        """Everything the contract owes: ledgers, escrow, stake, unreleased r = 1 pay."""
        return (
            sum(self.balances.values())
            + sum(self.credits.values())
            + sum(j.escrow() for j in self.jobs.values())
            + sum(p.free + p.locked + p.unbonding + p.pending_pay + p.pending_fees for p in self.providers.values())
        )

    def job(self, job_id: int) -> Job:
        require(job_id in self.jobs, "jobs: unknown job")
        return self.jobs[job_id]

    def _collect(self, payer: str, amount: int):
        """Internal balance first, then transferFrom for the rest."""
        balance = self.balances.get(payer, 0)
        if balance >= amount:
            self.balances[payer] = balance - amount
        else:
            require(payer in self.funded, "erc20: insufficient allowance")
            self.balances[payer] = 0
            self.token_in += amount - balance

    def _lock(self, account: str, amount: int):
        p = self.provider(account)
        p.free -= amount
        p.locked += amount

    def _unlock(self, account: str, amount: int):
        p = self.provider(account)
        p.free += amount
        p.locked -= amount

    def _slash(self, fx: Effects, job: Job, seat: int, provider: str, reason: int) -> int:
        self.provider(provider).locked -= job.collateral
        self._reweigh(fx, provider, grow=False)
        record = (job.id, provider, seat, job.collateral, reason)
        self.slashes.append(record)
        fx.slashed.append(record)
        return job.collateral

    def _split_slash(self, fx: Effects, amount: int, job: Job, honest: list):
        """By the job's split: client share, honest share split evenly (to the client if
        there is no honest side), the job's treasury the rest including dust; each
        non-zero share credited with its own event."""
        if amount == 0:
            return
        to_client = amount * job.slash_client_bps // BPS
        to_honest = amount * job.slash_honest_bps // BPS
        shares = []
        if honest:
            each = to_honest // len(honest)
            shares += [(account, each) for account in honest]
            to_honest = each * len(honest)
        else:
            to_client += to_honest
            to_honest = 0
        shares += [(job.client, to_client), (job.treasury, amount - to_client - to_honest)]
        for account, share in shares:
            if share:
                self.credits[account] += share
                fx.shares.append((job.id, account, share))

    def _reweigh(self, fx: Effects, account: str, grow: bool = True):
        """Re-apply the draw rules to `account` after its bonded stake or models changed.
        A slash or an unbond request never raises the weight (grow=False: they must not need
        a new tree slot), which only matters after the owner lowered min_draw_stake."""
        p = self.provider(account)
        weight = draw_weight(p.free + p.locked, self.params.min_draw_stake, bool(p.models))
        if not grow and weight > p.weight:
            weight = p.weight
            p.floor = None  # the weight is no longer the formula's for any known floor
        else:
            p.floor = self.params.min_draw_stake
        if weight != p.weight:
            p.weight = weight
            fx.weights.append((account, weight))

    def drawable(self, model_id: bytes) -> dict:
        """Providers a draw for `model_id` may pick now (weights as of this block's start:
        each transaction is its own block), by weight."""
        return {a: p.weight for a, p in self.providers.items() if p.weight > 0 and model_id in p.models}

    def tree_total(self, model_id: bytes) -> int:
        """The total weight the contract's tree for `model_id` must hold."""
        return sum(p.weight for p in self.providers.values() if model_id in p.models)

    def _finalized(self, fx: Effects, job: Job, status: int, digest: bytes, pay: int, refund: int, slashed: int):
        self.finalized_events[job.id] = self.finalized_events.get(job.id, 0) + 1
        fx.finalized.append((job.id, status, digest, pay, refund, slashed))

    # ------------------------------------------------------------ posting

    def post(self, sender: str, model_id: bytes, inputs: list, r: int, reward: int, windows: tuple, t: int) -> Effects:
        p = self.params
        require(not p.paused, "params: paused")
        require(model_id in self.models, "models: unknown model")
        require(self.models[model_id], "models: inactive")
        require(len(inputs) > 0, "jobs: empty batch")
        require(1 <= r <= MAX_REDUNDANCY, "jobs: bad redundancy")
        require(1 <= reward <= MAX_REWARD, "jobs: bad reward")
        require(all(w >= m for w, m in zip(windows, p.min_windows)), "jobs: window too short")
        require(max(windows) <= MAX_WINDOW, "jobs: bad window")
        for item in inputs:
            require(len(item) > 0, "jobs: empty input")
        batch = self.next_batch_id
        self.next_batch_id += 1
        self.batch_sizes[batch] = len(inputs)
        fee = reward * p.fee_bps // BPS
        fx = Effects()
        for i in range(len(inputs)):
            job_id = (batch << 8) | i
            self.jobs[job_id] = Job(
                id=job_id,
                client=sender,
                model=model_id,
                r=r,
                reward=reward,
                fee=fee,
                collateral=reward * p.collateral_bps // BPS,
                posted_at=t,
                windows=tuple(windows),
                slash_client_bps=p.slash_client_bps,
                slash_honest_bps=p.slash_honest_bps,
                treasury=p.treasury,
                treasury_epoch=len(p.treasuries) - 1,
                seats={s: Seat(ZERO_ADDRESS) for s in range(1 + R_CHALLENGE if r == 1 else r)},
            )
            fx.job_ids.append(job_id)
        self._collect(sender, len(inputs) * r * (reward + fee))
        return fx

    def cancel(self, sender: str, job_id: int, t: int) -> Effects:
        job = self.job(job_id)
        require(job.client == sender, "jobs: not client")
        require(job.status == OPEN and not job.taken(), "jobs: already claimed")
        fx = Effects()
        self._cancel(fx, job)
        return fx

    def _cancel(self, fx: Effects, job: Job):
        refund = job.escrow()
        job.status = CANCELLED
        self.balances[job.client] += refund
        self._finalized(fx, job, CANCELLED, ZERO_WORD, 0, refund, 0)

    # ------------------------------------------------------------ claims and delivery

    def claim(self, sender: str, job_id: int, t: int, draws=None) -> Effects:
        """Strict claim: all or nothing (the caller runs it on a copy). `draws`: the
        transaction's SeatDrawn events as (job_id, provider, seat), once it succeeded."""
        fx = Effects()
        log = None if draws is None else DrawLog(draws)
        self._claim(fx, sender, job_id, t, log, strict=True)
        if log is not None:
            log.done()
        return fx

    def claim_many(self, sender: str, job_ids: list, t: int, draws=None) -> Effects:
        """Items that fail are skipped; a draw an item made stands even if it is skipped."""
        fx = Effects()
        log = None if draws is None else DrawLog(draws)
        for job_id in job_ids:
            try:
                self._claim(fx, sender, job_id, t, log, strict=False)
            except Revert as skip:
                fx.skipped.append((job_id, skip.reason))
        if log is not None:
            log.done()
        return fx

    def _claim_gate(self, job: Job, t: int) -> bool:
        """The checks before seats are looked at; returns whether a draw is due."""
        if job.status == OPEN:
            require(not self.params.paused, "params: paused")
        else:
            # Re-execution claims are settlement of existing work: never paused.
            require(job.status == CHALLENGED, "jobs: not claimable")
        require(t <= job.deadlines()[0], "jobs: claim deadline passed")
        if job.r == 1 and job.status == OPEN:
            require(not job.seats[0].claimed, "jobs: already claimed")
            return False
        # The seed is the parent block's hash: a later block than the post's (or challenge's).
        # Each transaction here is its own block, one second or more after the last.
        require(t > job.round_start(), "jobs: draw not ready")
        # Untaken seats are drawn again once half the minimum claim window has passed.
        return job.drawn_at == 0 or t > job.drawn_at + self.params.min_windows[0] // 2

    def draw_due(self, job_id: int, t: int) -> bool:
        """Whether a claim of `job_id` at t draws the round's untaken seats."""
        job = self.jobs.get(job_id)
        if job is None or not job.is_draw_round():
            return False
        try:
            return self._claim_gate(job, t)
        except Revert:
            return False

    def _take_check(self, sender: str, job: Job, seats: int):
        p = self.peek(sender)
        require(job.model in p.models, "staking: model not served")
        require(p.free >= seats * job.collateral, "staking: insufficient free stake")

    def check_claim(self, sender: str, job_id: int, t: int):
        """Raises Revert when the claim must fail; passes when it succeeds or, with a draw
        due, may succeed (the sender has weight for the model and stake for one seat)."""
        job = self.job(job_id)
        due = self._claim_gate(job, t)
        if job.r == 1 and job.status == OPEN:
            self._take_check(sender, job, 1)
        elif due and len(self.drawable(job.model)) >= 2:
            require(sender in self.drawable(job.model), "jobs: not drawn")
            self._take_check(sender, job, 1)
        else:
            mine = [s for s in job.untaken() if self._drawn_to(job, s, due) == sender]
            require(mine, "jobs: not drawn")
            self._take_check(sender, job, len(mine))

    def _drawn_to(self, job: Job, s: int, due: bool) -> str:
        """Seat s's provider after a due draw that has at most one candidate."""
        if not due:
            return job.seats[s].provider
        candidates = list(self.drawable(job.model))
        return candidates[0] if candidates else ZERO_ADDRESS

    def _claim(self, fx: Effects, sender: str, job_id: int, t: int, log, strict: bool):
        job = self.job(job_id)
        due = self._claim_gate(job, t)
        if job.r == 1 and job.status == OPEN:
            self._take_check(sender, job, 1)
            job.seats[0] = Seat(sender, claimed=True)
            job.claimed_at = t
            self._take(fx, sender, job, [0], announce=False)  # an r = 1 claim logs no JobClaimed
            return
        if due:
            self._draw(fx, sender, job, t, log, strict)
        mine = [s for s in job.untaken() if job.seats[s].provider == sender]
        require(mine, "jobs: not drawn")
        self._take_check(sender, job, len(mine))
        for s in mine:
            job.seats[s].claimed = True
        self._take(fx, sender, job, mine)

    def _take(self, fx: Effects, sender: str, job: Job, seats: list, announce=True):
        job.collateral_locked += len(seats) * job.collateral
        self._lock(sender, len(seats) * job.collateral)
        if announce:
            fx.claimed += [(job.id, sender, s) for s in seats]

    def _draw(self, fx: Effects, sender: str, job: Job, t: int, log, strict: bool):
        """Draw every untaken seat of the round: each goes to a provider with weight for the
        job's model (with replacement), or to nobody when no provider has any."""
        candidates = self.drawable(job.model)
        untaken = job.untaken()
        if log is None and len(candidates) >= 2:
            if not strict:
                raise Undetermined()
            # A reverted claim undoes its draw: all the sender learns is the reason.
            require(sender in candidates, "jobs: not drawn")
            reasons = {"jobs: not drawn"}
            if self.peek(sender).free < len(untaken) * job.collateral:
                reasons.add("staking: insufficient free stake")
            raise Undetermined(reasons)
        for s in untaken:
            if log is None:
                provider = next(iter(candidates), ZERO_ADDRESS)
            else:
                provider = log.take(job.id, s)
                if candidates:
                    assert provider in candidates, f"job {job.id} seat {s} drawn to {provider}, which has no weight for its model"
                else:
                    assert provider == ZERO_ADDRESS, f"job {job.id} seat {s} drawn to {provider} while nobody has weight"
            job.seats[s] = Seat(provider)
            fx.drawn.append((job.id, provider, s))
        job.drawn_at = t

    def deliver(self, sender: str, job_id: int, result: bytes, t: int) -> Effects:
        self._deliver(sender, job_id, result, t)
        return Effects()

    def deliver_many(self, sender: str, job_ids: list, results: list, t: int) -> Effects:
        require(len(job_ids) == len(results), "jobs: length mismatch")
        fx = Effects()
        for job_id, result in zip(job_ids, results):
            try:
                self._deliver(sender, job_id, result, t)
            except Revert as skip:
                fx.skipped.append((job_id, skip.reason))
        return fx

    def check_deliver(self, sender: str, job_id: int, result: bytes, t: int) -> Job:
        job = self.job(job_id)
        require(job.r == 1, "jobs: not single-provider")
        require(job.status == OPEN, "jobs: not open")
        require(not self.params.paused, "params: paused")
        require(job.seats[0].claimed and job.seats[0].provider == sender, "jobs: not your seat")
        # A delivery sent with its claim could be copied whole from the mempool (a later block:
        # here each transaction is its own block, one second or more after the last).
        require(t > job.claimed_at, "jobs: claimed in this block")
        require(t <= job.deadlines()[0], "jobs: claim deadline passed")
        require(len(result) > 0, "jobs: empty result")
        return job

    def _deliver(self, sender: str, job_id: int, result: bytes, t: int):
        job = self.check_deliver(sender, job_id, result, t)
        p = self.provider(sender)
        digest = keccak(result)
        job.status = DELIVERED
        job.seats[0] = Seat(sender, claimed=True, committed=True, revealed=True, word=digest)
        job.ncommitted = job.nrevealed = 1
        job.until = t + self.params.challenge_window
        job.result_digest = digest
        # The collateral was locked by the claim; it now waits in the payout bucket.
        p.pending_pay += job.reward
        p.pending_fees += job.fee
        p.pending_collateral += job.collateral
        p.horizon = max(p.horizon, job.until)

    # ------------------------------------------------------------ commit / reveal

    def _active_seats(self, sender: str, job_id: int) -> tuple[Job, list]:
        """The job and the seats the sender took in its current round (commit and reveal act
        on all of them)."""
        job = self.job(job_id)
        require(job.status in (OPEN, CHALLENGED), "jobs: not active")
        # r = 1 has no commit-reveal (nobody to copy from): the claimant delivers, and its pay
        # waits out the challenge window. (The reason string is the model's choice.)
        require(not (job.r == 1 and job.status == OPEN), "jobs: use deliver")
        mine = job.seats_of(sender)
        require(mine, "jobs: not assigned")
        return job, mine

    def check_commit(self, sender: str, job_id: int, seal: bytes, t: int) -> tuple[Job, list]:
        """The seal goes to every seat the sender holds that is not committed yet (a seat a
        redraw gave it after its commit commits on its own)."""
        job, mine = self._active_seats(sender, job_id)
        mine = [s for s in mine if not job.seats[s].committed]
        require(mine, "jobs: already committed")
        require(t <= job.deadlines()[1], "jobs: commit deadline passed")
        require(seal != ZERO_WORD, "jobs: empty seal")
        return job, mine

    def commit(self, sender: str, job_ids: list, seals: list, t: int) -> Effects:
        """commit / commit_many: all or nothing (the caller runs it on a copy)."""
        require(len(job_ids) == len(seals), "jobs: length mismatch")
        for job_id, seal in zip(job_ids, seals):
            job, mine = self.check_commit(sender, job_id, seal, t)
            for s in mine:
                job.seats[s].committed = True
                job.seats[s].word = seal
            job.ncommitted += len(mine)
        return Effects()

    def check_reveal(self, sender: str, job_id: int, result: bytes, salt: bytes, t: int) -> tuple[Job, list]:
        """Opens every committed, unrevealed seat of the sender whose seal this opening matches
        (seats committed at different times may hold different seals)."""
        job, mine = self._active_seats(sender, job_id)
        mine = [s for s in mine if job.seats[s].committed]
        require(mine, "jobs: not committed")
        mine = [s for s in mine if not job.seats[s].revealed]
        require(mine, "jobs: already revealed")
        _, size = job.round()
        _, commit_dl, reveal_dl = job.deadlines()
        require(job.ncommitted == size or t > commit_dl, "jobs: reveal not open")
        require(t <= reveal_dl, "jobs: reveal deadline passed")
        seal = seal_of(job_id, sender, result, salt)
        opened = [s for s in mine if job.seats[s].word == seal]
        require(opened, "jobs: seal mismatch")
        return job, opened

    def reveal(self, sender: str, job_ids: list, results: list, salts: list, t: int) -> Effects:
        """reveal / reveal_many: all or nothing (the caller runs it on a copy)."""
        require(len(job_ids) == len(results) == len(salts), "jobs: length mismatch")
        for job_id, result, salt in zip(job_ids, results, salts):
            job, mine = self.check_reveal(sender, job_id, result, salt, t)
            for s in mine:
                job.seats[s].revealed = True
                job.seats[s].word = keccak(result)
            job.nrevealed += len(mine)
        return Effects()

    # ------------------------------------------------------------ settlement

    def finalize(self, job_ids: list, t: int, strict: bool) -> Effects:
        fx = Effects()
        for job_id in job_ids:
            try:
                self._finalize(fx, job_id, t)
            except Revert as skip:
                if strict:
                    raise
                fx.skipped.append((job_id, skip.reason))
        return fx

    def _finalize(self, fx: Effects, job_id: int, t: int):
        job = self.job(job_id)
        status = job.view_status(t)
        require(status not in TERMINAL, "jobs: already settled")
        require(status != DELIVERED, "jobs: challenge window open")
        claim_dl, _, _ = job.deadlines()
        if job.status == OPEN and not job.taken() and t > claim_dl:
            self._cancel(fx, job)
            return
        require(job.is_due(t), "jobs: not finalizable yet")
        if job.status == OPEN:
            self._settle_round(fx, job)
        else:
            self._settle_challenge(fx, job)

    def _majority(self, job: Job, base: int, size: int):
        digests = [job.seats[s].word for s in range(base, base + size) if job.seats[s].revealed]
        for d in digests:
            if 2 * digests.count(d) > size:
                return d
        return None

    def _judge(self, fx: Effects, job: Job, s: int, majority, standing) -> tuple[int, int]:
        """Settle seat s: (pay, slashed). Paid for the standing digest, released when there is
        no majority to lose against, slashed otherwise."""
        seat = job.seats[s]
        if seat.revealed:
            if seat.word == standing:
                self._unlock(seat.provider, job.collateral)
                self.balances[seat.provider] += job.reward
                return job.reward, 0
            if majority is None:
                self._unlock(seat.provider, job.collateral)
                return 0, 0
            reason = LOSING_DIGEST
        else:
            reason = NO_REVEAL if seat.committed else NO_COMMIT
        return 0, self._slash(fx, job, s, seat.provider, reason)

    def _settle_round(self, fx: Effects, job: Job):
        majority = self._majority(job, 0, job.r)
        paid = slashed = 0
        winners = []
        for s in job.taken():  # per seat: a provider holding two is paid (or slashed) twice
            pay, cut = self._judge(fx, job, s, majority, majority)
            paid += pay
            slashed += cut
            if pay:
                winners.append(job.seats[s].provider)
        refund = (job.r - len(winners)) * (job.reward + job.fee)
        fees = len(winners) * job.fee
        assert paid + fees + refund == job.escrow(), "settle: pay + fees + refund != escrow"
        job.status = FINALIZED if majority is not None else UNRESOLVED
        if majority is not None:
            job.result_digest = majority
        self.balances[job.client] += refund
        self.balances[job.treasury] += fees
        self._split_slash(fx, slashed, job, winners)
        self._finalized(fx, job, job.status, majority or ZERO_WORD, paid, refund, slashed)

    def _settle_challenge(self, fx: Effects, job: Job):
        delivered = job.seats[0].word
        majority = self._majority(job, 1, R_CHALLENGE)
        convicted = majority is not None and majority != delivered
        standing = majority if convicted else delivered
        paid = slashed = 0
        for s in job.taken():
            pay, cut = self._judge(fx, job, s, majority, standing)
            paid += pay
            slashed += cut
        escrow = job.escrow()
        bond_left = job.bond() - paid
        provider = job.seats[0].provider
        refund = fees = 0
        if convicted:
            slashed += self._slash(fx, job, 0, provider, LOST_CHALLENGE)
            refund = job.reward + job.fee
            honest = [job.challenger]
        else:
            self._unlock(provider, job.collateral)
            self.balances[provider] += 2 * job.reward
            paid += 2 * job.reward
            bond_left -= job.reward
            fees = job.fee
            honest = [provider]
        assert paid + fees + refund + bond_left == escrow, "settle: pay + fees + refund + bond != escrow + bond"
        job.status = FINALIZED
        job.result_digest = standing
        self.balances[job.challenger] += bond_left
        fx.bonds.append((job.id, job.challenger, bond_left))
        self.balances[job.client] += refund
        self.balances[job.treasury] += fees
        self._split_slash(fx, slashed, job, honest)
        self._finalized(fx, job, FINALIZED, standing, paid, refund, slashed)

    def check_challenge(self, job_id: int, t: int) -> Job:
        job = self.job(job_id)
        require(job.status == DELIVERED, "jobs: not challengeable")
        require(t <= job.until, "jobs: challenge window closed")
        return job

    def challenge(self, sender: str, job_id: int, t: int) -> Effects:
        job = self.check_challenge(job_id, t)
        provider = self.provider(job.seats[0].provider)
        provider.pending_pay -= job.reward
        provider.pending_fees -= job.fee
        provider.pending_collateral -= job.collateral
        job.status = CHALLENGED
        # Seat 0 keeps the delivery; the round's seats 1..3 are drawn by a later claim (the
        # original provider weighs like anyone).
        job.ncommitted = job.nrevealed = 0
        job.drawn_at = 0
        job.challenger = sender
        job.challenged_at = t
        job.round_windows = self.params.min_windows
        self._collect(sender, job.bond())
        return Effects()

    # ------------------------------------------------------------ staking

    def register(self, sender: str, model_ids: list, price: int, update: bool) -> Effects:
        p = self.provider(sender)
        if update:
            require(p.registered, "staking: not registered")
        else:
            require(not p.registered, "staking: already registered")
        require(price <= MAX_AMOUNT, "staking: price too large")
        for model_id in model_ids:
            require(model_id in self.models, "models: unknown model")
            require(self.models[model_id], "models: inactive")
        p.registered = True
        p.models = frozenset(model_ids)
        fx = Effects()
        self._reweigh(fx, sender)
        return fx

    def stake(self, sender: str, amount: int) -> Effects:
        p = self.provider(sender)
        require(p.registered, "staking: not registered")
        require(amount > 0, "staking: zero amount")
        # What a provider holds is capped, so that no 128-bit field can overflow later.
        require(p.free + p.locked + p.unbonding + amount <= MAX_AMOUNT, "staking: amount too large")
        p.free += amount
        self.token_in += amount
        fx = Effects()
        self._reweigh(fx, sender)
        return fx

    def request_unbond(self, sender: str, amount: int, t: int) -> Effects:
        p = self.provider(sender)
        require(amount > 0, "staking: zero amount")
        require(amount <= p.free, "staking: insufficient free stake")
        p.free -= amount
        p.unbonding += amount
        p.ready_at = t + self.params.unbond_delay
        fx = Effects()
        self._reweigh(fx, sender, grow=False)
        return fx

    def reweigh(self, sender: str, account: str) -> Effects:
        """Anyone re-applies the current min_draw_stake to `account`'s weight."""
        fx = Effects()
        self._reweigh(fx, account)
        return fx

    def withdraw_stake(self, sender: str, t: int) -> Effects:
        p = self.provider(sender)
        require(p.unbonding > 0, "staking: nothing unbonding")
        require(t >= p.ready_at, "staking: unbond delay not passed")
        self.token_out += p.unbonding
        p.unbonding = p.ready_at = 0
        return Effects()

    # ------------------------------------------------------------ accounting and payouts

    def deposit(self, sender: str, amount: int) -> Effects:
        require(amount > 0, "accounting: zero amount")
        self.balances[sender] += amount
        self.token_in += amount
        return Effects()

    def withdraw(self, sender: str) -> tuple[int, int]:
        """Collect both ledgers (after the caller's releases were applied)."""
        pay, stake = self.balances[sender], self.credits[sender]
        require(pay + stake > 0, "accounting: nothing to withdraw")
        self.balances[sender] = self.credits[sender] = 0
        self.token_out += pay + stake
        return pay, stake

    def withdraw_outcome(self, sender: str, t: int) -> str:
        """'ok', 'revert', or 'either' when it hangs on whether a payout bucket is released."""
        if self.balances[sender] + self.credits[sender] > 0:
            return "ok"
        p = self.providers.get(sender)
        if p is None or p.pending_pay + p.pending_fees + p.pending_collateral == 0:
            return "revert"
        return "ok" if self.release_certain(sender, t) else "either"

    def release_certain(self, account: str, t: int) -> bool:
        """Past every challenge deadline of its deliveries, every bucket must be released."""
        return t > self.peek(account).horizon

    def apply_release(self, account: str, pay: int, fees: int, collateral: int, treasury: str):
        p = self.provider(account)
        assert pay <= p.pending_pay and fees <= p.pending_fees and collateral <= p.pending_collateral, (
            f"release of {account} exceeds its pending payouts"
        )
        # Fees go to a treasury snapshotted by one of the provider's deliveries (the bucket's
        # oldest), never to one set after all of them were posted.
        epochs = [j.treasury_epoch for j in self.jobs.values() if j.status == DELIVERED and j.seats[0].provider == account]
        assert epochs and treasury in self.params.treasuries[min(epochs):max(epochs) + 1], f"fees of {account} to {treasury}"
        p.pending_pay -= pay
        p.pending_fees -= fees
        p.pending_collateral -= collateral
        self.balances[account] += pay
        self.balances[treasury] += fees
        self._unlock(account, collateral)

    def unmatured(self, account: str, now: int) -> tuple[int, int, int]:
        """(pay, fees, collateral) of deliveries still inside their challenge window."""
        jobs = [j for j in self.jobs.values() if j.status == DELIVERED and j.seats[0].provider == account and now <= j.until]
        return sum(j.reward for j in jobs), sum(j.fee for j in jobs), sum(j.collateral for j in jobs)

    # ------------------------------------------------------------ owner

    def set_param(self, sender: str, name: str, value) -> Effects:
        require(sender == self.params.owner, "ownable: caller is not the owner")
        p = self.params
        if name == "fee_bps":
            require(value <= 1_000, "params: fee too high")
        elif name == "collateral_bps":
            require(10_000 <= value <= 100_000, "params: collateral out of bounds")
        elif name == "slash_split":
            require(sum(value) <= BPS, "params: split exceeds 100%")
            p.slash_client_bps, p.slash_honest_bps = value
            return Effects()
        elif name == "min_windows":
            require(all(10 <= w <= 86_400 for w in value), "params: window out of bounds")
            p.min_windows = tuple(value)
            return Effects()
        elif name == "min_draw_stake":
            require(value <= MAX_MIN_DRAW_STAKE, "params: stake out of bounds")
        elif name == "challenge_window":
            require(60 <= value <= 7 * 86_400, "params: window out of bounds")
        elif name == "unbond_delay":
            require(60 <= value <= 30 * 86_400, "params: delay out of bounds")
        elif name == "treasury":
            require(value != ZERO_ADDRESS, "params: zero treasury")
            p.treasuries.append(value)
        elif name == "model_active":
            model_id, active = value
            require(model_id in self.models, "models: unknown model")
            self.models[model_id] = active
            return Effects()
        setattr(p, name, value)
        return Effects()
