"""Property tests of the marketplace: clients, providers, keepers and the owner act at random
on ape's embedded chain while a Python model (stateful_model.py) predicts every outcome.

Every call either succeeds with exactly the events the model predicts, or reverts with exactly
the reason it predicts (a reverted call changes nothing). After every step the state the step
changed is read from the chain in one call (stateful_lens.py, contracts/mocks/MarketLens.vy)
and every invariant of ARCHITECTURE.md / contracts/README.md is checked: the chain matches the
model, solvency, conservation, settle-once, allowed transitions, seal binding, slash bounds,
collateral cover, r = 1 payouts never released early, and finalize succeeding for every job that
is due (recovery never reverts). Settlement terms are immutable once posted: the model settles
each job on the split and treasury of its post while the owner keeps changing them. At the end of each example the whole state is read and checked,
which catches a write the model did not predict. Reentrancy: test_reentrancy.py.

Drawn seats: the model cannot predict a draw (a block hash seeds it), so a claim that draws is
sent first and the model then checks and applies the SeatDrawn events it emitted: every untaken
seat of the round drawn, each to a provider with weight for the job's model (never one that
stopped serving it), and a strict claim that reverted did so for a reason the draw allows.
Weights: draw_weight(p) of every provider is the model's (bonded stake >> 16 above the floor
in force at its last stake change, 0 while serving no model), each model's tree (read from
storage) totals the weights of the providers serving it, and no seat is ever taken by a
provider other than the one last drawn for it.

Run size: VERINFER_PROPERTY_EXAMPLES (default 200) x VERINFER_PROPERTY_STEPS (default 20).
"""

import collections
import copy
import dataclasses
import os
import time
from types import SimpleNamespace

import ape
import pytest
from ape.exceptions import ContractLogicError
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

import stateful_model as M
from market_helpers import draw_seats
from stateful_lens import Trees, read_state, storage_layout

EXAMPLES = int(os.environ.get("VERINFER_PROPERTY_EXAMPLES", "200"))
STEPS = int(os.environ.get("VERINFER_PROPERTY_STEPS", "20"))

TEST_MODEL_ID = keccak(text="verinfer-test-model")
OTHER_MODEL_ID = keccak(text="verinfer-other-model")
UNKNOWN_MODEL_ID = keccak(text="verinfer-unknown-model")
STAKE = 25 * 10**18
# Odd small rewards exercise the rounding of fees, collateral and slash splits.
REWARDS = [1, 3, 999, 10**18, 10**18 + 7]
# The world runs with minimum windows of 12 s (a fast chain); 12 is the boundary.
MIN_WINDOWS = (12, 12, 12)
WINDOWS = [600, 600, 40, 12]
MAX_JOBS = 60  # the lens reads at most 96
BATCH = 4
# How often each call succeeded or reverted with each reason, printed at the end (pytest -s).
OUTCOMES = collections.Counter()

# One defect injected into an otherwise valid post.
POST_DEFECTS = [
    ("r", 0), ("r", 8), ("reward", 0), ("reward", 2**96), ("windows", (0, 600, 600)), ("windows", (600, 11, 600)),
    ("windows", (600, 600, 30 * 86_400 + 1)), ("inputs", [b"ok", b""]), ("inputs", []),
    ("model_id", UNKNOWN_MODEL_ID),
]
PARAM_VALUES = {
    "fee_bps": [250, 0, 1_000, 1_001],
    "collateral_bps": [50_000, 10_000, 100_000, 9_999, 100_001],
    "slash_split": [(3_000, 6_000), (10_000, 0), (0, 10_000), (2_500, 2_500), (5_000, 5_001)],
    "challenge_window": [60, 3_600, 59, 7 * 86_400 + 1],
    "unbond_delay": [60, 3 * 86_400, 59, 30 * 86_400 + 1],
    "paused": [False, True],
    "min_windows": [MIN_WINDOWS, (120, 120, 120), (40, 12, 600), (9, 12, 12), (12, 12, 86_401)],
    # STAKE + 1: the world's providers fall below the floor at their next stake change / reweigh.
    "min_draw_stake": [10**18, 0, STAKE + 1, M.MAX_MIN_DRAW_STAKE, M.MAX_MIN_DRAW_STAKE + 1],
}


def truth(job_id: int) -> bytes:
    """What an honest provider computes for a job."""
    return b"embedding of job %d" % job_id


def forgery(job_id: int) -> bytes:
    return b"forged result %d" % job_id


def salt_of(job_id: int, provider: str) -> bytes:
    return keccak(b"%d" % job_id + provider.encode())


@pytest.fixture(scope="module")
def world(project, owner, treasury, clients, providers, outsider, chain):
    """A fresh marketplace: providers[0..3] serve the test model, providers[4] only another
    model, providers[5] is unregistered; every client, provider and the outsider hold tokens
    and approved the market. The clock is moved far ahead of the wall clock so that every
    block is exactly one second after the previous one (the model relies on it)."""
    token = owner.deploy(project.TestToken, "Verinfer Test", "VIT")
    market = owner.deploy(project.Marketplace, token, token, treasury)
    lens = owner.deploy(project.MarketLens)
    for model_id in (TEST_MODEL_ID, OTHER_MODEL_ID):
        market.register_model(model_id, "model", keccak(model_id), 1, sender=owner)
    for acct in [*clients, *providers, outsider]:
        token.mint(acct, 10**30, sender=acct)
        token.approve(market, 2**256 - 1, sender=acct)
    for acct in [*providers, outsider]:
        token.mint(acct, 2**129, sender=acct)  # enough to stake up to the cap
    serving = {p: [TEST_MODEL_ID] for p in providers[:4]}
    serving[providers[4]] = [OTHER_MODEL_ID]
    for p, models in serving.items():
        market.register(models, 1, sender=p)
        market.stake(STAKE, sender=p)
    market.set_min_windows(*MIN_WINDOWS, sender=owner)
    chain.mine(timestamp=int(time.time()) + 10**7)
    return SimpleNamespace(
        token=token,
        market=market,
        lens=lens,
        owner=str(owner),
        treasury=str(treasury),
        clients=[str(c) for c in clients],
        providers=[str(p) for p in providers],
        outsider=str(outsider),
        # Everyone who may stake: the outsider can register too.
        stakers=[str(p) for p in [*providers, outsider]],
        accounts={str(a): a for a in [owner, treasury, *clients, *providers, outsider]},
        serving={str(p): frozenset(m) for p, m in serving.items()},
        start=chain.blocks.head.timestamp,
        # The sortition trees, read from storage: models by registry index.
        trees=Trees(chain, market, storage_layout(project.path)),
        model_index={TEST_MODEL_ID: 0, OTHER_MODEL_ID: 1},
    )


class MarketMachine(RuleBasedStateMachine):
    """One example: a fresh snapshot of `world`, random actions, checks after every step."""

    world = None  # set by the test
    chain = None

    def __init__(self):
        super().__init__()
        w = self.world
        self.snapshot = self.chain.snapshot()
        self.market = w.market
        self.everyone = list(w.accounts)
        self.model = M.Market(
            owner=w.owner,
            treasury=w.treasury,
            models={TEST_MODEL_ID: True, OTHER_MODEL_ID: True},
            accounts=self.everyone,
            funded=[*w.clients, *w.providers, w.outsider],
        )
        for p, models in w.serving.items():
            self.model.register(p, list(models), 1, update=False)
            self.model.stake(p, STAKE)
        self.model.set_param(w.owner, "min_windows", MIN_WINDOWS)
        self.now = w.start
        # What each provider committed: (job, provider) -> (result, salt); None, None for a copied seal.
        self.memory = {}
        # Independent records for the invariants.
        self.sent_seals = {}  # (job, seat) -> (provider, seal) as sent
        self.finalized_seen = {}  # job -> JobFinalized events seen on chain
        self.slashes_seen = []  # ProviderSlashed events seen on chain
        self.last_status = {}
        self.terminal_state = {}
        self.terminal_seats = {}
        self.known_due = set()
        # The provider each seat of a draw round was last drawn for (SeatDrawn), and how many
        # seats each provider took: a taken seat must be drawn to its taker.
        self.drawn_seen = {}
        # r = 1 jobs whose claimant went offline after claiming.
        self.abandoned = set()
        # What the current step changed in the model: (accounts, providers, {job: seats}).
        self.touched = (set(), set(), {})
        self._clean = True

    # ------------------------------------------------------------ plumbing

    def _acct(self, address: str):
        return self.world.accounts[address]

    def _act(self, action, method, args, sender, releases=(), drawing=False):
        """Run `action(model_copy, t)` and the transaction `method(*args)` from `sender` at the
        next block time t. The model raises Revert: the chain must revert with that reason.
        Otherwise the transaction must succeed with the events the model returns.
        `releases`: providers whose payout buckets this transaction may release.
        `drawing` (claims): the action is `action(model_copy, t, draws)`; when the model cannot
        tell the outcome before the draw (M.Undetermined), the transaction is sent first and
        the model rerun with its SeatDrawn events (or the revert checked against the reasons
        the draw allows)."""
        self._clean = False
        t = self.now + 1
        trial = copy.deepcopy(self.model)
        name = method.abis[0].name
        undetermined = None
        try:
            fx = action(trial, t, None) if drawing else action(trial, t)
        except M.Revert as err:
            OUTCOMES[f"{name}: {err.reason}"] += 1
            self.now = t  # a reverted transaction still takes a block here
            with ape.reverts(err.reason):
                method(*args, sender=self._acct(sender))
            return None
        except M.Undetermined as err:
            undetermined = err
        self.now = t
        if undetermined is None:
            OUTCOMES[f"{name}: ok"] += 1
            receipt = method(*args, sender=self._acct(sender))
        else:
            try:
                receipt = method(*args, sender=self._acct(sender))
            except ContractLogicError as err:
                assert err.message in undetermined.reasons, f"{name} reverted with {err.message!r}; the draw allows {undetermined.reasons}"
                OUTCOMES[f"{name} (drawing): {err.message}"] += 1
                return None
            OUTCOMES[f"{name} (drawing): ok"] += 1
            draws = [(e.job_id, e.event_arguments["provider"], e.seat) for e in self._logs(receipt, "SeatDrawn")]
            trial = copy.deepcopy(self.model)
            try:
                fx = action(trial, t, draws)
            except M.Revert as err:
                raise AssertionError(f"{name} succeeded; with the seats it drew it must revert: {err.reason}") from None
        self._apply_releases(receipt, trial, releases)
        before = self.model
        self._commit_model(trial)
        self._check_events(receipt, fx)
        self._count_cases(before, fx)
        return receipt

    @staticmethod
    def _count_cases(before: M.Market, fx: M.Effects):
        """Tally the drawn-seat situations the run reached (printed with the outcomes)."""
        for job_id, status, *_ in fx.finalized:
            job = before.jobs[job_id]
            if job.r == 1 and job.status == M.OPEN and status == M.UNRESOLVED:
                OUTCOMES["  (r = 1 claim not delivered: slashed)"] += 1
        if any(before.jobs[j].drawn_at for j, _, _ in fx.drawn):
            OUTCOMES["  (seats drawn again)"] += 1
        if any(before.jobs[j].status == M.CHALLENGED for j, _, _ in fx.drawn):
            OUTCOMES["  (re-execution round drawn)"] += 1
        per_holder = collections.Counter((j, p) for j, p, _ in fx.claimed)
        for n in per_holder.values():
            OUTCOMES[f"  (seats taken in one claim: {n})"] += 1
        if any(p == M.ZERO_ADDRESS for _, p, _ in fx.drawn):
            OUTCOMES["  (seat drawn to nobody)"] += 1
        if fx.drawn:
            OUTCOMES[f"  (distinct providers in a draw: {len({p for _, p, _ in fx.drawn})})"] += 1
        for _, _, _, _, reason in fx.slashed:
            OUTCOMES[f"  (slash reason {reason})"] += 1
        if fx.weights:
            OUTCOMES["  (weight changed)"] += 1

    def _commit_model(self, new: M.Market):
        """Adopt the model's new state and remember what changed, for the step's checks."""
        old = self.model
        accounts, providers, jobs = self.touched
        accounts |= {a for a in new.balances if (old.balances[a], old.credits[a]) != (new.balances[a], new.credits[a])}
        providers |= {a for a, p in new.providers.items() if old.providers.get(a) != p}
        for j, job in new.jobs.items():
            before = old.jobs.get(j)
            if before != job:
                seats = {s for s, seat in job.seats.items() if before is None or before.seats[s] != seat}
                jobs.setdefault(j, set()).update(seats)
        self.model = new

    def _logs(self, receipt, event):
        return receipt.decode_logs(getattr(self.market, event).abi)

    def _apply_releases(self, receipt, model, allowed):
        for log in self._logs(receipt, "PayoutsReleased"):
            provider = log.event_arguments["provider"]  # log.provider is ape's network provider
            assert provider in allowed, f"unexpected payout release for {provider}"
            model.apply_release(provider, log.pay, log.fees, log.collateral, log.treasury)

    def _check_events(self, receipt, fx: M.Effects):
        finalized = sorted(
            (e.job_id, e.status, bytes(e.result_digest), e.provider_pay, e.client_refund, e.slashed)
            for e in self._logs(receipt, "JobFinalized")
        )
        assert finalized == sorted(fx.finalized)
        for job_id, *_ in finalized:
            self.finalized_seen[job_id] = self.finalized_seen.get(job_id, 0) + 1
        slashed = sorted(
            (e.job_id, e.event_arguments["provider"], e.seat, e.amount, e.reason) for e in self._logs(receipt, "ProviderSlashed")
        )
        assert slashed == sorted(fx.slashed)
        self.slashes_seen += slashed
        skipped = [(e.job_id, e.reason) for e in self._logs(receipt, "ItemSkipped")]
        assert skipped == fx.skipped
        shares = sorted((e.job_id, e.account, e.amount) for e in self._logs(receipt, "SlashShareCredited"))
        assert shares == sorted(fx.shares)
        bonds = sorted((e.job_id, e.challenger, e.amount) for e in self._logs(receipt, "BondReturned"))
        assert bonds == sorted(fx.bonds)
        drawn = [(e.job_id, e.event_arguments["provider"], e.seat) for e in self._logs(receipt, "SeatDrawn")]
        assert drawn == fx.drawn
        for job_id, provider, seat in drawn:
            self.drawn_seen[(job_id, seat)] = provider
        claimed = [(e.job_id, e.event_arguments["provider"], e.seat) for e in self._logs(receipt, "JobClaimed")]
        assert claimed == fx.claimed
        for job_id, provider, seat in claimed:
            # JobClaimed is logged for drawn seats only (r >= 2, re-execution rounds).
            assert self.drawn_seen.get((job_id, seat)) == provider, f"job {job_id} seat {seat} taken by {provider}, not drawn for it"
        weights = sorted((e.event_arguments["provider"], e.weight) for e in self._logs(receipt, "WeightChanged"))
        assert weights == sorted(fx.weights)
        if fx.job_ids:
            assert [e.job_id for e in self._logs(receipt, "JobPosted")] == fx.job_ids

    def _all_jobs(self):
        """Every job id plus two unknown ones (a future batch, an index past a batch's end)."""
        return [*self.model.jobs, self.model.next_batch_id << 8, (1 << 8) | 200]

    def _try(self, check, *args) -> bool:
        try:
            check(*args)
            return True
        except M.Revert:
            return False

    # ------------------------------------------------------------ clients

    @initialize(data=st.data())
    def open_market(self, data):
        """Start every example with work on the market."""
        self._post(data, defect=None)

    @precondition(lambda self: len(self.model.jobs) + BATCH <= MAX_JOBS and len(self._in_flight()) < 8)
    @rule(data=st.data())
    def client(self, data):
        """A client posts (post_job or post_jobs, paid from its balance first, then by
        transferFrom), sometimes with one defect, or cancels an unclaimed job."""
        op = data.draw(st.sampled_from(["post", "post", "post", "defective post", "cancel"]), label="client op")
        if op == "cancel" and self._cancellable():
            job_id = data.draw(st.sampled_from(self._cancellable()), label="job")
            self._cancel(self.model.jobs[job_id].client, job_id)
        elif op == "defective post":
            self._post(data, defect=data.draw(st.sampled_from(POST_DEFECTS), label="defect"))
        else:
            self._post(data, defect=None)

    def _in_flight(self):
        return [j for j, job in self.model.jobs.items() if job.status in (M.OPEN, M.DELIVERED, M.CHALLENGED)]

    def _post(self, data, defect):
        client = data.draw(st.sampled_from(self.world.clients), label="client")
        n = data.draw(st.integers(1, BATCH), label="n")
        args = {
            "model_id": data.draw(st.sampled_from([TEST_MODEL_ID] * 3 + [OTHER_MODEL_ID]), label="model"),
            "inputs": [b"input %d" % i for i in range(n)],
            "r": data.draw(st.sampled_from([3, 1, 2, 1, 3, 5]), label="r"),
            "reward": data.draw(st.sampled_from(REWARDS), label="reward"),
            "windows": data.draw(st.tuples(*[st.sampled_from(WINDOWS)] * 3), label="windows"),
        }
        if defect:
            args[defect[0]] = defect[1]
        inputs = args["inputs"]
        batch = len(inputs) != 1 or data.draw(st.booleans(), label="post_jobs")
        method, first = (self.market.post_jobs, inputs) if batch else (self.market.post_job, inputs[0])
        self._act(
            lambda m, t: m.post(client, args["model_id"], inputs, args["r"], args["reward"], args["windows"], t),
            method,
            (args["model_id"], first, args["r"], args["reward"], *args["windows"]),
            client,
        )

    def _cancellable(self):
        return [j for j, job in self.model.jobs.items() if job.status == M.OPEN and not job.taken()]

    def _cancel(self, caller, job_id):
        self._act(lambda m, t: m.cancel(caller, job_id, t), self.market.cancel, (job_id,), caller)

    @rule(data=st.data())
    def housekeeping(self, data):
        """Money, staking and the owner's parameters."""
        area = data.draw(st.sampled_from(["money", "staking", "owner"]), label="area")
        {"money": self._money, "staking": self._staking, "owner": self._set_parameter}[area](data)

    def _money(self, data):
        """deposit, withdraw (which first releases the caller's matured r = 1 payouts), or anyone
        releasing a provider's payouts."""
        op = data.draw(st.sampled_from(["deposit", "withdraw", "release_payouts"]), label="op")
        if op == "deposit":
            account = data.draw(st.sampled_from([*self.world.clients, self.world.outsider]), label="account")
            amount = data.draw(st.sampled_from([4 * 10**18, 10**18, 1, 0]), label="amount")
            self._act(lambda m, t: m.deposit(account, amount), self.market.deposit, (amount,), account)
        elif op == "withdraw":
            self._withdraw(data.draw(st.sampled_from(self.everyone), label="account"))
        else:
            caller = data.draw(st.sampled_from(self.everyone), label="caller")
            provider = data.draw(st.sampled_from(self.world.stakers), label="provider")
            certain = self.model.release_certain(provider, self.now + 1)
            self._act(lambda m, t: M.Effects(), self.market.release_payouts, (provider,), caller, releases=(provider,))
            if certain:
                p = self.model.peek(provider)
                assert p.pending_pay == p.pending_fees == p.pending_collateral == 0, "matured payouts not released"

    def _withdraw(self, account):
        outcome = self.model.withdraw_outcome(account, self.now + 1)
        if outcome == "revert":
            self._act(lambda m, t: m.withdraw(account), self.market.withdraw, (), account)
            return
        # Whether a payout bucket is released first is the contract's business: accept either.
        self._clean = False
        self.now += 1
        try:
            receipt = self.market.withdraw(sender=self._acct(account))
        except ape.exceptions.ContractLogicError as err:
            assert outcome == "either" and err.message == "accounting: nothing to withdraw", err.message
            OUTCOMES["withdraw: nothing released yet"] += 1
            return
        OUTCOMES["withdraw: ok"] += 1
        trial = copy.deepcopy(self.model)
        self._apply_releases(receipt, trial, (account,))
        pay, stake = trial.withdraw(account)
        self._commit_model(trial)
        (log,) = self._logs(receipt, "Withdrawn")
        assert (log.account, log.pay_amount, log.stake_amount) == (account, pay, stake)
        self._check_events(receipt, M.Effects())

    # ------------------------------------------------------------ providers

    def _pairs(self, check, *args):
        """(provider, job) pairs for which the model's `check` passes at the next block."""
        t = self.now + 1
        return [(p, j) for j in self.model.jobs for p in self.world.stakers if self._try(check, p, j, *args, t)]

    def _wave(self, data, pairs, label):
        """One job and its eligible providers (often all of them), each to act in turn."""
        job_id = data.draw(st.sampled_from(sorted({j for _, j in pairs})), label=f"{label} job")
        eligible = [p for p, j in pairs if j == job_id]
        everyone = st.permutations(eligible)
        some = st.lists(st.sampled_from(eligible), min_size=1, max_size=len(eligible), unique=True)
        return job_id, data.draw(everyone | some, label=label)

    def _many(self, data, pairs):
        """A provider with eligible jobs and a batch of them (plus, sometimes, arbitrary ids)."""
        provider = data.draw(st.sampled_from(sorted({p for p, _ in pairs})), label="provider")
        return provider, self._batch_of(data, sorted({j for p, j in pairs if p == provider}))

    def _batched(self, data) -> bool:
        return not data.draw(st.integers(0, 3), label="batch call")

    def _batch_of(self, data, valid):
        """Up to four job ids for one batch call: mostly valid ones, some arbitrary."""
        pool = st.sampled_from(valid) | st.sampled_from(self._all_jobs()) if valid else st.sampled_from(self._all_jobs())
        return data.draw(st.lists(pool, max_size=4), label="jobs")

    def _claimable(self):
        """(provider, job) pairs whose claim succeeds, or may succeed with the draw it makes."""
        return self._pairs(self.model.check_claim)

    def _draw_due(self):
        """Jobs whose next claim draws the round's untaken seats."""
        return [j for j in self.model.jobs if self.model.draw_due(j, self.now + 1)]

    def _claim(self, provider, job_id):
        self._act(lambda m, t, d: m.claim(provider, job_id, t, d), self.market.claim, (job_id,), provider, drawing=True)

    def _claim_many(self, caller, job_ids):
        self._act(lambda m, t, d: m.claim_many(caller, job_ids, t, d), self.market.claim_many, (job_ids,), caller, drawing=True)

    def _keeper(self, data):
        """Anyone may draw for others with claim_many (a provider among them takes its own seats)."""
        return data.draw(st.sampled_from([self.world.outsider, *self.world.clients, *self.world.providers]), label="keeper")

    @precondition(lambda self: self._claimable() or self._draw_due())
    @rule(data=st.data())
    def claim(self, data):
        """A keeper draws the seats of jobs whose draw is due (claim_many), the providers of a
        job claim in turn (the first claim in a later block than the post or challenge draws;
        a strict claim that reverts undoes its draw), or one provider claims a batch
        (claim_many skips what it was not drawn for; its draws stand)."""
        op = data.draw(st.sampled_from(["draw", "wave", "wave", "batch"]), label="claim op")
        claimable = self._claimable()
        if op == "draw" and self._draw_due() or not claimable:
            self._claim_many(self._keeper(data), self._batch_of(data, self._draw_due()))
        elif op == "batch":
            provider, job_ids = self._many(data, claimable)
            self._claim_many(provider, job_ids)
        else:
            job_id, providers = self._wave(data, claimable, "claimers")
            for p in providers:
                self._claim(p, job_id)

    def _result(self, data, job_id):
        kind = data.draw(st.sampled_from(["honest", "honest", "honest", "forged", "empty"]), label="result")
        return {"honest": truth(job_id), "forged": forgery(job_id), "empty": b""}[kind]

    def _deliverable(self):
        """(claimant, job) pairs that can deliver, except claimants that went offline."""
        return [(p, j) for p, j in self._pairs(self.model.check_deliver, b"x") if j not in self.abandoned]

    def _r1_claimable(self):
        return [(p, j) for p, j in self._claimable() if self.model.jobs[j].r == 1]

    def _deliver(self, provider, job_id, result):
        self._act(lambda m, t: m.deliver(provider, job_id, result, t), self.market.deliver, (job_id, result), provider, releases=(provider,))

    @precondition(lambda self: self._deliverable() or self._r1_claimable())
    @rule(data=st.data())
    def deliver(self, data):
        """An r = 1 job delivered by its claimant, claimed first (in the block before) if it is
        not yet, as an agent does; or a batch: claim_many, then deliver_many (both skip
        failures)."""
        pairs = sorted({*self._deliverable(), *self._r1_claimable()})
        if not self._batched(data):
            provider, job_id = data.draw(st.sampled_from(pairs), label="delivery")
            if not self.model.jobs[job_id].seats[0].claimed:
                self._claim(provider, job_id)
            self._deliver(provider, job_id, self._result(data, job_id))
            return
        provider, job_ids = self._many(data, pairs)
        if any(j in self.model.jobs and not self.model.jobs[j].seats[0].claimed for j in job_ids):
            self._claim_many(provider, job_ids)
        results = [self._result(data, j) for j in job_ids]
        if not data.draw(st.integers(0, 7), label="mismatch"):
            results.append(b"extra")
        self._act(
            lambda m, t: m.deliver_many(provider, job_ids, results, t),
            self.market.deliver_many, (job_ids, results), provider, releases=(provider,),
        )

    def _seal_for(self, data, provider, job_id):
        """(seal, result, salt) by behaviour: honest, wrong result, a copy of another seat's seal
        (useless: the seal binds its provider), or empty."""
        salt = salt_of(job_id, provider)
        kind = data.draw(st.sampled_from(["honest", "honest", "honest", "honest", "wrong", "copy", "empty"]), label="behaviour")
        if kind == "copy":
            job = self.model.jobs.get(job_id)
            others = [s.word for s in (job.seats.values() if job else []) if s.committed and not s.revealed and s.provider != provider]
            if others:
                return data.draw(st.sampled_from(others), label="copied"), None, None
            kind = "honest"
        if kind == "empty":
            return M.ZERO_WORD, None, None
        result = truth(job_id) if kind == "honest" else forgery(job_id)
        return M.seal_of(job_id, provider, result, salt), result, salt

    def _commit(self, provider, job_ids, sealed):
        seals = [s for s, _, _ in sealed]
        method, args = (self.market.commit, (job_ids[0], seals[0])) if len(job_ids) == 1 else (self.market.commit_many, (job_ids, seals))
        # The seal goes to every seat the provider holds in the round and has not committed.
        held = {
            j: [s for s in self.model.jobs[j].seats_of(provider) if not self.model.jobs[j].seats[s].committed]
            for j in job_ids if j in self.model.jobs
        }
        if self._act(lambda m, t: m.commit(provider, job_ids, seals, t), method, args, provider) is not None:
            for job_id, (seal, result, salt) in zip(job_ids, sealed):
                self.memory.setdefault((job_id, provider), []).append((result, salt))
                for seat in held[job_id]:
                    self.sent_seals[(job_id, seat)] = (provider, seal)

    def _committable(self):
        return self._pairs(self.model.check_commit, b"s" * 32)

    def _draw_batch(self, data, pairs):
        """One provider and up to 4 of its (provider, job) pairs, for a *_many call."""
        provider = data.draw(st.sampled_from(sorted({p for p, _ in pairs})), label="provider")
        valid = sorted({j for p, j in pairs if p == provider})
        return provider, data.draw(st.lists(st.sampled_from(valid), min_size=1, max_size=4), label="jobs")

    @precondition(lambda self: self._committable())
    @rule(data=st.data())
    def commit(self, data):
        """The seats of a job commit in turn, or one provider commits several seats at once
        (commit_many: all or nothing)."""
        pairs = self._committable()
        if self._batched(data):
            provider, job_ids = self._draw_batch(data, pairs)
            self._commit(provider, job_ids, [self._seal_for(data, provider, j) for j in job_ids])
            return
        job_id, providers = self._wave(data, pairs, "committers")
        for p in providers:
            self._commit(p, [job_id], [self._seal_for(data, p, job_id)])

    def _opening(self, data, provider, job_id):
        """(result, salt) to reveal: one of the openings it committed (seats a redraw gave it
        after a commit were committed on their own), a wrong salt, or another provider's."""
        own = [v for v in self.memory.get((job_id, provider), []) if v[0] is not None]
        result, salt = data.draw(st.sampled_from(own), label="own opening") if own else (truth(job_id), salt_of(job_id, provider))
        kind = data.draw(st.sampled_from(["own", "own", "own", "wrong salt", "stolen"]), label="opening")
        if kind == "wrong salt":
            return result, keccak(b"wrong")
        if kind == "stolen":
            others = [v for (j, p), vs in self.memory.items() if j == job_id and p != provider for v in vs if v[0] is not None]
            if others:
                return data.draw(st.sampled_from(others), label="stolen")
        return result, salt

    def _reveal(self, provider, job_ids, openings):
        results = [r for r, _ in openings]
        salts = [s for _, s in openings]
        if len(job_ids) == 1:
            method, args = self.market.reveal, (job_ids[0], results[0], salts[0])
        else:
            method, args = self.market.reveal_many, (job_ids, results, salts)
        self._act(lambda m, t: m.reveal(provider, job_ids, results, salts, t), method, args, provider)

    def _check_own_reveal(self, provider, job_id, t):
        """The provider can open something it committed (a copier has nothing to open)."""
        openings = [v for v in self.memory.get((job_id, provider), []) if v[0] is not None]
        M.require(openings, "nothing to open")
        reasons = []
        for result, salt in openings:
            try:
                self.model.check_reveal(provider, job_id, result, salt, t)
                return
            except M.Revert as err:
                reasons.append(err.reason)
        raise M.Revert(reasons[0])

    def _revealable(self):
        return self._pairs(self._check_own_reveal)

    @precondition(lambda self: self._revealable())
    @rule(data=st.data())
    def reveal(self, data):
        """The seats of a job reveal in turn (some with a wrong or stolen opening), or one
        provider reveals several seats at once (reveal_many: all or nothing)."""
        pairs = self._revealable()
        if self._batched(data):
            provider, job_ids = self._draw_batch(data, pairs)
            self._reveal(provider, job_ids, [self._opening(data, provider, j) for j in job_ids])
            return
        job_id, providers = self._wave(data, pairs, "revealers")
        for p in providers:
            self._reveal(p, [job_id], [self._opening(data, p, job_id)])

    def _next_steps(self):
        """(phase, job) for every job that can move on now: the natural next action of each."""
        steps = set()
        for kind, pairs in (
            ("claim", self._claimable()),
            ("deliver", self._deliverable()),
            ("commit", self._committable()),
            ("reveal", self._revealable()),
        ):
            steps |= {(kind, j) for _, j in pairs}
        steps |= {("claim", j) for j in self._draw_due()}
        steps |= {("finalize", j) for j in self._due()}
        steps |= {("challenge", j) for j in self._challengeable()}
        return sorted(steps)

    @precondition(lambda self: self._next_steps())
    @rule(data=st.data())
    def progress(self, data):
        """Move one job on: every eligible provider takes its next step in turn (some of them
        dishonestly), or a keeper finalizes or challenges it."""
        phase, job_id = data.draw(st.sampled_from(self._next_steps()), label="next step")
        if phase == "finalize":
            self._retune(data)
            self._finalize(self.world.outsider, job_id)
        elif phase == "challenge":
            self._challenge(self._challenger(data), job_id)
        elif phase == "deliver":
            provider = data.draw(st.sampled_from([p for p, j in self._deliverable() if j == job_id]), label="provider")
            self._deliver(provider, job_id, self._result(data, job_id))
        else:
            if phase == "claim" and job_id in self._draw_due() and data.draw(st.integers(0, 3), label="keeper draws"):
                self._claim_many(self._keeper(data), [job_id])  # then the drawn providers take their seats
            pairs = {"claim": self._claimable, "commit": self._committable, "reveal": self._revealable}[phase]()
            for p in data.draw(st.permutations([p for p, j in pairs if j == job_id]), label="providers"):
                if phase == "claim":
                    self._claim(p, job_id)
                elif phase == "commit":
                    self._commit(p, [job_id], [self._seal_for(data, p, job_id)])
                else:
                    self._reveal(p, [job_id], [self._opening(data, p, job_id)])
            if phase == "claim" and data.draw(st.integers(0, 2), label="work at once"):
                self._work(data, job_id)

    def _work(self, data, job_id):
        """Right after claiming, as agents do: an r = 1 claimant delivers from the next block;
        the holders of a round's seats commit."""
        job = self.model.jobs[job_id]
        if job.r == 1 and job.status == M.OPEN:
            if job.seats[0].claimed and not data.draw(st.integers(0, 3), label="claimant goes offline"):
                # Never delivers (chaos aside): finalize slashes the claim after its deadline.
                self.abandoned.add(job_id)
                return
            for p, j in self._deliverable():
                if j == job_id:
                    self._deliver(p, job_id, self._result(data, job_id))
            return
        holders = sorted({p for p, j in self._committable() if j == job_id})
        for p in data.draw(st.permutations(holders), label="committers"):
            self._commit(p, [job_id], [self._seal_for(data, p, job_id)])

    @precondition(lambda self: self.model.jobs)
    @rule(data=st.data())
    def chaos(self, data):
        """Anyone tries any job action on any job (with any opening): mostly reverts."""
        op = data.draw(st.sampled_from(["claim", "claim_many", "deliver", "commit", "reveal", "finalize", "cancel", "challenge"]), label="op")
        job_id = data.draw(st.sampled_from(self._all_jobs()), label="job")
        provider = data.draw(st.sampled_from(self.world.stakers), label="provider")
        if op == "finalize":
            self._finalize(data.draw(st.sampled_from(self.everyone), label="caller"), job_id)
        elif op == "cancel":
            self._cancel(data.draw(st.sampled_from([*self.world.clients, self.world.outsider]), label="caller"), job_id)
        elif op == "challenge":
            self._challenge(self._challenger(data), job_id)
        elif op == "claim":
            self._claim(provider, job_id)
        elif op == "claim_many":
            self._claim_many(data.draw(st.sampled_from(self.everyone), label="caller"), [job_id])
        elif op == "deliver":
            result = self._result(data, job_id)
            self._act(lambda m, t: m.deliver(provider, job_id, result, t), self.market.deliver, (job_id, result), provider, releases=(provider,))
        elif op == "commit":
            self._commit(provider, [job_id], [self._seal_for(data, provider, job_id)])
        else:
            self._reveal(provider, [job_id], [self._opening(data, provider, job_id)])

    def _staking(self, data):
        """stake, request_unbond, withdraw_stake, register or update_provider, or anyone
        reweighing a provider (after a change of min_draw_stake)."""
        op = data.draw(st.sampled_from(["stake", "request_unbond", "withdraw_stake", "register", "reweigh"]), label="op")
        provider = data.draw(st.sampled_from(self.world.stakers), label="provider")
        if op == "stake":
            p = self.model.peek(provider)
            room = M.MAX_AMOUNT - p.free - p.locked - p.unbonding  # up to the stake cap
            amount = data.draw(st.sampled_from([STAKE, 10**18, 0, 2**128, room, room + 1, M.MAX_AMOUNT - p.free]), label="amount")
            self._act(lambda m, t: m.stake(provider, amount), self.market.stake, (amount,), provider)
        elif op == "request_unbond":
            free = self.model.peek(provider).free
            amount = data.draw(st.sampled_from([free // 2, free, 1, 0, free + 1]), label="amount")
            self._act(lambda m, t: m.request_unbond(provider, amount, t), self.market.request_unbond, (amount,), provider)
        elif op == "withdraw_stake":
            # Open seats don't hold unbonding stake back; matured payouts are released first.
            certain = self.model.release_certain(provider, self.now + 1)
            receipt = self._act(lambda m, t: m.withdraw_stake(provider, t), self.market.withdraw_stake, (), provider,
                                releases=(provider,))
            if receipt is not None and certain:
                p = self.model.peek(provider)
                assert p.pending_pay == p.pending_fees == p.pending_collateral == 0, "matured payouts not released"
        elif op == "reweigh":
            caller = data.draw(st.sampled_from(self.everyone), label="caller")
            self._act(lambda m, t: m.reweigh(caller, provider), self.market.reweigh, (provider,), caller)
        else:
            models = data.draw(st.sampled_from([[TEST_MODEL_ID], [OTHER_MODEL_ID], [TEST_MODEL_ID, OTHER_MODEL_ID], [], [UNKNOWN_MODEL_ID]]), label="models")
            price = data.draw(st.sampled_from([1, 1, 2**128]), label="price")
            update = data.draw(st.booleans(), label="update")
            method = self.market.update_provider if update else self.market.register
            self._act(lambda m, t: m.register(provider, models, price, update), method, (models, price), provider)

    # ------------------------------------------------------------ anyone

    @precondition(lambda self: self._due())
    @rule(data=st.data())
    def finalize(self, data):
        """Anyone settles a due job (the recovery action behind every deadline), or keepers race
        with finalize_many, which skips items not due or already settled."""
        if self._batched(data):
            job_ids = self._batch_of(data, self._due())
            self._act(lambda m, t: m.finalize(job_ids, t, strict=False), self.market.finalize_many, (job_ids,), self.world.outsider)
            return
        job_id = data.draw(st.sampled_from(self._due()), label="job")
        self._retune(data)
        self._finalize(data.draw(st.sampled_from(self.everyone), label="caller"), job_id)

    def _due(self):
        return [j for j, job in self.model.jobs.items() if job.is_due(self.now + 1)]

    def _finalize(self, caller, job_id):
        self._act(lambda m, t: m.finalize([job_id], t, strict=True), self.market.finalize, (job_id,), caller)

    def _challengeable(self):
        return [j for j in self.model.jobs if self._try(self.model.check_challenge, j, self.now + 1)]

    @precondition(lambda self: self._challengeable())
    @rule(data=st.data())
    def challenge(self, data):
        job_id = data.draw(st.sampled_from(self._challengeable()), label="job")
        self._challenge(self._challenger(data), job_id)

    def _challenger(self, data):
        w = self.world
        return data.draw(st.sampled_from([w.outsider, *w.clients, w.treasury, w.providers[1]]), label="challenger")

    def _challenge(self, challenger, job_id):
        self._act(lambda m, t: m.challenge(challenger, job_id, t), self.market.challenge, (job_id,), challenger)

    # ------------------------------------------------------------ owner

    def _set_parameter(self, data):
        w = self.world
        name = data.draw(st.sampled_from([*PARAM_VALUES, "treasury", "model_active"]), label="name")
        if name == "treasury":
            value = data.draw(st.sampled_from([w.treasury, w.owner, M.ZERO_ADDRESS]), label="value")
        elif name == "model_active":
            value = data.draw(st.tuples(st.sampled_from([TEST_MODEL_ID, UNKNOWN_MODEL_ID]), st.booleans()), label="value")
        else:
            value = data.draw(st.sampled_from(PARAM_VALUES[name]), label="value")
        caller = w.owner if data.draw(st.integers(0, 4), label="by owner") else w.outsider
        method = getattr(self.market, "set_" + name)
        args = value if isinstance(value, tuple) else (value,)
        self._act(lambda m, t: m.set_param(caller, name, value), method, args, caller)

    def _retune(self, data):
        """Sometimes, right before a finalize, the owner changes the slash split and the
        treasury: the job must still settle on the terms of its post."""
        if data.draw(st.integers(0, 2), label="retune first"):
            return
        w = self.world
        p = self.model.params
        splits = [v for v in PARAM_VALUES["slash_split"][:4] if v != (p.slash_client_bps, p.slash_honest_bps)]
        split = data.draw(st.sampled_from(splits), label="split")
        self._act(lambda m, t: m.set_param(w.owner, "slash_split", split), self.market.set_slash_split, split, w.owner)
        treasury = w.owner if p.treasury == w.treasury else w.treasury
        self._act(lambda m, t: m.set_param(w.owner, "treasury", treasury), self.market.set_treasury, (treasury,), w.owner)

    # ------------------------------------------------------------ time

    @rule(data=st.data())
    def warp(self, data):
        """Jump so that the next transaction lands exactly on one of the next deadlines, or just
        past it; or jump by a fixed amount."""
        marks = []
        for job in self.model.jobs.values():
            if job.status in (M.OPEN, M.CHALLENGED):
                marks += job.deadlines()
            elif job.status == M.DELIVERED:
                marks.append(job.until)
        marks += [p.ready_at for p in self.model.providers.values() if p.unbonding]
        # When undrawn-for seats are drawn again.
        half = self.model.params.min_windows[0] // 2
        marks += [j.drawn_at + half for j in self.model.jobs.values() if j.drawn_at and j.status in (M.OPEN, M.CHALLENGED) and j.untaken()]
        upcoming = sorted({m for m in marks if m > self.now})[:3]
        if upcoming and data.draw(st.integers(0, 3), label="to a deadline"):
            target = data.draw(st.sampled_from(upcoming), label="deadline") - data.draw(st.sampled_from([1, 0]), label="past")
        else:
            target = self.now + data.draw(st.sampled_from([1, 30, 600, 3_601, 3 * 86_400]), label="jump")
        self._clean = False
        if target == self.now + 1:
            self.chain.mine()
        elif target > self.now:
            self.chain.mine(timestamp=target)
        # Unchallenged deliveries whose window just ended now read FINALIZED.
        for j, job in self.model.jobs.items():
            if job.status == M.DELIVERED and self.now <= job.until < target:
                self.touched[2].setdefault(j, set())
        self.now = max(self.now, target)

    # ------------------------------------------------------------ invariants

    @invariant()
    def invariants(self):
        """After every step: read what the step changed (the model's diff; py-evm runs the
        reads, so reading everything every step would cost more than the step itself) and
        check every invariant on it. The whole state is read at the end of each example."""
        accounts, providers, jobs = self.touched
        self.touched = (set(), set(), {})
        if accounts or providers or jobs:
            self._verify(sorted(accounts), [p for p in self.world.stakers if p in providers], jobs, full=False)
        self._clean = True

    def teardown(self):
        try:
            if self._clean:
                jobs = {j: set(job.seats) for j, job in self.model.jobs.items()}
                self._verify(self.everyone, self.world.stakers, jobs, full=True)
        finally:
            self.chain.restore(self.snapshot)

    def _verify(self, accounts, providers, jobs, full):
        w = self.world
        state = read_state(w.lens, self.market, w.token, accounts, providers, jobs)
        assert state.time == self.now, "the model's clock drifted from the chain's"
        self._check_model(state)
        if full:
            self._check_solvency(state)
        self._check_conservation(state)
        self._check_settle_once(state)
        self._check_state_machine(state)
        self._check_seal_binding(state)
        self._check_slash_bounds()
        self._check_collateral_cover(state)
        self._check_payouts(state)
        self._check_weights(state, full)
        self._check_draws(state)
        due = {j for j, job in self.model.jobs.items() if job.is_due(self.now)}
        self._check_recovery(sorted(due if full else due - self.known_due))
        self.known_due = due
        if full:
            self._check_exactly_due()

    def _check_model(self, state):
        """Every ledger, stake and job read equals the model's."""
        m = self.model
        for a in state.balances:
            assert state.balances[a] == m.balances[a], f"balances({a})"
            assert state.credits[a] == m.credits[a], f"stake_credits({a})"
        for a, s in state.providers.items():
            p = m.peek(a)
            assert (s.free, s.locked, s.unbonding, s.ready_at) == (p.free, p.locked, p.unbonding, p.ready_at), f"stake of {a}"
            assert (s.pending_pay, s.pending_fees, s.pending_collateral) == (p.pending_pay, p.pending_fees, p.pending_collateral), f"payouts of {a}"
        for job_id, s in state.jobs.items():
            job = m.jobs[job_id]
            status = job.view_status(self.now)
            assert s.status == status, f"job {job_id} status"
            assert (s.nclaimed, s.ncommitted, s.nrevealed) == (job.view_nclaimed(), job.ncommitted, job.nrevealed), f"job {job_id} counters"
            digest = job.result_digest if status in (M.DELIVERED, M.CHALLENGED, M.FINALIZED) else M.ZERO_WORD
            assert s.result_digest == digest, f"job {job_id} result_digest"
            assert s.challenger == int(job.challenger, 16), f"job {job_id} challenger"
            assert s.escrow == job.escrow(), f"job {job_id} escrow_of"
            if status not in M.TERMINAL:
                assert s.deadlines == job.deadlines(), f"job {job_id} deadlines"
            # An unchallenged delivery's window (a challenged one's round has its own deadlines).
            unchallenged = job.challenger == M.ZERO_ADDRESS
            until = job.until if job.r == 1 and status in (M.DELIVERED, M.FINALIZED) and unchallenged else 0
            assert s.challenge_end == until, f"job {job_id} challenge_end"
            for i, seat in s.seats.items():
                want = job.seats[i]
                got = (seat.provider, seat.claimed, seat.committed, seat.revealed)
                assert got == (int(want.provider, 16), want.claimed, want.committed, want.revealed), f"job {job_id} seat {i}"
                assert seat.word == want.word, f"job {job_id} seat {i} word"

    def _check_solvency(self, state):
        """The token balance equals everything the contract's books owe (nobody sends tokens
        directly), read from the chain alone."""
        assert state.token_balance == state.internal_total()

    def _check_conservation(self, state):
        """deposits + pulls - withdrawals == internal balances (payouts and slashes only move
        value between internal ledgers) == the token balance."""
        assert self.model.token_in - self.model.token_out == self.model.internal_total() == state.token_balance

    def _check_settle_once(self, state):
        """A terminal job never changes again, holds no escrow and has at most one JobFinalized
        (exactly one, except an unchallenged r = 1 delivery, which settles lazily)."""
        for job_id, s in state.jobs.items():
            seen = self.finalized_seen.get(job_id, 0)
            assert seen <= 1, f"job {job_id} finalized {seen} times"
            if s.status in M.TERMINAL:
                assert s.escrow == 0
                head = dataclasses.replace(s, seats={})
                assert self.terminal_state.setdefault(job_id, head) == head, f"terminal job {job_id} changed"
                for i, seat in s.seats.items():
                    assert self.terminal_seats.setdefault((job_id, i), seat) == seat, f"terminal job {job_id} seat {i} changed"
                job = self.model.jobs[job_id]
                lazy = job.r == 1 and job.challenger == M.ZERO_ADDRESS and s.status == M.FINALIZED
                assert seen == (0 if lazy else 1), f"job {job_id}: {seen} JobFinalized events"

    def _check_state_machine(self, state):
        for job_id, s in state.jobs.items():
            before = self.last_status.get(job_id, M.OPEN)
            assert s.status in M.ALLOWED[before], f"job {job_id}: {before} -> {s.status}"
            self.last_status[job_id] = s.status

    def _check_seal_binding(self, state):
        """A committed seal stays in its seat, bound to the provider that sent it, until that
        provider reveals; then the seat holds the digest the seal committed to."""
        for (job_id, seat), (provider, seal) in self.sent_seals.items():
            s = state.jobs[job_id].seats.get(seat) if job_id in state.jobs else None
            if s is None:
                continue
            assert s.provider == int(provider, 16) and s.committed, f"job {job_id} seat {seat} lost its commit"
            if not s.revealed:
                assert s.word == seal, f"job {job_id} seat {seat}: seal changed"
            else:
                opened = [r for r, salt in self.memory[(job_id, provider)] if r is not None and M.seal_of(job_id, provider, r, salt) == seal]
                assert opened, f"job {job_id} seat {seat}: revealed without its opening"
                assert s.word == keccak(opened[0]), f"job {job_id} seat {seat}: revealed digest changed"

    def _check_slash_bounds(self):
        """Each slash is exactly its seat's collateral, once per seat and fault, and a job's
        slashes never exceed the collateral that was locked for it."""
        per_job = {}
        assert len({(j, seat, reason) for j, _, seat, _, reason in self.slashes_seen}) == len(self.slashes_seen)
        for job_id, _, seat, amount, _ in self.slashes_seen:
            job = self.model.jobs[job_id]
            assert amount == job.collateral
            per_job[job_id] = per_job.get(job_id, 0) + amount
        for job_id, total in per_job.items():
            assert total <= self.model.jobs[job_id].collateral_locked

    def _check_collateral_cover(self, state):
        """Locked stake == collateral of every open seat + unreleased r = 1 deliveries."""
        open_seats = {}
        for job in self.model.jobs.values():
            if job.status == M.OPEN:
                seats = job.taken()  # r = 1: the claimed seat, until its delivery
            elif job.status == M.CHALLENGED:
                seats = [0, *job.taken()]
            else:
                continue
            for i in seats:
                open_seats[job.seats[i].provider] = open_seats.get(job.seats[i].provider, 0) + job.collateral
        for p, s in state.providers.items():
            assert s.locked == open_seats.get(p, 0) + s.pending_collateral, f"collateral cover of {p}"

    def _check_payouts(self, state):
        """r = 1 pay is never released before its job's challenge window ends."""
        for p, s in state.providers.items():
            pay, fees, collateral = self.model.unmatured(p, self.now)
            assert s.pending_pay >= pay and s.pending_fees >= fees and s.pending_collateral >= collateral, f"early release for {p}"
            untils = [j.until for j in self.model.jobs.values() if j.status == M.DELIVERED and j.seats[0].provider == p and self.now <= j.until]
            assert s.matures_at >= max(untils, default=0)

    def _check_weights(self, state, full):
        """draw_weight of every provider read: the model's, and (bonded stake) >> 16 when its
        bonded stake reaches the floor it was last weighed with (min_draw_stake() unless the
        owner changed it since) and it serves a model, else 0 (unless a slash or unbond kept a
        weight below that after the owner lowered the floor). Each model's tree totals the
        weights of the providers serving it; at the end of an example every provider's leaf
        holds its weight and the leaves nothing else."""
        m, w = self.model, self.world
        for a, s in state.providers.items():
            p = m.peek(a)
            assert s.draw_weight == p.weight, f"draw_weight({a})"
            if p.floor is not None:
                assert s.draw_weight == M.draw_weight(s.free + s.locked, p.floor, bool(p.models)), f"draw_weight({a}) formula"
        assert self.market.min_draw_stake() == m.params.min_draw_stake
        for model_id, index in w.model_index.items():
            assert w.trees.total(index) == m.tree_total(model_id), f"tree total of model {index}"
            if full:
                leaves, total = w.trees.leaves(index, w.stakers)
                assert total == m.tree_total(model_id)
                for a, (slot, leaf) in leaves.items():
                    p = m.peek(a)
                    weight = p.weight if model_id in p.models else 0
                    assert leaf == weight and (slot != 0) == (weight > 0), f"leaf of {a} in model {index}: slot {slot}, {leaf} != {weight}"

    def _check_draws(self, state):
        """Every seat of a draw round shows the provider last drawn for it (nobody before its
        first draw): in particular no seat is ever taken by a provider not drawn for it."""
        for job_id, s in state.jobs.items():
            job = self.model.jobs[job_id]
            for i, seat in s.seats.items():
                if job.r == 1 and i == 0:
                    continue  # the r = 1 seat is claimed, not drawn
                drawn = self.drawn_seen.get((job_id, i), M.ZERO_ADDRESS)
                assert seat.provider == int(drawn, 16), f"job {job_id} seat {i} shows a provider not drawn for it"
                assert not seat.claimed or drawn != M.ZERO_ADDRESS

    def _check_exactly_due(self):
        """At the end of an example, finalize settles exactly the jobs the model holds due (a
        job the model thinks not due yet must be skipped), among those whose dueness is the same
        now and one second later (the simulation's block time)."""
        settled = [j for j, job in self.model.jobs.items() if job.status in M.TERMINAL]
        steady = [
            j for j, job in self.model.jobs.items()
            if j not in settled and job.is_due(self.now) == job.is_due(self.now + 1)
        ]
        for i in range(0, len(steady), 32):
            chunk = steady[i : i + 32]
            want = sum(self.model.jobs[j].is_due(self.now) for j in chunk)
            got = self.market.finalize_many.call(chunk, sender=self._acct(self.world.outsider))
            assert got == want, f"finalize settles {got} of {chunk}, the model holds {want} due"

    def _check_recovery(self, due):
        """finalize succeeds for every job that is due (simulated, nothing is sent)."""
        for i in range(0, len(due), 32):
            chunk = due[i : i + 32]
            assert self.market.finalize_many.call(chunk, sender=self._acct(self.world.outsider)) == len(chunk), f"finalize reverts for a due job among {chunk}"


@pytest.fixture
def reproducible_blocks(monkeypatch):
    """The test chain gives each block a random prevrandao (eth-tester: os.urandom), so block
    hashes, and the seat draws they seed, would differ each time Hypothesis replays an example
    (a flaky strategy: the rules a step may take depend on who was drawn). A fixed prevrandao
    makes every block hash a function of the chain's history, as the draws' seeds are on a real
    chain for everyone who acts after the block."""
    import eth_tester.backends.pyevm.main as pyevm

    monkeypatch.setattr(pyevm, "os", SimpleNamespace(urandom=lambda n: bytes(n)))


@pytest.mark.slow
def test_marketplace_invariants(world, chain, reproducible_blocks):
    MarketMachine.world = world
    MarketMachine.chain = chain
    run_state_machine_as_test(
        MarketMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        ),
    )
    for outcome, count in sorted(OUTCOMES.items()):
        print(f"{count:6d} {outcome}")


def test_settlement_keeps_each_seats_own_word(world, chain):
    """Seal binding, pinned: after finalize every seat still shows its own seal or revealed
    digest (README: "word = seal, or digest once revealed"). The losing seat 0 revealed a
    forgery and must keep showing that digest, not the majority's."""
    m = world.market
    client = world.accounts[world.clients[0]]
    tx = m.post_job(TEST_MODEL_ID, b"input", 3, 10**18, 600, 600, 600, sender=client)
    (job_id,) = [log.job_id for log in tx.decode_logs(m.JobPosted)]
    serving = [world.accounts[p] for p in world.providers[:4]]
    p0, p1, p2 = draw_seats(m, chain, job_id, world.accounts[world.outsider], serving)
    results = {p0: forgery(job_id), p1: truth(job_id), p2: truth(job_id)}
    for p in results:
        m.claim(job_id, sender=p)
    for p, result in results.items():
        m.commit(job_id, M.seal_of(job_id, str(p), result, salt_of(job_id, str(p))), sender=p)
    for p, result in results.items():
        m.reveal(job_id, result, salt_of(job_id, str(p)), sender=p)
    m.finalize(job_id, sender=client)
    assert m.job(job_id).result_digest == keccak(truth(job_id))
    for index, p in enumerate(results):
        seat = m.seat(job_id, index)
        assert (seat.provider, seat.revealed) == (p.address, True)
        assert seat.word == keccak(results[p]), f"seat {index} shows another seat's digest"
