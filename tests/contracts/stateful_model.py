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


def require(condition: bool, reason: str):
    if not condition:
        raise Revert(reason)


def seal_of(job_id: int, provider: str, result: bytes, salt: bytes) -> bytes:
    return keccak(encode(["uint256", "address", "bytes32", "bytes32"], [job_id, provider, keccak(result), salt]))


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


@dataclass
class Seat:
    provider: str
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
    nclaimed: int = 0
    ncommitted: int = 0
    nrevealed: int = 0
    until: int = 0
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

    def seat_of(self, provider: str):
        base, _ = self.round()
        for s in range(base, base + self.nclaimed):
            if self.seats[s].provider == provider:
                return s
        return None

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
        if self.status == OPEN and self.nclaimed == 0 and now > claim:
            return True
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
        require(job.status == OPEN and job.nclaimed == 0, "jobs: already claimed")
        fx = Effects()
        self._cancel(fx, job)
        return fx

    def _cancel(self, fx: Effects, job: Job):
        refund = job.escrow()
        job.status = CANCELLED
        self.balances[job.client] += refund
        self._finalized(fx, job, CANCELLED, ZERO_WORD, 0, refund, 0)

    # ------------------------------------------------------------ claims and delivery

    def claim(self, sender: str, job_id: int, t: int) -> Effects:
        self._claim(sender, job_id, t)
        return Effects()

    def claim_many(self, sender: str, job_ids: list, t: int) -> Effects:
        fx = Effects()
        for job_id in job_ids:
            try:
                self._claim(sender, job_id, t)
            except Revert as skip:
                fx.skipped.append((job_id, skip.reason))
        return fx

    def check_claim(self, sender: str, job_id: int, t: int) -> Job:
        job = self.job(job_id)
        if job.status == OPEN:
            require(job.r != 1, "jobs: use deliver")
            require(not self.params.paused, "params: paused")
        else:
            require(job.status == CHALLENGED, "jobs: not claimable")
        base, size = job.round()
        require(t <= job.deadlines()[0], "jobs: claim deadline passed")
        require(job.nclaimed < size, "jobs: no free seat")
        require(job.seat_of(sender) is None, "jobs: already assigned")
        require(not (base == 1 and job.seats[0].provider == sender), "jobs: original provider")
        p = self.peek(sender)
        require(job.model in p.models, "staking: model not served")
        require(p.free >= job.collateral, "staking: insufficient free stake")
        return job

    def _claim(self, sender: str, job_id: int, t: int):
        job = self.check_claim(sender, job_id, t)
        base, _ = job.round()
        job.seats[base + job.nclaimed] = Seat(sender)
        job.nclaimed += 1
        job.collateral_locked += job.collateral
        self._lock(sender, job.collateral)

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
        require(job.status == OPEN, "jobs: not claimable")
        require(not self.params.paused, "params: paused")
        require(t <= job.deadlines()[0], "jobs: claim deadline passed")
        require(len(result) > 0, "jobs: empty result")
        p = self.peek(sender)
        require(job.model in p.models, "staking: model not served")
        require(p.free >= job.collateral, "staking: insufficient free stake")
        return job

    def _deliver(self, sender: str, job_id: int, result: bytes, t: int):
        job = self.check_deliver(sender, job_id, result, t)
        p = self.provider(sender)
        digest = keccak(result)
        job.status = DELIVERED
        job.seats[0] = Seat(sender, committed=True, revealed=True, word=digest)
        job.nclaimed = job.ncommitted = job.nrevealed = 1
        job.until = t + self.params.challenge_window
        job.result_digest = digest
        job.collateral_locked += job.collateral
        self._lock(sender, job.collateral)
        p.pending_pay += job.reward
        p.pending_fees += job.fee
        p.pending_collateral += job.collateral
        p.horizon = max(p.horizon, job.until)

    # ------------------------------------------------------------ commit / reveal

    def _active_seat(self, sender: str, job_id: int) -> tuple[Job, int]:
        job = self.job(job_id)
        require(job.status in (OPEN, CHALLENGED), "jobs: not active")
        s = job.seat_of(sender)
        require(s is not None, "jobs: not assigned")
        return job, s

    def check_commit(self, sender: str, job_id: int, seal: bytes, t: int) -> tuple[Job, int]:
        job, s = self._active_seat(sender, job_id)
        require(not job.seats[s].committed, "jobs: already committed")
        require(t <= job.deadlines()[1], "jobs: commit deadline passed")
        require(seal != ZERO_WORD, "jobs: empty seal")
        return job, s

    def commit(self, sender: str, job_ids: list, seals: list, t: int) -> Effects:
        """commit / commit_many: all or nothing (the caller runs it on a copy)."""
        require(len(job_ids) == len(seals), "jobs: length mismatch")
        for job_id, seal in zip(job_ids, seals):
            job, s = self.check_commit(sender, job_id, seal, t)
            job.seats[s].committed = True
            job.seats[s].word = seal
            job.ncommitted += 1
        return Effects()

    def check_reveal(self, sender: str, job_id: int, result: bytes, salt: bytes, t: int) -> tuple[Job, int]:
        job, s = self._active_seat(sender, job_id)
        seat = job.seats[s]
        require(seat.committed, "jobs: not committed")
        require(not seat.revealed, "jobs: already revealed")
        _, size = job.round()
        _, commit_dl, reveal_dl = job.deadlines()
        require(job.ncommitted == size or t > commit_dl, "jobs: reveal not open")
        require(t <= reveal_dl, "jobs: reveal deadline passed")
        require(seal_of(job_id, sender, result, salt) == seat.word, "jobs: seal mismatch")
        return job, s

    def reveal(self, sender: str, job_ids: list, results: list, salts: list, t: int) -> Effects:
        """reveal / reveal_many: all or nothing (the caller runs it on a copy)."""
        require(len(job_ids) == len(results) == len(salts), "jobs: length mismatch")
        for job_id, result, salt in zip(job_ids, results, salts):
            job, s = self.check_reveal(sender, job_id, result, salt, t)
            job.seats[s].revealed = True
            job.seats[s].word = keccak(result)
            job.nrevealed += 1
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
        if job.status == OPEN and job.nclaimed == 0 and t > claim_dl:
            self._cancel(fx, job)
            return
        require(job.is_due(t), "jobs: not finalizable yet")
        if job.status == OPEN:
            self._settle_round(fx, job)
        else:
            self._settle_challenge(fx, job)

    def _majority(self, job: Job, base: int, size: int):
        digests = [job.seats[s].word for s in range(base, base + job.nclaimed) if job.seats[s].revealed]
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
        for s in range(job.nclaimed):
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
        for k in range(job.nclaimed):
            pay, cut = self._judge(fx, job, 1 + k, majority, standing)
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
        job.nclaimed = job.ncommitted = job.nrevealed = 0
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
        return Effects()

    def stake(self, sender: str, amount: int) -> Effects:
        p = self.provider(sender)
        require(p.registered, "staking: not registered")
        require(amount > 0, "staking: zero amount")
        # What a provider holds is capped, so that no 128-bit field can overflow later.
        require(p.free + p.locked + p.unbonding + amount <= MAX_AMOUNT, "staking: amount too large")
        p.free += amount
        self.token_in += amount
        return Effects()

    def request_unbond(self, sender: str, amount: int, t: int) -> Effects:
        p = self.provider(sender)
        require(amount > 0, "staking: zero amount")
        require(amount <= p.free, "staking: insufficient free stake")
        p.free -= amount
        p.unbonding += amount
        p.ready_at = t + self.params.unbond_delay
        return Effects()

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
