"""The provider's job logic: which jobs to take, and carrying each one to payment.

Two parts share the store, which is the only source of truth (so a restart simply
carries on from it):

- `JobBook` (a watcher handler) records what the chain announces: jobs posted for the
  models we serve, challenges, and each held job's final outcome.
- `JobWorker` (a service) moves held jobs forward each tick, always through the tx
  manager and the batch entry points:

  r >= 2 and re-execution rounds (seats drawn by stake, contracts/modules/sortition.vy):
           SEEN -claim_many-> CLAIMING -> CLAIMED -engine, salt stored, commit_many->
           COMMITTED -reveal_many-> REVEALED -finalize_many-> PAID | SLASHED | RELEASED
           CLAIMING -> UNDRAWN (no seat drawn to us) -(the draw's take window over:
           its untaken seats may be drawn again)-> SEEN -claim_many-> ...
  r == 1:  SEEN -claim_many-> CLAIMING (the engine computes meanwhile) -> CLAIMED
           -deliver_many, once the claim's receipt is in-> REVEALED -(after the
           challenge window)-> PAID | SLASHED

A claim takes every seat of the round drawn to us: the job's `seats` lists them (and
an r = 1 job's seat 0), and one commit and one reveal cover them all. A result and its
salt are fsync'ed in the store before the seal that binds them is sent, and never
recomputed: a crash between commit and reveal reveals the stored bytes.
Per-job data (JSON in the store): the posted terms, `pending` (the one transaction in
flight for the job: kind and intent id), `last_tx` (the last step applied), `seats`,
`failures`, `reason` for refusals and give-ups, `redraw_at` while UNDRAWN.

Reorgs: when the tx manager re-opens a step it had confirmed (a reorg took its block),
the job's pending becomes a `resync` on its last transaction in flight; once that is
mined again, the job's state is re-derived from the contract (which seats are ours now),
so a re-mined claim carries on and a lost one is not mistaken for ours.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from client.chain import block_number, headers, mined_receipt
from client.errors import ContractError
from client.events import (ItemSkipped, JobChallenged, JobClaimed, JobFinalized, JobPosted, ProviderSlashed,
                           ResultRevealed)
from client.marketplace import Marketplace, Token
from client.protocol import (MAX_ID_BATCH, MAX_RESULT_BATCH, R_CHALLENGE, JobStatus, new_salt, redraw_delay,
                             result_digest, seal)
from provider.agent.batching import Batcher
from provider.agent.config import BatchConfig, PolicyConfig
from provider.agent.errors import TxWouldRevert
from provider.agent.gaslimits import GasLimits
from provider.agent.metrics import Metrics
from provider.agent.partition import ProviderDirectory, claim_delay
from provider.agent.rpc import TRANSIENT_ERRORS, Backoff, retry
from provider.agent.service import Service
from provider.agent.store import JobRecord, JobState, Store, TxRecord, TxStatus
from provider.agent.txmanager import TxManager

log = logging.getLogger("verinfer.agent.jobs")

# The marketplace events the agent reacts to (the rest it learns from its own receipts).
WATCHED_EVENTS = ("JobPosted", "JobChallenged", "ProviderSlashed", "JobFinalized")
MAX_FAILURES = 3  # a job whose transaction keeps failing is given up (FAILED)
CLAIM_MARGIN = 2  # seconds of chain time left before a deadline to still try
STEPS = ("claim", "deliver", "commit", "reveal")  # transactions that change our seats
RESYNC = "resync"  # pending kind: re-derive the job from the contract once that tx is mined
# A claim in the post's (or challenge's) block, or a delivery in its claim's: sent again
# this many seconds later, in a later block.
RETRY_SOON = 1.0
TOO_EARLY = ("jobs: draw not ready", "jobs: claimed in this block")
NOT_DRAWN = "jobs: not drawn"
# Gas to draw one seat, cold (a weight tree walk, the seat's provider, SeatDrawn): ~33k warm.
DRAW_GAS = 50_000
LOST_RACE = ("jobs: already claimed", "jobs: not claimable")  # an r = 1 claim another beat
STAKE_SHORT = "staking: insufficient free stake"
# A delivery skipped for these will never go through: the claimant is slashed at finalize.
TOO_LATE = ("jobs: claim deadline passed", "jobs: not open")
# Outcomes the chain's own events decided: no reorg of our steps can change them.
SETTLED = (JobState.PAID, JobState.SLASHED, JobState.RELEASED, JobState.CANCELLED,
           JobState.REFUSED)


class Engine(Protocol):
    """What the worker needs from an inference engine (provider.engine.Engine)."""

    def tokenize(self, job_input: str | bytes, index: int | None = None) -> list[int]: ...

    def embed(self, inputs: list[bytes]) -> list[bytes]: ...

    def self_test(self) -> None: ...


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
                # One event per seat: a provider holding two seats may be slashed twice.
                seat = str(event.seat)
                self.store.update_job(job.job_id, slashed={**job.data.get("slashed", {}), seat: event.amount},
                                      faults={**job.data.get("faults", {}), seat: int(event.reason)})
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
        """A disputed r = 1 delivery re-opens as a round of R_CHALLENGE seats drawn by
        stake, its deliverer as eligible as anyone: every job we did not refuse becomes
        claimable again (our own delivery keeps its seat 0 in `seats`).

        A challenger may act right after the delivery, while our own claim or delivery
        is still in flight: it goes on, and its receipt re-opens the job for the round
        (JobWorker._apply). A round already learned from the contract (a claim of ours
        that met it before this event) stays as it is."""
        if job.state is JobState.REFUSED or job.data.get("challenge"):
            return
        round_terms = _round_terms(event)
        if _pending_kind(job) in ("claim", "deliver", RESYNC):
            self.store.update_job(job.job_id, **round_terms)
        else:
            self.store.update_job(job.job_id, state=JobState.SEEN, pending=None, failures=0,
                                  **round_terms)
        log.info("job challenged; re-execution round open", extra={"job_id": job.job_id})

    def _finalized(self, job: JobRecord, event: JobFinalized) -> None:
        settled = {"status": int(event.status), "digest": event.result_digest.hex()}
        if job.state is JobState.CLAIMING or _pending_kind(job) == "deliver":
            # Our claim / delivery receipt decides which seats we held; the worker
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
    same transaction, so a seat holder that was not slashed revealed (or delivered) on
    every seat it held (one reveal covers them all): it is paid exactly when the
    standing digest is its own."""
    settled = settled or job.data["settled"]
    if job.data.get("slashed"):
        return JobState.SLASHED
    if job.data.get("seats"):
        ours = store.result(job.job_id)
        paid = (settled["status"] == JobStatus.FINALIZED and ours is not None
                and ours.digest.hex() == settled["digest"])
        return JobState.PAID if paid else JobState.RELEASED
    return JobState.CANCELLED if settled["status"] == JobStatus.CANCELLED else JobState.LOST


class JobWorker(Service):
    """Moves held jobs forward: claim, compute, commit or deliver, reveal, finalize."""

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
        start_block: int = 0,
    ):
        """`result_hook(job_id, result) -> result` replaces results before they are
        sealed: only for demos and fault tests of a dishonest provider. `start_block`:
        where to look for provider registrations (the marketplace's deploy block)."""
        super().__init__()
        self.store, self.txm, self.market = store, txm, market
        self.engines, self.policy, self.poll_interval = dict(engines), policy, poll_interval
        self.result_hook = result_hook
        self.me = txm.address
        self._claims: Batcher[None, int] = Batcher(claim_batch.max_size, claim_batch.max_wait)
        self._compute: Batcher[bytes, int] = Batcher(engine_batch.max_size, engine_batch.max_wait)
        self._claiming: set[int] = set()  # ids inside the claim batcher
        self._computing: set[int] = set()  # ids inside the engine batcher
        self._next_check: dict[int, float] = {}  # job id -> monotonic time of its next view
        self._delivered_until: dict[int, int] = {}  # our delivery -> end of its challenge window
        self.providers = ProviderDirectory(market, start_block=start_block)
        self._turn_at: dict[int, float] = {}  # SEEN job id -> monotonic time we may claim it
        self._deliver_at: dict[int, float] = {}  # CLAIMED r = 1 job -> time we may deliver it
        self._redraw_at: dict[int, int] = {}  # UNDRAWN job id -> chain time its seats may be redrawn
        self._finalize_at: dict[int, float] = {}  # REVEALED job id -> time we may finalize it
        self._vetted: set[int] = set()  # SEEN job ids whose input the engine accepted
        self.stake_free: int | None = None  # last read from the contract (for the dashboard)
        self._gas = GasLimits()
        metrics = metrics or Metrics()
        self._steps = metrics.counter("verinfer_job_steps_total", "Job transitions sent")
        self._engine_jobs = metrics.counter("verinfer_engine_jobs_total", "Jobs computed")
        self._engine_seconds = metrics.counter("verinfer_engine_seconds_total", "Engine time")
        self._engine_cpu = metrics.counter("verinfer_engine_cpu_seconds_total",
                                           "Engine CPU time (its thread and thread pools)")

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

    def _send(self, call, kind: str, job_ids: list[int], state: JobState | None = None,
              units: int | None = None, extra_gas: int = 0) -> int:
        """Send a step for `job_ids`; each job records the pending transaction (and its
        new `state`) atomically with the intent, so a crash can't leave either alone.
        `units`: what the step's gas grows with (GasLimits), if not one per job: the
        seats a commit or reveal covers. `extra_gas`: added to an estimated limit."""

        def mark(tx_id: int) -> None:
            self.store.update_jobs(job_ids, state=state, pending={"kind": kind, "tx": tx_id})

        units = len(job_ids) if units is None else units
        gas = self._gas.limit(kind, units)
        meta: dict[str, Any] = {"jobs": job_ids}
        if units != len(job_ids):
            meta["units"] = units
        if gas is not None:
            meta["learned_gas"] = True
        tx_id = self.txm.send(call.to, call.data, kind=kind, meta=meta, gas=gas, extra_gas=extra_gas,
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
        now = headers(self.txm.w3, ["latest"])[0].timestamp
        self._track_transactions(now)
        self._retry_undrawn(now)
        self._consider_new(now)
        self._send_claims()
        self._queue_work()
        self._compute_ready()
        self._reveal(now)
        self._finalize(now)

    def _fail(self, job: JobRecord, reason: str, count: bool = True) -> None:
        """Count a failed step (a step no fault of the job's failed: `count` False); retry
        it later, or give up after MAX_FAILURES.

        A seat we applied but the chain does not show lost its claim to a reorg that
        the tx manager may not have noticed yet: no failure then (giving up would get
        us slashed once the claim is mined again); the job waits for its last step
        and re-derives its state from the contract."""
        last_tx = job.data.get("last_tx")
        if (job.state in (JobState.CLAIMED, JobState.COMMITTED) and last_tx is not None
                and not self.market.assignment(job.job_id, self.me).assigned):
            if _pending_kind(job) != RESYNC:
                self.store.update_job(job.job_id, pending={"kind": RESYNC, "tx": last_tx})
            log.warning("job seat not on chain (reorg); re-checking",
                        extra={"job_id": job.job_id, "reason": reason})
            return
        failures = job.data.get("failures", 0) + count
        # A failed claim leaves the job open to us: back to SEEN.
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

    def _track_transactions(self, now: int) -> None:
        self._notice_reorgs()
        waiting = self.store.pending_steps(JobState.SEEN, JobState.CLAIMING, JobState.CLAIMED,
                                           JobState.COMMITTED, JobState.REVEALED)
        for (tx_id, kind), ids in waiting.items():
            record = self.txm.store.tx(tx_id)
            if record is None or record.status.is_open:
                continue
            if kind != RESYNC and record.status is not TxStatus.NONCE_TAKEN and record.succeeded:
                self._apply(kind, ids, record, now)
                continue
            if kind != RESYNC:
                self._gas.forget(kind)
            # A batch sent on a learned gas limit skipped the estimate that would have
            # found its failing job: it blames none, the next (estimated) batch finds it.
            blame = record.status is TxStatus.NONCE_TAKEN or not (
                record.meta.get("learned_gas") and len(record.meta["jobs"]) > 1)
            for job in self.store.jobs(ids=ids):
                if kind == RESYNC:
                    self._resync(job, record)
                else:
                    self._fail(job, f"{kind} transaction {record.status.value}"
                                    f"{'' if record.succeeded else ' (reverted)'}", count=blame)

    def _receipt(self, tx_hash: bytes | None) -> Any | None:
        """The receipt, or None while the transaction is not mined (anymore): a reorg
        can take it out of the chain after the tx manager counted it confirmed."""
        return None if tx_hash is None else mined_receipt(self.txm.w3, tx_hash)

    def _apply(self, kind: str, ids: list[int], record: TxRecord, now: int) -> None:
        """Apply a mined step to its jobs. Claims and deliveries skip items instead of
        reverting: their receipts say, job by job, which seats we took (one JobClaimed
        per seat; none for an r = 1 claim, seat 0) or delivered, or why an item was
        skipped (ItemSkipped)."""
        receipt = None
        if kind in ("claim", "deliver"):
            receipt = self._receipt(record.mined_hash)
            if receipt is None:
                return  # orphaned: the tx manager re-opens and re-sends it; wait for it
        won: dict[int, list[int]] = {}  # job id -> seats we took, or delivered
        skipped: dict[int, str] = {}  # job id -> why our item was skipped
        for event in [] if receipt is None else self.market.decode_receipt(receipt):
            if isinstance(event, (JobClaimed, ResultRevealed)) and event.provider == self.me:
                won.setdefault(event.job_id, []).append(event.seat)
            elif isinstance(event, ItemSkipped) and event.caller == self.me:
                skipped[event.job_id] = event.reason
        sent = record.meta.get("jobs", [])  # all or nothing but for claims and deliveries
        if kind == "claim":  # an r = 1 claim took seat 0 without an event, if not skipped
            won |= {job_id: [0] for job_id in sent if job_id not in skipped and job_id not in won}
        if record.gas_used is not None:
            units = record.meta.get("units", len(sent))
            self._gas.learn(kind, record.gas_used, units,
                            units if receipt is None else len(won.keys() & set(sent)))
        redraw_at = None
        if kind == "claim" and NOT_DRAWN in skipped.values():
            # The seats nobody took within the take window of their draw (made in this
            # block or before) are drawn again by the next claim: ours, from then on.
            drawn = headers(self.txm.w3, [record.block_number])[0]
            redraw_at = (now if drawn is None else drawn.timestamp) + redraw_delay(
                self.market.min_windows().claim) + 1
        failed: list[tuple[int, str]] = []
        delivered: list[int] = []
        # One commit for the batch; each job is re-read inside it, as the watcher's
        # thread may have moved it meanwhile.
        with self.store.atomic():
            for job in self.store.jobs(ids=ids):
                if (job.data.get("pending") or {}).get("tx") != record.id:
                    continue
                extra: dict[str, Any] = {"last_tx": record.id} if kind in STEPS else {}
                if kind == "claim":
                    self._apply_claim(job, won.get(job.job_id, []), skipped.get(job.job_id),
                                      redraw_at, extra)
                elif kind == "deliver":
                    reason = skipped.get(job.job_id, "no event")
                    if job.job_id in won:
                        delivered.append(job.job_id)
                    if not self._apply_delivery(job, job.job_id in won, reason, extra):
                        failed.append((job.job_id, reason))
                else:
                    # finalize (state None): the JobFinalized event settles it; a skipped
                    # one is retried
                    state = {"commit": JobState.COMMITTED, "reveal": JobState.REVEALED}.get(kind)
                    self.store.update_job(job.job_id, state=state, pending=None, **extra)
                settled = self.store.job(job.job_id)
                if kind in ("claim", "deliver") and settled is not None and "settled" in settled.data:
                    # it settled while our receipt was in flight
                    self.store.update_job(job.job_id, state=outcome(self.store, settled))
        for job in self.store.jobs(ids=[job_id for job_id, _ in failed]):
            self._fail(job, f"delivery skipped: {dict(failed)[job.job_id]}")
        if delivered:
            # Our deliveries' challenge windows end by now + window (they were mined by
            # now): no view of them until then (_viewed), a view each saved.
            until = now + self.market.call("challenge_window")
            self._delivered_until.update(dict.fromkeys(delivered, until))

    def _apply_claim(self, job: JobRecord, seats: list[int], reason: str | None,
                     redraw_at: int | None, extra: dict[str, Any]) -> None:
        job_id = job.job_id
        state: JobState
        if seats:
            held = sorted({*job.data.get("seats", []), *seats})
            if job.data["r"] == 1 and not job.data.get("challenge") and max(seats) > 0:
                # A claim that met a challenge before its event reached us: the round's seats.
                extra |= _round_terms(self.market.job(job_id))
            state = JobState.CLAIMED
            extra |= {"seats": held, "failures": 0}
            self.store.update_job(job_id, state=state, pending=None,
                                  collateral=job.data.get("seat_collateral", 0) * len(held), **extra)
            log.info("seats taken", extra={"job_id": job_id, "seats": seats})
            return
        reason = reason or "no event"
        if reason == NOT_DRAWN:
            # Left alone until the take window is over; then claimed again (the draw of
            # a seat whose provider never took it is redone by the next claim).
            state, extra = JobState.UNDRAWN, extra | {"reason": "not drawn", "redraw_at": redraw_at}
            self._redraw_at[job_id] = redraw_at
        elif reason in TOO_EARLY:  # the claim shared the post's or challenge's block
            state = JobState.SEEN
            self._turn_at[job_id] = time.monotonic() + RETRY_SOON
        elif reason == STAKE_SHORT:
            failures = job.data.get("failures", 0) + 1
            state = JobState.FAILED if failures >= MAX_FAILURES else JobState.SEEN
            extra |= {"failures": failures, "reason": reason}
        elif reason in LOST_RACE and job.data.get("challenge") and not job.data.get("seats"):
            # Beaten to the r = 1 seat, but a challenge re-opened the job: its round's
            # seats are drawn, ours to take if drawn.
            state, extra = JobState.SEEN, extra | {"failures": 0}
        else:
            state, extra = _given_up(job), extra | {"reason": reason}
        self.store.update_job(job_id, state=state, pending=None,
                              collateral=job.data.get("seat_collateral", 0) * len(job.data.get("seats", [])),
                              **extra)
        log.info("claim skipped", extra={"job_id": job_id, "reason": reason, "state": state.value})

    def _apply_delivery(self, job: JobRecord, delivered: bool, reason: str,
                        extra: dict[str, Any]) -> bool:
        """Apply our delivery of an r = 1 job; False: a failure to count (`_fail`)."""
        if delivered:
            # A challenge that came before its receipt re-opened the job: a round we
            # may be drawn for like anyone.
            state = JobState.SEEN if job.data.get("challenge") else JobState.REVEALED
            self.store.update_job(job.job_id, state=state, pending=None, failures=0, **extra)
            return True
        if reason in TOO_EARLY:  # mined in its claim's block: again from a later one
            self._deliver_at[job.job_id] = time.monotonic() + RETRY_SOON
            self.store.update_job(job.job_id, pending=None, **extra)
            return True
        if reason in TOO_LATE:
            self.store.update_job(job.job_id, state=JobState.FAILED, pending=None,
                                  reason=f"delivery skipped: {reason}", **extra)
            log.error("delivery too late", extra={"job_id": job.job_id, "reason": reason})
            return True
        self.store.update_job(job.job_id, **extra)
        return False

    # ---- reorgs of our own steps -----------------------------------------------------

    def _notice_reorgs(self) -> None:
        """Steps the tx manager re-opened because a reorg took their block: it sends each
        again at its nonce. Its job waits for its last transaction in flight (the nonces
        mine in order), then `_resync` re-derives its state: a re-mined claim may now
        lose its seats, or win some it had lost."""
        for tx in self.txm.store.reorged_txs():
            if tx.kind not in STEPS:
                continue
            for job_id in tx.meta.get("jobs", []):
                with self.store.atomic():
                    job = self.store.job(job_id)
                    if job is None or job.state in SETTLED:
                        continue
                    pending = job.data.get("pending") or {}
                    if pending.get("tx") == tx.id and pending.get("kind") in (tx.kind, RESYNC):
                        continue  # never applied, or already waiting for it
                    if pending.get("kind") == RESYNC and pending["tx"] > tx.id:
                        continue
                    # A lost, undrawn or given-up job may hold seats once its claim is re-mined.
                    state = JobState.CLAIMING if job.state in (
                        JobState.SEEN, JobState.LOST, JobState.FAILED, JobState.UNDRAWN) else None
                    self.store.update_job(job_id, state=state, pending={
                        "kind": RESYNC, "tx": max(tx.id, pending.get("tx", 0))})
                log.warning("job step orphaned by a reorg; re-checking once mined again",
                            extra={"job_id": job_id, "step": tx.kind, "tx_id": tx.id})

    def _resync(self, job: JobRecord, record: TxRecord) -> None:
        """Re-derive a job's state from the contract: which seats of it are ours now."""
        if record.mined_hash is not None and self._receipt(record.mined_hash) is None:
            return  # confirmed, then orphaned: the tx manager has yet to notice
        head = block_number(self.txm.w3)
        info = self.market.job(job.job_id, block=head)
        challenged = int(info.challenger, 16) != 0
        # Seat 0 is an r = 1 job's claimant; seats 1..R_CHALLENGE its re-execution round.
        seats = self.market.seats({job.job_id: range(R_CHALLENGE + 1 if challenged else info.r)},
                                  block=head)[job.job_id]
        current = range(1, R_CHALLENGE + 1) if challenged else range(info.r)
        held = [s for s, seat in seats.items() if seat.provider == self.me and seat.claimed]
        mine = [seats[s] for s in held if s in current]
        extra: dict[str, Any] = {"seats": held, **(_round_terms(info) if challenged else {})}
        if mine:
            state = (JobState.REVEALED if mine[0].revealed
                     else JobState.COMMITTED if mine[0].committed else JobState.CLAIMED)
        elif info.status in (JobStatus.OPEN, JobStatus.CHALLENGED) and (
                info.nclaimed < _seats(info)):
            state = JobState.SEEN  # seats untaken: drawn to us, or to be drawn again
        elif held:
            state = JobState.REVEALED  # our delivery, waiting for its round's settlement
        else:
            state = JobState.LOST
        with self.store.atomic():
            self.store.update_job(job.job_id, state=state, collateral=info.collateral_per_seat * len(held),
                                  pending=None, failures=0, last_tx=record.id,
                                  seat_collateral=info.collateral_per_seat, **extra)
            job = self.store.job(job.job_id) or job  # as the watcher's thread may have left it
            if "settled" in job.data:
                state = outcome(self.store, job)
                self.store.update_job(job.job_id, state=state)
        log.info("job re-derived from the contract", extra={"job_id": job.job_id,
                                                             "state": state.value, "seats": held})

    # ---- taking jobs -----------------------------------------------------------------

    def _refuse(self, job: JobRecord, reason: str) -> None:
        self.store.update_job(job.job_id, state=JobState.REFUSED, reason=reason)
        log.info("job refused", extra={"job_id": job.job_id, "reason": reason})

    def _give_up(self, job: JobRecord, reason: str) -> None:
        self.store.update_job(job.job_id, state=_given_up(job), reason=reason)

    def _retry_undrawn(self, now: int) -> None:
        """UNDRAWN jobs whose take window is over go back to SEEN: claimed again, a claim
        draws their untaken seats anew (or finds them all taken: LOST)."""
        ids = self.store.job_ids(JobState.UNDRAWN)
        self._redraw_at = {i: self._redraw_at[i] for i in ids if i in self._redraw_at}
        for job in self.store.jobs(JobState.UNDRAWN, ids=[i for i in ids if i not in self._redraw_at]):
            self._redraw_at[job.job_id] = job.data.get("redraw_at") or 0
        due = [i for i, at in self._redraw_at.items() if at <= now]
        if not due:
            return
        with self.store.atomic():  # as the watcher's thread may have settled some meanwhile
            due = [j.job_id for j in self.store.jobs(JobState.UNDRAWN, ids=due)]
            self.store.update_jobs(due, state=JobState.SEEN)
        for job_id in due:
            del self._redraw_at[job_id]
        log.info("undrawn jobs claimed again", extra={"jobs": len(due)})

    def _consider_new(self, now: int) -> None:
        """Claim the open jobs that policy, input, our turn (`_my_turn`), capacity and
        stake allow, in claim batches; an r = 1 job also goes to the engine at once, its
        result computed while the claim is in flight. Their contract state is read in
        one batched view."""
        seen_ids = self.store.job_ids(JobState.SEEN)
        seen = set(seen_ids)
        for gone in [j for j in self._turn_at if j not in seen]:
            del self._turn_at[gone]
        for challenged in [j for j in self._delivered_until if j in seen]:  # our delivery, disputed
            del self._delivered_until[challenged]
        self._vetted &= seen
        # Capacity bounds work in progress; revealed jobs only wait for settlement.
        counts = self.store.job_counts()
        held = sum(counts.get(s, 0) for s in (JobState.CLAIMING, JobState.CLAIMED,
                                              JobState.COMMITTED))
        held += len(self._claiming & seen)
        # Jobs waiting for our turn are not even read: at r = 1 most jobs an agent sees
        # are other providers' to take first.
        mono = time.monotonic()
        ready = [i for i in seen_ids if i not in self._claiming and self._turn_at.get(i, 0.0) <= mono]
        due: list[JobRecord] = []
        with self.store.atomic():  # one commit for every refusal of this pass
            for job in self.store.jobs(JobState.SEEN, ids=ready):
                if job.data.get("pending"):
                    continue
                if now + CLAIM_MARGIN > job.data["claim_deadline"]:
                    self._give_up(job, "claim deadline")
                elif job.reward < self.policy.price:
                    self._refuse(job, "reward below the provider's price")
                elif self._my_turn(job) and self._valid_input(job):
                    if held + len(due) >= self.policy.capacity:
                        break
                    due.append(job)
        if not due:
            return
        infos = self.market.jobs([j.job_id for j in due])
        at_risk = self.store.stake_at_risk()
        free = self.stake_free = self.market.provider(self.me).free
        with self.store.atomic():
            for job, info in zip(due, infos):
                if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED) or (
                    info.nclaimed >= _seats(info)
                ):
                    self._give_up(job, "not drawn; every seat taken" if job.data.get("redraw_at")
                                  else "taken")
                    continue
                # One seat's collateral: a draw may give us more, which the claim
                # only takes if our free stake covers them.
                collateral = info.collateral_per_seat
                if at_risk + collateral > self.policy.max_stake_at_risk or collateral > free:
                    continue  # wait: stake frees up when held jobs settle
                at_risk += collateral
                free -= collateral
                self.store.update_job(job.job_id, seat_collateral=collateral,
                                      collateral=collateral * (len(job.data.get("seats", [])) + 1))
                self._claiming.add(job.job_id)
                self._claims.put(None, job.job_id)
                if _single(job) and job.job_id not in self._computing:
                    self._computing.add(job.job_id)
                    self._compute.put(job.model_id, job.job_id)

    def _my_turn(self, job: JobRecord) -> bool:
        """Whether our turn to claim this job has come. An r = 1 job's seat goes to the
        first claim, and its result is computed while the claim is in flight, so
        racing for it wastes every loser's claim and engine run: it goes to the
        provider it hashes to, the others only take it after a grace
        (provider/agent/partition.py): at once if it ranks us first among the providers
        serving its model, at rank k once k x grace passed since we first asked. Other
        jobs' seats are drawn: no race."""
        if not self.policy.takeover_grace or not _single(job):
            return True
        if job.job_id not in self._turn_at:  # ranked once, with the providers known then
            serving = self.providers.serving(job.model_id)
            self._turn_at[job.job_id] = time.monotonic() + claim_delay(
                job.job_id, self.me, serving, self.policy.takeover_grace)
        return time.monotonic() >= self._turn_at[job.job_id]

    def _valid_input(self, job: JobRecord) -> bool:
        """Tokenize a job's input once; refuse it if the engine can't take it."""
        if job.job_id in self._vetted:
            return True
        try:
            self.engines[job.model_id].tokenize(bytes.fromhex(job.data["input"]))
        except ValueError as err:  # the engine's InvalidInputError family
            self._refuse(job, f"invalid input: {err}")
            return False
        self._vetted.add(job.job_id)
        return True

    def _send_claims(self) -> None:
        """Claim batches. Each gets gas to draw its jobs' seats on top of its estimate: a
        claim estimated after another's draw must make the draw itself if it lands
        first after all (a reorg took that draw, or its take window ran out)."""
        while (batch := self._claims.ready()) is not None:
            ids = batch[1]
            self._claiming.difference_update(ids)
            jobs = self.store.jobs(JobState.SEEN, ids=ids)  # still: not taken meanwhile
            for chunk in _chunks(jobs, MAX_ID_BATCH):
                draws = sum(R_CHALLENGE if j.data.get("challenge") else j.data["r"]
                            for j in chunk if not _single(j))
                chunk_ids = [j.job_id for j in chunk]
                self._send(self.market.build_claim_many(chunk_ids), "claim", chunk_ids, JobState.CLAIMING,
                           extra_gas=DRAW_GAS * draws)

    # ---- computing, delivering and sealing -------------------------------------------

    def _queue_work(self) -> None:
        """Claimed jobs: the engine computes those without a stored result; the others'
        delivery (r = 1) or commit goes out now."""
        mono = time.monotonic()
        self._deliver_at = {j: at for j, at in self._deliver_at.items() if at > mono}
        stored = []
        for job in self.store.jobs(JobState.CLAIMED):
            if job.job_id in self._computing or job.data.get("pending"):
                continue
            if self.store.result(job.job_id) is not None:
                stored.append(job)
            else:
                self._computing.add(job.job_id)
                self._compute.put(job.model_id, job.job_id)
        if stored:
            self._send_results(stored)

    def _compute_ready(self) -> None:
        while (batch := self._compute.ready()) is not None:
            model_id, ids = batch
            self._computing.difference_update(ids)
            # SEEN or CLAIMING: an r = 1 job whose claim is not mined yet
            jobs = self.store.jobs(JobState.SEEN, JobState.CLAIMING, JobState.CLAIMED, ids=ids)
            if jobs:
                self._compute_and_send(model_id, jobs)

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
            started, cpu = time.monotonic(), _engine_cpu()
            computed = self.engines[model_id].embed([bytes.fromhex(j.data["input"]) for j in todo])
            self._engine_seconds.inc(time.monotonic() - started)
            self._engine_cpu.inc(_engine_cpu() - cpu)
            self._engine_jobs.inc(len(todo))
            with self.store.atomic():  # one fsync for the batch, still before any seal is sent
                for job, result in zip(todo, computed):
                    if self.result_hook is not None:
                        result = self.result_hook(job.job_id, result)
                    self.store.save_result(job.job_id, result_digest(result), result, new_salt())
                    out[job.job_id] = result
        return out

    def _compute_and_send(self, model_id: bytes, jobs: list[JobRecord]) -> None:
        try:
            self._results(model_id, jobs)
        except ValueError as err:  # one bad input fails the batch: redo one by one
            if len(jobs) == 1:
                self._refuse(jobs[0], f"engine refused input: {err}")
                return
            for job in jobs:
                self._compute_and_send(model_id, [job])
            return
        # Those claimed by now (read again: the engine took a while)
        claimed = [j for j in self.store.jobs(JobState.CLAIMED, ids=[j.job_id for j in jobs])
                   if not j.data.get("pending")]
        if claimed:
            self._send_results(claimed)

    def _send_results(self, jobs: list[JobRecord]) -> None:
        """Deliver (r = 1) or commit claimed jobs whose results are stored. A delivery
        goes out only after its claim's receipt was applied, so never in the claim's
        block, as the contract requires (a claim and delivery sent together could both
        be copied from the mempool)."""
        mono = time.monotonic()
        deliver = [j.job_id for j in jobs if _single(j) and self._deliver_at.get(j.job_id, 0.0) <= mono]
        commit = [j for j in jobs if not _single(j)]
        stored = {i: self.store.result(i) for i in deliver + [j.job_id for j in commit]}
        for chunk in _chunks(deliver, MAX_RESULT_BATCH):
            call = self.market.build_deliver_many(chunk, [stored[i].result for i in chunk])
            self._send(call, "deliver", chunk)
        seals = {j.job_id: seal(j.job_id, self.me, stored[j.job_id].digest, stored[j.job_id].salt)
                 for j in commit}
        for chunk in _chunks(commit, MAX_ID_BATCH):
            self._send_all_or_each("commit", chunk, lambda ids: self.market.build_commit_many(
                ids, [seals[i] for i in ids]))

    def _send_all_or_each(self, kind: str, jobs: list[JobRecord], build) -> None:
        """All-or-nothing batches: if the batch would revert, send each job alone so
        one bad job does not hold back the others."""
        ids = [j.job_id for j in jobs]
        try:
            self._send(build(ids), kind, ids, units=sum(_round_seats(j) for j in jobs))
        except TxWouldRevert:
            for job in jobs:
                try:
                    self._send(build([job.job_id]), kind, [job.job_id], units=_round_seats(job))
                except TxWouldRevert as err:
                    self._fail(self.store.job(job.job_id) or job, f"{kind} would revert: {err}")

    # ---- revealing and settling ------------------------------------------------------

    def _due_for_check(self, job_id: int) -> bool:
        now = time.monotonic()
        if self._next_check.get(job_id, 0) > now:
            return False
        self._next_check[job_id] = now + self.poll_interval
        return True

    def _viewed(self, state: JobState, now: int) -> list[tuple[JobRecord, Any]]:
        """The jobs in `state` due for a fresh view, with their views read in one batch.
        Our r = 1 deliveries are left alone, not even read from the store, until their
        challenge window ends (chain time)."""
        # An expired entry means what no entry means: drop them, or both grow by a job each.
        mono = time.monotonic()
        self._next_check = {j: t for j, t in self._next_check.items() if t > mono}
        self._delivered_until = {j: end for j, end in self._delivered_until.items() if end >= now}
        ids = [i for i in self.store.job_ids(state)
               if self._delivered_until.get(i, -1) < now and self._due_for_check(i)]
        due = [j for j in self.store.jobs(state, ids=ids) if not j.data.get("pending")]
        return list(zip(due, self.market.jobs([j.job_id for j in due])))

    def _reveal(self, now: int) -> None:
        ready = []
        for job, info in self._viewed(JobState.COMMITTED, now):
            if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED):
                continue  # settled meanwhile; the JobFinalized event says how
            if now > info.reveal_deadline:
                self.store.update_job(job.job_id, state=JobState.FAILED,
                                      reason="reveal deadline passed")
                log.error("reveal deadline missed", extra={"job_id": job.job_id})
                continue
            if info.ncommitted == _seats(info) or now > info.commit_deadline:
                ready.append(job)
        stored = {j.job_id: self.store.result(j.job_id) for j in ready}
        for chunk in _chunks(ready, MAX_RESULT_BATCH):
            self._send_all_or_each("reveal", chunk, lambda ids: self.market.build_reveal_many(
                ids, [stored[i].result for i in ids], [stored[i].salt for i in ids]))

    def _finalize(self, now: int) -> None:
        held = set(self.store.job_ids(JobState.REVEALED))
        for gone in [j for j in self._finalize_at if j not in held]:  # settled: forget it
            del self._finalize_at[gone]
        due: list[int] = []
        unranked: list[tuple[JobRecord, Any]] = []
        for job, info in self._viewed(JobState.REVEALED, now):
            if info.status is JobStatus.DELIVERED and now <= info.challenge_end:
                self._delivered_until[job.job_id] = info.challenge_end
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
            elif not _finalize_due(info, now):
                continue
            elif not self.policy.takeover_grace or info.status is JobStatus.DELIVERED:
                due.append(job.job_id)  # a delivery has one holder: nobody to race with
            elif job.job_id not in self._finalize_at:
                unranked.append((job, info))
            elif time.monotonic() >= self._finalize_at[job.job_id]:
                due.append(job.job_id)
        due += self._rank_finalizers(unranked)
        for chunk in _chunks(due, MAX_ID_BATCH):
            self._send(self.market.build_finalize_many(chunk), "finalize", chunk)

    def _rank_finalizers(self, jobs: list[tuple[JobRecord, Any]]) -> list[int]:
        """Turns to send due finalizes; the jobs whose turn is now. Every seat holder
        finds a job due at once and one finalize settles it, so with a grace it is
        partitioned like r = 1 claims, among the providers holding the job's seats (read
        once, in one batch; a challenged job's deliverer too): the holder the job ranks
        first sends it at once, rank k after k x grace if a fresh view still shows the
        job unsettled. A holder that is offline only delays settlement, by a bounded time."""
        if not jobs:
            return []
        seats = self.market.seats({job.job_id: range(R_CHALLENGE + 1) if info.status is JobStatus.CHALLENGED
                                   else range(info.r) for job, info in jobs})
        mono, turn = time.monotonic(), []
        for job, _ in jobs:
            holders = [seat.provider for seat in seats[job.job_id].values() if seat.claimed]
            self._finalize_at[job.job_id] = mono + claim_delay(job.job_id, self.me, holders,
                                                               self.policy.takeover_grace)
            if self._finalize_at[job.job_id] <= mono:
                turn.append(job.job_id)
        return turn


def _finalize_due(info, now: int) -> bool:
    """Whether `finalize` settles the job now (contracts/README.md, "finalize is due")."""
    if info.status is JobStatus.DELIVERED:
        return now > info.challenge_end
    if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED):
        return False
    return (info.nrevealed == _seats(info)
            or (now > info.commit_deadline and info.nrevealed == info.ncommitted)
            or now > info.reveal_deadline)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
ENGINE_POOL = "verinfer-engine"  # name prefix of the engine's worker threads (Engine._side_by_side)


def _engine_cpu() -> float:
    """CPU seconds of this thread, of the engine's side-by-side workers and of every
    thread Python did not start (torch's OpenMP pool), leaving out the agent's other
    services. Where /proc is missing: this thread's alone."""
    others = {t.native_id for t in threading.enumerate()
              if not t.name.startswith(ENGINE_POOL)} - {threading.get_native_id()}
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return time.thread_time()
    total = 0
    for task in tasks.iterdir():
        if int(task.name) not in others:
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def _single(job: JobRecord) -> bool:
    """An r = 1 job outside a challenge round: claimed, then delivered."""
    return job.data["r"] == 1 and not job.data.get("challenge")


def _pending_kind(job: JobRecord) -> str | None:
    return (job.data.get("pending") or {}).get("kind")


def _given_up(job: JobRecord) -> JobState:
    """Where a job goes when we take no (more) seats of it: LOST, but our own challenged
    delivery waits for its round's settlement, which judges it (REVEALED)."""
    return JobState.REVEALED if job.data.get("challenge") and 0 in job.data.get("seats", []) else JobState.LOST


def _round_terms(round_: Any) -> dict[str, Any]:
    """Job data for a re-execution round, from its JobChallenged event or the job's view."""
    return {"challenge": True, "claim_deadline": round_.claim_deadline,
            "commit_deadline": round_.commit_deadline, "reveal_deadline": round_.reveal_deadline}


def _round_seats(job: JobRecord) -> int:
    """How many seats of the current round we hold: what one commit or reveal covers
    (a challenged job's seat 0 is its delivery, outside the round)."""
    seats = job.data.get("seats", [])
    return max(1, len([s for s in seats if s > 0]) if job.data.get("challenge") else len(seats))


def _seats(info) -> int:
    """Seats of the job's current round (a challenge round has R_CHALLENGE)."""
    return R_CHALLENGE if info.status is JobStatus.CHALLENGED else info.r


def _chunks(ids: list, size: int) -> list[list]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
