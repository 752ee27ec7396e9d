"""The provider's job logic: which jobs to take, and carrying each one to payment.

Two parts share the store, which is the only source of truth (so a restart simply
carries on from it):

- `JobBook` (a watcher handler) records what the chain announces: jobs posted for the
  models we serve, and each held job's final outcome.
- `JobWorker` (a service) moves held jobs forward each tick, always through the tx
  manager and the batch entry points:

  r >= 2:  SEEN -claim_many-> CLAIMING -> CLAIMED -engine, salt stored, commit_many->
           COMMITTED -reveal_many-> REVEALED -finalize_many-> PAID | SLASHED | RELEASED
  r == 1:  SEEN -engine, deliver_many-> CLAIMING -> REVEALED -(after the challenge
           window) finalize_many-> PAID | SLASHED

A result and its salt are fsync'ed in the store before the seal that binds them is
sent, and never recomputed: a crash between commit and reveal reveals the stored bytes.
Per-job data (JSON in the store): the posted terms, `pending` (the one transaction in
flight for the job: kind and intent id), `failures`, `reason` for refusals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from client.errors import ContractError
from client.events import JobChallenged, JobFinalized, JobPosted, ProviderSlashed
from client.marketplace import Marketplace, Token
from client.protocol import MAX_BATCH, R_CHALLENGE, JobStatus, new_salt, result_digest, seal
from provider.agent.batching import Batcher
from provider.agent.config import BatchConfig, PolicyConfig
from provider.agent.errors import TxWouldRevert
from provider.agent.metrics import Metrics
from provider.agent.rpc import TRANSIENT_ERRORS, Backoff, retry
from provider.agent.service import Service
from provider.agent.store import JobRecord, JobState, Store, TxStatus
from provider.agent.txmanager import TxManager

log = logging.getLogger("verinfer.agent.jobs")

# The marketplace events the agent reacts to (the rest it learns from its own receipts).
WATCHED_EVENTS = ("JobPosted", "JobChallenged", "ProviderSlashed", "JobFinalized")
MAX_FAILURES = 3  # a job whose transaction keeps failing is given up (FAILED)
CLAIM_MARGIN = 2  # seconds of chain time left before a deadline to still try


class Engine(Protocol):
    """What the worker needs from an inference engine (provider.engine.Engine)."""

    def tokenize(self, job_input: str | bytes, index: int | None = None) -> list[int]: ...

    def embed(self, inputs: list[bytes]) -> list[bytes]: ...


class MarketplaceLogs:
    """The watcher's LogDecoder for the marketplace, decoding with the SDK."""

    def __init__(self, market: Marketplace, events: Iterable[str] = WATCHED_EVENTS):
        self.market = market
        self.topics = [market.topic(name) for name in events]

    def decode(self, raw_log: Any) -> Any | None:
        return self.market.decode_log(raw_log)


class JobBook:
    """Watcher handler: records posted jobs for our models and held jobs' outcomes."""

    def __init__(self, store: Store, provider: str, models: Iterable[bytes]):
        self.store, self.provider, self.models = store, provider, set(models)

    def handle(self, events: list[Any], to_block: int) -> None:
        for event in events:
            if isinstance(event, JobPosted):
                self._posted(event)
                continue
            job = self.store.job(event.job_id)
            if isinstance(event, JobChallenged) and job is not None:
                self._challenged(job, event)
                continue
            if job is None or job.state.final:
                continue
            if isinstance(event, ProviderSlashed) and event.provider == self.provider:
                self.store.update_job(job.job_id, slashed=event.amount, fault=int(event.reason))
            elif isinstance(event, JobFinalized):
                self._finalized(job, event)

    def _posted(self, event: JobPosted) -> None:
        if event.model_id not in self.models:
            return
        if self.store.add_job(
            event.job_id, event.model_id, reward=event.reward,
            data={
                "r": event.r, "client": event.client, "input": event.input.hex(),
                "claim_deadline": event.claim_deadline, "commit_deadline": event.commit_deadline,
                "reveal_deadline": event.reveal_deadline, "block": event.meta.block_number,
            },
        ):
            log.info("job seen", extra={"job_id": event.job_id, "r": event.r,
                                        "reward": event.reward})

    def _challenged(self, job: JobRecord, event: JobChallenged) -> None:
        """A disputed r = 1 delivery re-opens as a round of R_CHALLENGE fresh seats:
        a job we did not deliver becomes claimable again (the deliverer may not)."""
        if job.state in (JobState.REVEALED, JobState.CLAIMING, JobState.REFUSED):
            return
        self.store.update_job(
            job.job_id, state=JobState.SEEN, challenge=True, pending=None, failures=0,
            claim_deadline=event.claim_deadline, commit_deadline=event.commit_deadline,
            reveal_deadline=event.reveal_deadline,
        )
        log.info("job challenged; re-execution round open", extra={"job_id": job.job_id})

    def _finalized(self, job: JobRecord, event: JobFinalized) -> None:
        settled = {"status": int(event.status), "digest": event.result_digest.hex()}
        if job.state is JobState.CLAIMING:
            # Our claim / delivery receipt decides whether we held a seat; the worker
            # settles the job when it applies that receipt.
            self.store.update_job(job.job_id, settled=settled)
            return
        state = outcome(self.store, job, settled)
        self.store.update_job(job.job_id, state=state, settled=settled)
        log.info("job settled", extra={"job_id": job.job_id, "state": state.value,
                                       "status": event.status.name})

    def rewind(self, fork_block: int) -> None:
        # Posts in orphaned blocks may come back with other contents: forget the ones
        # we never acted on. Anything we acted on is checked against contract state.
        orphaned = [j.job_id for j in self.store.jobs(JobState.SEEN)
                    if j.data.get("block", 0) > fork_block and "pending" not in j.data]
        self.store.forget_jobs(orphaned)


def outcome(store: Store, job: JobRecord, settled: dict | None = None) -> JobState:
    """Our final state for a settled job. Slash events come before JobFinalized in the
    same transaction, so a seat holder that was not slashed revealed (or delivered):
    it is paid exactly when the standing digest is its own."""
    settled = settled or job.data["settled"]
    if job.data.get("slashed"):
        return JobState.SLASHED
    if job.state in (JobState.CLAIMED, JobState.COMMITTED, JobState.REVEALED):
        ours = store.result(job.job_id)
        paid = (settled["status"] == JobStatus.FINALIZED and ours is not None
                and ours.digest.hex() == settled["digest"])
        return JobState.PAID if paid else JobState.RELEASED
    return JobState.CANCELLED if settled["status"] == JobStatus.CANCELLED else JobState.LOST


class JobWorker(Service):
    """Moves held jobs forward: claim, compute, commit, reveal, finalize."""

    name = "jobs"

    def __init__(
        self,
        *,
        store: Store,
        txm: TxManager,
        market: Marketplace,
        engines: Mapping[bytes, Engine],
        policy: PolicyConfig,
        claim_batch: BatchConfig,
        engine_batch: BatchConfig,
        poll_interval: float = 0.25,
        metrics: Metrics | None = None,
        result_hook: Callable[[int, bytes], bytes] | None = None,
    ):
        """`result_hook(job_id, result) -> result` replaces results before they are
        sealed: only for demos and fault tests of a dishonest provider."""
        super().__init__()
        self.store, self.txm, self.market = store, txm, market
        self.engines, self.policy, self.poll_interval = dict(engines), policy, poll_interval
        self.result_hook = result_hook
        self.me = txm.address
        self._claims: Batcher[None, int] = Batcher(claim_batch.max_size, claim_batch.max_wait)
        self._compute: Batcher[bytes, int] = Batcher(engine_batch.max_size, engine_batch.max_wait)
        self._queued: set[int] = set()  # ids inside one of the batchers
        self._next_check: dict[int, float] = {}  # job id -> monotonic time of its next view
        self.stake_free: int | None = None  # last read from the contract (for the dashboard)
        metrics = metrics or Metrics()
        self._steps = metrics.counter("verinfer_job_steps_total", "Job transitions sent")
        self._engine_jobs = metrics.counter("verinfer_engine_jobs_total", "Jobs computed")
        self._engine_seconds = metrics.counter("verinfer_engine_seconds_total", "Engine time")

    # ---- lifecycle -------------------------------------------------------------------

    def setup(self) -> None:
        # Waits out an unreachable endpoint (ensure_registered is idempotent).
        retry(self.ensure_registered, what="provider registration", stop=self.stop_event)

    def run_forever(self) -> None:
        delays = Backoff().delays()
        while not self.stop_event.is_set():
            try:
                self.tick()
                delays = Backoff().delays()
                delay = self.poll_interval
            except ContractError:  # a view reverted: a job-level surprise, not an outage
                delay = next(delays)
                log.exception("job step failed")
            except TRANSIENT_ERRORS as err:
                delay = next(delays)
                log.warning("jobs: rpc unavailable",
                            extra={"error": type(err).__name__, "retry_in": round(delay, 2)})
            except Exception:  # a failing job never kills the agent
                delay = next(delays)
                log.exception("job step failed")
            self.stop_event.wait(delay)

    def _send(self, call, kind: str, job_ids: list[int],
              state: JobState | None = None) -> int:
        """Send a step for `job_ids`; each job records the pending transaction (and its
        new `state`) atomically with the intent, so a crash can't leave either alone."""

        def mark(tx_id: int) -> None:
            for job_id in job_ids:
                self.store.update_job(job_id, state=state, pending={"kind": kind, "tx": tx_id})

        tx_id = self.txm.send(call.to, call.data, kind=kind, meta={"jobs": job_ids},
                              on_record=mark)
        self._steps.inc(len(job_ids), kind=kind)
        return tx_id

    def _send_and_wait(self, call, kind: str) -> None:
        record = self.txm.wait(self._send(call, kind, []), timeout=300)
        if not record.succeeded:
            raise RuntimeError(f"{kind} transaction failed ({record.status.value})")

    def ensure_registered(self) -> None:
        """Register, declare models and top up stake to `policy.stake` when needed."""
        models = sorted(self.engines)
        for tx in self.store.open_txs():  # a restart mid-bootstrap: let those land first
            if tx.kind in ("register", "update_provider", "approve", "stake"):
                self.txm.wait(tx.id, timeout=300)
        info = self.market.provider(self.me)
        if not info.registered:
            log.info("registering provider", extra={"models": len(models),
                                                    "price": self.policy.price})
            self._send_and_wait(self.market.build_register(models, self.policy.price), "register")
        elif set(info.model_ids) != set(models) or info.price != self.policy.price:
            self._send_and_wait(self.market.build_update_provider(models, self.policy.price),
                                "update_provider")
        self.stake_free = info.free
        bonded = info.free + info.locked
        if self.policy.stake > bonded:
            need = self.policy.stake - bonded
            token = Token(self.txm.w3, self.market.stake_token())
            if token.allowance(self.me, self.market.address) < need:
                self._send_and_wait(token.build_approve(self.market.address, need), "approve")
            self._send_and_wait(self.market.build_stake(need), "stake")
            log.info("stake topped up", extra={"added": need, "stake": self.policy.stake})

    # ---- one tick --------------------------------------------------------------------

    def tick(self) -> None:
        now = self.txm.w3.eth.get_block("latest")["timestamp"]
        self._track_transactions()
        self._consider_new(now)
        self._send_claims()
        self._queue_computes()
        self._compute_ready()
        self._reveal(now)
        self._finalize(now)

    def _fail(self, job: JobRecord, reason: str) -> None:
        """Count a failed step; retry it later, or give up after MAX_FAILURES."""
        failures = job.data.get("failures", 0) + 1
        # A failed claim / delivery leaves the job open to us: back to SEEN.
        retry_as = JobState.SEEN if job.state is JobState.CLAIMING else job.state
        if failures >= MAX_FAILURES:
            self.store.update_job(job.job_id, state=JobState.FAILED, reason=reason,
                                  failures=failures, pending=None)
            log.error("job given up", extra={"job_id": job.job_id, "reason": reason})
        else:
            self.store.update_job(job.job_id, state=retry_as, failures=failures, pending=None)
            log.warning("job step failed; will retry",
                        extra={"job_id": job.job_id, "reason": reason, "failures": failures})

    # ---- transactions in flight ------------------------------------------------------

    def _track_transactions(self) -> None:
        waiting: dict[int, list[JobRecord]] = {}
        for job in self.store.jobs(JobState.SEEN, JobState.CLAIMING, JobState.CLAIMED,
                                   JobState.COMMITTED, JobState.REVEALED):
            pending = job.data.get("pending")
            if pending:
                waiting.setdefault(pending["tx"], []).append(job)
        for tx_id, jobs in waiting.items():
            record = self.txm.store.tx(tx_id)
            if record is None or record.status.is_open:
                continue
            kind = jobs[0].data["pending"]["kind"]
            if record.status is TxStatus.NONCE_TAKEN or not record.succeeded:
                for job in jobs:
                    self._fail(job, f"{kind} transaction {record.status.value}"
                                    f"{'' if record.succeeded else ' (reverted)'}")
                continue
            self._apply(kind, jobs, record.mined_hash)

    def _apply(self, kind: str, jobs: list[JobRecord], tx_hash: bytes | None) -> None:
        if kind in ("claim", "deliver"):
            receipt = self.txm.w3.eth.get_transaction_receipt(tx_hash)
            events = self.market.decode_receipt(receipt)
            won = {e.job_id for e in events if getattr(e, "provider", None) == self.me}
            for job in jobs:
                if job.job_id not in won:
                    state = JobState.LOST
                    log.info("job lost", extra={"job_id": job.job_id, "step": kind})
                else:
                    state = JobState.CLAIMED if kind == "claim" else JobState.REVEALED
                job = self.store.update_job(job.job_id, state=state, pending=None)
                if "settled" in job.data:  # it settled while our receipt was in flight
                    self.store.update_job(job.job_id, state=outcome(self.store, job))
        elif kind == "commit":
            for job in jobs:
                self.store.update_job(job.job_id, state=JobState.COMMITTED, pending=None)
        elif kind == "reveal":
            for job in jobs:
                self.store.update_job(job.job_id, state=JobState.REVEALED, pending=None)
        else:  # finalize: the JobFinalized event settles it; a skipped one is retried
            for job in jobs:
                self.store.update_job(job.job_id, pending=None)

    # ---- taking jobs -----------------------------------------------------------------

    def _refuse(self, job: JobRecord, reason: str) -> None:
        self.store.update_job(job.job_id, state=JobState.REFUSED, reason=reason)
        log.info("job refused", extra={"job_id": job.job_id, "reason": reason})

    def _consider_new(self, now: int) -> None:
        # Capacity bounds work in progress; revealed jobs only wait for settlement.
        held = len(self.store.jobs(JobState.CLAIMING, JobState.CLAIMED, JobState.COMMITTED))
        held += sum(1 for j in self._queued if self._is_seen(j))
        at_risk = self.store.stake_at_risk()
        free = None
        for job in self.store.jobs(JobState.SEEN):
            if job.job_id in self._queued or job.data.get("pending"):
                continue
            if now + CLAIM_MARGIN > job.data["claim_deadline"]:
                self.store.update_job(job.job_id, state=JobState.LOST, reason="claim deadline")
                continue
            if job.reward < self.policy.min_price:
                self._refuse(job, "reward below min_price")
                continue
            engine = self.engines[job.model_id]
            try:
                engine.tokenize(bytes.fromhex(job.data["input"]))
            except ValueError as err:  # the engine's InvalidInputError family
                self._refuse(job, f"invalid input: {err}")
                continue
            if held >= self.policy.capacity:
                return
            info = self.market.job(job.job_id)
            if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED) or (
                info.nclaimed >= _seats(info)
            ):
                self.store.update_job(job.job_id, state=JobState.LOST, reason="taken")
                continue
            collateral = info.collateral_per_seat
            if free is None:
                free = self.stake_free = self.market.provider(self.me).free
            if at_risk + collateral > self.policy.max_stake_at_risk or collateral > free:
                continue  # wait: stake frees up when held jobs settle
            at_risk += collateral
            free -= collateral
            held += 1
            self.store.update_job(job.job_id, collateral=collateral)
            self._queued.add(job.job_id)
            if job.data["r"] == 1 and not job.data.get("challenge"):
                # deliver = claim + result in one call: compute first
                self._compute.put(job.model_id, job.job_id)
            else:
                self._claims.put(None, job.job_id)

    def _is_seen(self, job_id: int) -> bool:
        job = self.store.job(job_id)
        return job is not None and job.state is JobState.SEEN

    def _send_claims(self) -> None:
        while (batch := self._claims.ready()) is not None:
            ids = batch[1]
            self._queued.difference_update(ids)
            ids = [i for i in ids if self._is_seen(i)]
            for chunk in _chunks(ids):
                self._send(self.market.build_claim_many(chunk), "claim", chunk, JobState.CLAIMING)

    # ---- computing and sealing -------------------------------------------------------

    def _queue_computes(self) -> None:
        for job in self.store.jobs(JobState.CLAIMED):
            if job.job_id not in self._queued and not job.data.get("pending"):
                self._queued.add(job.job_id)
                self._compute.put(job.model_id, job.job_id)

    def _compute_ready(self) -> None:
        while (batch := self._compute.ready()) is not None:
            model_id, ids = batch
            self._queued.difference_update(ids)
            jobs = [j for j in map(self.store.job, ids)
                    if j is not None and j.state in (JobState.SEEN, JobState.CLAIMED)]
            if jobs:
                self._compute_and_seal(model_id, jobs)

    def _results(self, model_id: bytes, jobs: list[JobRecord]) -> dict[int, bytes]:
        """Stored results where they exist (never a second salt), else computed now."""
        out: dict[int, bytes] = {}
        todo = []
        for job in jobs:
            stored = self.store.result(job.job_id)
            if stored is not None:
                out[job.job_id] = stored.result
            else:
                todo.append(job)
        if todo:
            started = time.monotonic()
            computed = self.engines[model_id].embed([bytes.fromhex(j.data["input"]) for j in todo])
            self._engine_seconds.inc(time.monotonic() - started)
            self._engine_jobs.inc(len(todo))
            for job, result in zip(todo, computed):
                if self.result_hook is not None:
                    result = self.result_hook(job.job_id, result)
                self.store.save_result(job.job_id, result_digest(result), result, new_salt())
                out[job.job_id] = result
        return out

    def _compute_and_seal(self, model_id: bytes, jobs: list[JobRecord]) -> None:
        try:
            results = self._results(model_id, jobs)
        except ValueError as err:  # one bad input fails the batch: redo one by one
            if len(jobs) == 1:
                self._refuse(jobs[0], f"engine refused input: {err}")
                return
            for job in jobs:
                self._compute_and_seal(model_id, [job])
            return
        deliver = [j.job_id for j in jobs if j.state is JobState.SEEN]
        commit = [j.job_id for j in jobs if j.state is JobState.CLAIMED]
        for chunk in _chunks(deliver):
            call = self.market.build_deliver_many(chunk, [results[i] for i in chunk])
            self._send(call, "deliver", chunk, JobState.CLAIMING)
        seals = {}
        for job_id in commit:
            stored = self.store.result(job_id)
            assert stored is not None
            seals[job_id] = seal(job_id, self.me, stored.digest, stored.salt)
        for chunk in _chunks(commit):
            self._send_all_or_each("commit", chunk, lambda ids: self.market.build_commit_many(
                ids, [seals[i] for i in ids]))

    def _send_all_or_each(self, kind: str, ids: list[int], build) -> None:
        """All-or-nothing batches: if the batch would revert, send each job alone so
        one bad job does not hold back the others."""
        try:
            self._send(build(ids), kind, ids)
        except TxWouldRevert:
            for job_id in ids:
                try:
                    self._send(build([job_id]), kind, [job_id])
                except TxWouldRevert as err:
                    job = self.store.job(job_id)
                    assert job is not None
                    self._fail(job, f"{kind} would revert: {err}")

    # ---- revealing and settling ------------------------------------------------------

    def _due_for_check(self, job_id: int) -> bool:
        now = time.monotonic()
        if self._next_check.get(job_id, 0) > now:
            return False
        self._next_check[job_id] = now + self.poll_interval
        return True

    def _reveal(self, now: int) -> None:
        ready = []
        for job in self.store.jobs(JobState.COMMITTED):
            if job.data.get("pending") or not self._due_for_check(job.job_id):
                continue
            info = self.market.job(job.job_id)
            if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED):
                continue  # settled meanwhile; the JobFinalized event says how
            if now > info.reveal_deadline:
                self.store.update_job(job.job_id, state=JobState.FAILED,
                                      reason="reveal deadline passed")
                log.error("reveal deadline missed", extra={"job_id": job.job_id})
                continue
            if info.ncommitted == _seats(info) or now > info.commit_deadline:
                ready.append(job.job_id)
        stored = {i: self.store.result(i) for i in ready}
        for chunk in _chunks(ready):
            self._send_all_or_each("reveal", chunk, lambda ids: self.market.build_reveal_many(
                ids, [stored[i].result for i in ids], [stored[i].salt for i in ids]))

    def _finalize(self, now: int) -> None:
        due = []
        for job in self.store.jobs(JobState.REVEALED):
            if job.data.get("pending") or not self._due_for_check(job.job_id):
                continue
            info = self.market.job(job.job_id)
            if info.status.settled:
                # Settled without an event reaching us (an unchallenged r = 1 delivery
                # settles lazily when its window ends): for a revealed seat the
                # standing digest alone decides.
                settled = {"status": int(info.status), "digest": info.result_digest.hex()}
                state = outcome(self.store, job, settled)
                if state is JobState.RELEASED and info.status is JobStatus.FINALIZED:
                    state = JobState.SLASHED  # revealed against the standing majority
                self.store.update_job(job.job_id, state=state, settled=settled)
                log.info("job settled", extra={"job_id": job.job_id, "state": state.value,
                                               "status": info.status.name})
            elif _finalize_due(info, now):
                due.append(job.job_id)
        for chunk in _chunks(due):
            self._send(self.market.build_finalize_many(chunk), "finalize", chunk)


def _finalize_due(info, now: int) -> bool:
    """Whether `finalize` settles the job now (contracts/README.md, "finalize is due")."""
    if info.status is JobStatus.DELIVERED:
        return now > info.challenge_end
    if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED):
        return False
    return (info.nrevealed == _seats(info)
            or (now > info.commit_deadline and info.nrevealed == info.ncommitted)
            or now > info.reveal_deadline)


def _seats(info) -> int:
    """Seats of the job's current round (a challenge round has R_CHALLENGE)."""
    return R_CHALLENGE if info.status is JobStatus.CHALLENGED else info.r


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + MAX_BATCH] for i in range(0, len(ids), MAX_BATCH)]
