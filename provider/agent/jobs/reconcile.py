"""Transaction outcomes and reorgs -> jobs: apply each mined step to its jobs, and
re-derive from the contract the jobs whose steps a reorg took out of the chain.

Claims and deliveries skip items instead of reverting: their receipts say, job by
job, which seats we took (one JobClaimed per seat; none for an r = 1 claim, seat 0) or
delivered, or why an item was skipped (ItemSkipped). The other steps are all or
nothing. When the tx manager re-opens a step it had confirmed (a reorg took its
block), the job's pending becomes a `resync` on its last transaction in flight; once
that is mined again, the job's state is re-derived from the contract (which seats are
ours now), so a re-mined claim carries on and a lost one is not mistaken for ours.

A settlement is not final either until its block is deeper than the reorg window: a
job whose settlement a reorg took (and with it, maybe, our reveal) is re-opened and
re-derived the same way once its last step is mined again, so it reveals or
finalizes again instead of trusting an outcome the chain no longer shows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from web3 import Web3

from client.chain import block_hash, block_number, headers
from client.events import ItemSkipped, JobClaimed, ResultRevealed
from client.protocol import R_CHALLENGE, JobStatus, redraw_delay
from provider.agent.jobs.book import challenge_round
from provider.agent.jobs.settlement import settle
from provider.agent.jobs.steps import MAX_FAILURES, JobSteps, given_up
from provider.agent.records import JobRecord, JobState, Pending, Step
from provider.agent.store import TxRecord, TxStatus

log = logging.getLogger("verinfer.agent.jobs")

# A claim in the post's (or challenge's) block, or a delivery in its claim's: sent again
# this many seconds later, in a later block.
RETRY_SOON = 1.0
TOO_EARLY = ("jobs: draw not ready", "jobs: claimed in this block")
NOT_DRAWN = "jobs: not drawn"
LOST_RACE = ("jobs: already claimed", "jobs: not claimable")  # an r = 1 claim another beat
STAKE_SHORT = "staking: insufficient free stake"
# A delivery skipped for these will never go through: the claimant is slashed at finalize.
TOO_LATE = ("jobs: claim deadline passed", "jobs: not open")
RECEIPT_STEPS = (Step.CLAIM, Step.DELIVER)  # steps whose receipts' events say what we got
# Job states whose pending transaction we track.
_TRACKED = (JobState.SEEN, JobState.CLAIMING, JobState.CLAIMED, JobState.COMMITTED, JobState.REVEALED)


class Reconciler:
    """Applies our mined steps to their jobs; sends reorged jobs back to the contract's view."""

    def __init__(self, steps: JobSteps, w3: Web3, reorg_window: int):
        self.steps, self.w3, self.reorg_window = steps, w3, reorg_window
        self.store, self.txm, self.market = steps.store, steps.txm, steps.market
        self._settlements_checked_at: bytes | None = None  # head hash of the last re-check

    def run(self, now: int) -> None:
        self._recheck_settlements()
        self._notice_reorgs()
        for (tx_id, step), ids in self.store.pending_steps(*_TRACKED).items():
            record = self.txm.tx(tx_id)
            if record is None or record.status.is_open:
                continue
            if step is not Step.RESYNC and record.status is not TxStatus.NONCE_TAKEN and record.succeeded:
                self._apply(step, ids, record, now)
                continue
            if step is not Step.RESYNC:
                self.steps.gas.forget(step)
            # A batch sent on a learned gas limit skipped the estimate that would have
            # found its failing job: it blames none, the next (estimated) batch finds it.
            blame = record.status is TxStatus.NONCE_TAKEN or not (
                record.meta.get("learned_gas") and len(record.meta["jobs"]) > 1)
            for job in self.store.jobs(ids=ids):
                if step is Step.RESYNC:
                    self._resync(job, record)
                else:
                    self.steps.fail(job, f"{step} transaction {record.status.value}"
                                         f"{'' if record.succeeded else ' (reverted)'}", count=blame)

    # ---- mined steps -------------------------------------------------------------------

    def _apply(self, step: Step, ids: list[int], record: TxRecord, now: int) -> None:
        """Apply a mined step to its jobs."""
        receipt = None
        if step in RECEIPT_STEPS:
            receipt = self.txm.receipt(record)
            if receipt is None:
                return  # orphaned: the tx manager re-opens and re-sends it; wait for it
        me = self.steps.me
        won: dict[int, list[int]] = {}  # job id -> seats we took, or delivered
        skipped: dict[int, str] = {}  # job id -> why our item was skipped
        for event in [] if receipt is None else self.market.decode_receipt(receipt):
            if isinstance(event, (JobClaimed, ResultRevealed)) and event.provider == me:
                won.setdefault(event.job_id, []).append(event.seat)
            elif isinstance(event, ItemSkipped) and event.caller == me:
                skipped[event.job_id] = event.reason
        sent = record.meta.get("jobs", [])
        if step is Step.CLAIM:  # an r = 1 claim took seat 0 without an event, if not skipped
            won |= {job_id: [0] for job_id in sent if job_id not in skipped and job_id not in won}
        if record.gas_used is not None and not record.meta.get("unlike_items"):
            units = record.meta.get("units", len(sent))
            self.steps.gas.learn(step, record.gas_used, units,
                                 units if receipt is None else len(won.keys() & set(sent)))
        redraw_at = None
        if step is Step.CLAIM and NOT_DRAWN in skipped.values():
            # The seats nobody took within the take window of their draw (made in this
            # block or before) are drawn again by the next claim: ours, from then on.
            drawn = headers(self.w3, [record.block_number])[0]
            redraw_at = (now if drawn is None else drawn.timestamp) + redraw_delay(
                self.market.min_windows().claim) + 1
        # Our deliveries' challenge windows end by now + window (they were mined by now):
        # no view of them until then (settle phase), a view each saved.
        quiet_until = now + self.market.call("challenge_window") if step is Step.DELIVER and won else 0
        failed: dict[int, str] = {}
        changes: dict[int, dict[str, Any]] = {}  # job id -> its new fields
        # One commit (one fsync) for the batch's jobs; the jobs a step moved alike (most
        # of a batch) are written by one statement.
        with self.store.atomic():
            for job in self.store.jobs(ids=ids):
                if job.pending is None or job.pending.tx != record.id:
                    continue
                extra: dict[str, Any] = {"last_tx": record.id} if step.moves_seats else {}
                if step is Step.CLAIM:
                    changes[job.job_id] = self._claim_applied(job, won.get(job.job_id, []),
                                                              skipped.get(job.job_id), redraw_at, extra)
                elif step is Step.DELIVER:
                    reason = skipped.get(job.job_id, "no event")
                    changes[job.job_id], counted = self._delivery_applied(
                        job, job.job_id in won, reason, quiet_until, extra)
                    if not counted:
                        failed[job.job_id] = reason
                else:
                    # finalize (state None): the JobFinalized event settles it; a skipped
                    # one is retried
                    state = {Step.COMMIT: JobState.COMMITTED, Step.REVEAL: JobState.REVEALED}.get(step)
                    changes[job.job_id] = {"pending": None, **extra, **({} if state is None else {"state": state})}
            self.store.update_each(changes)
            applied = list(changes)
            if step in RECEIPT_STEPS:  # those that settled while our receipt was in flight
                for job in self.store.settled_among(applied):
                    settle(self.store, job, job.settled)
        for job in self.store.jobs(ids=list(failed)):
            self.steps.fail(job, f"delivery skipped: {failed[job.job_id]}")

    def _claim_applied(self, job: JobRecord, seats: list[int], reason: str | None,
                       redraw_at: int | None, extra: dict[str, Any]) -> dict[str, Any]:
        """The fields of a job our mined claim took `seats` of (or skipped, for `reason`)."""
        job_id = job.job_id
        state: JobState
        if seats:
            held = sorted({*job.seats, *seats})
            if job.single and max(seats) > 0:
                # A claim that met a challenge before its event reached us: the round's seats.
                extra |= challenge_round(self.market.job(job_id))
            extra |= {"seats": held, "failures": 0}
            log.info("seats taken", extra={"job_id": job_id, "seats": seats})
            return {"state": JobState.CLAIMED, "pending": None,
                    "collateral": job.seat_collateral * len(held), **extra}
        reason = reason or "no event"
        if reason == NOT_DRAWN:
            # Left alone until the take window is over; then claimed again (the draw of
            # a seat whose provider never took it is redone by the next claim).
            state, extra = JobState.UNDRAWN, extra | {"reason": "not drawn", "redraw_at": redraw_at}
        elif reason in TOO_EARLY:  # the claim shared the post's or challenge's block
            state = JobState.SEEN
            self.steps.schedule.turn_at[job_id] = time.monotonic() + RETRY_SOON
        elif reason == STAKE_SHORT:
            failures = job.failures + 1
            state = JobState.FAILED if failures >= MAX_FAILURES else JobState.SEEN
            extra |= {"failures": failures, "reason": reason}
        elif reason in LOST_RACE and job.challenge and not job.seats:
            # Beaten to the r = 1 seat, but a challenge re-opened the job: its round's
            # seats are drawn, ours to take if drawn.
            state, extra = JobState.SEEN, extra | {"failures": 0}
        else:
            state, extra = given_up(job), extra | {"reason": reason}
        log.info("claim skipped", extra={"job_id": job_id, "reason": reason, "state": state.value})
        return {"state": state, "pending": None, "collateral": job.seat_collateral * len(job.seats), **extra}

    def _delivery_applied(self, job: JobRecord, delivered: bool, reason: str, quiet_until: int,
                          extra: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The fields of an r = 1 job our mined delivery carried (quiet until the chain
        time its challenge window ends), and False for a failure to count (`fail`)."""
        if delivered:
            # A challenge that came before its receipt re-opened the job: a round we
            # may be drawn for like anyone.
            if job.challenge:
                return {"state": JobState.SEEN, "pending": None, "failures": 0, **extra}, True
            return {"state": JobState.REVEALED, "quiet_until": quiet_until, "pending": None, "failures": 0,
                    **extra}, True
        if reason in TOO_EARLY:  # mined in its claim's block: again from a later one
            self.steps.schedule.deliver_at[job.job_id] = time.monotonic() + RETRY_SOON
            return {"pending": None, **extra}, True
        if reason in TOO_LATE:
            log.error("delivery too late", extra={"job_id": job.job_id, "reason": reason})
            return {"state": JobState.FAILED, "pending": None, "reason": f"delivery skipped: {reason}",
                    **extra}, True
        return extra, False

    # ---- reorgs of our own steps -----------------------------------------------------

    def _notice_reorgs(self) -> None:
        """Steps the tx manager re-opened because a reorg took their block: it sends each
        again at its nonce. Its job waits for its last transaction in flight (the nonces
        mine in order), then `_resync` re-derives its state: a re-mined claim may now
        lose its seats, or win some it had lost."""
        for tx in self.txm.reorged():
            if tx.kind not in {s.value for s in Step if s.moves_seats}:
                continue
            for job_id in tx.meta.get("jobs", []):
                with self.store.atomic():
                    job = self.store.job(job_id)
                    if job is None or job.state.settled:
                        continue
                    pending = job.pending
                    if pending is not None and pending.tx == tx.id and pending.step in (tx.kind, Step.RESYNC):
                        continue  # never applied, or already waiting for it
                    if pending is not None and pending.step is Step.RESYNC and pending.tx > tx.id:
                        continue
                    # A lost, undrawn or given-up job may hold seats once its claim is re-mined.
                    state = {"state": JobState.CLAIMING} if job.state in (
                        JobState.SEEN, JobState.LOST, JobState.FAILED, JobState.UNDRAWN) else {}
                    self.store.update_job(job_id, pending=Pending(
                        Step.RESYNC, max(tx.id, 0 if pending is None else pending.tx)), **state)
                log.warning("job step orphaned by a reorg; re-checking once mined again",
                            extra={"job_id": job_id, "step": tx.kind, "tx_id": tx.id})

    def _recheck_settlements(self) -> None:
        """Re-open the jobs whose settlement a reorg took out of the chain. A block hash
        commits to every block below it: while the newest block that showed a
        settlement is still in the chain, so are all the others (one header read, and
        none while the head is the one last checked: a reorg changes it)."""
        head = self.steps.head
        if head.hash == self._settlements_checked_at:
            return
        self._settlements_checked_at = head.hash
        since = head.number - self.reorg_window
        newest = self.store.settled_since(since, newest=True)
        if not newest or block_hash(self.w3, newest[0].settled.block) == newest[0].settled.block_hash:
            return
        jobs = self.store.settled_since(since)
        blocks = sorted({j.settled.block for j in jobs})
        hashes = {n: None if h is None else h.hash for n, h in zip(blocks, headers(self.w3, blocks))}
        with self.store.atomic():
            for job in jobs:
                if hashes[job.settled.block] != job.settled.block_hash:
                    self._unsettle(self.store.job(job.job_id) or job)

    def _unsettle(self, job: JobRecord) -> None:
        """Forget an orphaned settlement (and the slashes it came with). A job we held
        seats of waits for its last step to be mined (again), then is re-derived from
        the contract; one without seats is open to us again."""
        fields: dict[str, Any] = {"settled": None, "slashed": {}, "faults": {}}
        # A job not final yet settled while our receipt was in flight: that goes on.
        if job.state.final and job.seats and job.last_tx is not None:
            fields |= {"state": JobState.REVEALED, "pending": Pending(Step.RESYNC, job.last_tx)}
        elif job.state.final:
            fields |= {"state": JobState.SEEN, "pending": None}
        self.store.update_job(job.job_id, **fields)
        log.warning("job settlement orphaned by a reorg; re-checking", extra={
            "job_id": job.job_id, "was": job.state.value, "block": job.settled.block})

    def _resync(self, job: JobRecord, record: TxRecord) -> None:
        """Re-derive a job's state from the contract: which seats of it are ours now."""
        if record.mined_hash is not None and self.txm.receipt(record) is None:
            return  # confirmed, then orphaned: the tx manager has yet to notice
        head = block_number(self.w3)
        info = self.market.job(job.job_id, block=head)
        challenged = int(info.challenger, 16) != 0
        # Seat 0 is an r = 1 job's claimant; seats 1..R_CHALLENGE its re-execution round.
        seats = self.market.seats({job.job_id: range(R_CHALLENGE + 1 if challenged else info.r)},
                                  block=head)[job.job_id]
        current = range(1, R_CHALLENGE + 1) if challenged else range(info.r)
        held = [s for s, seat in seats.items() if seat.provider == self.steps.me and seat.claimed]
        mine = [seats[s] for s in held if s in current]
        extra: dict[str, Any] = {"seats": held, **(challenge_round(info) if challenged else {})}
        if mine:
            state = (JobState.REVEALED if mine[0].revealed
                     else JobState.COMMITTED if mine[0].committed else JobState.CLAIMED)
        elif info.status in (JobStatus.OPEN, JobStatus.CHALLENGED) and info.nclaimed < info.round_seats:
            state = JobState.SEEN  # seats untaken: drawn to us, or to be drawn again
        elif held:
            state = JobState.REVEALED  # our delivery, waiting for its round's settlement
        else:
            state = JobState.LOST
        with self.store.atomic():
            self.store.update_job(job.job_id, state=state, collateral=info.collateral_per_seat * len(held),
                                  pending=None, failures=0, last_tx=record.id,
                                  seat_collateral=info.collateral_per_seat, **extra)
            job = self.store.job(job.job_id) or job  # as just updated: its seats decide
            if job.settled is not None:
                state = settle(self.store, job, job.settled)
        log.info("job re-derived from the contract", extra={"job_id": job.job_id,
                                                             "state": state.value, "seats": held})
