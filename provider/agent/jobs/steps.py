"""What every phase shares: the parts it works with and the steps it takes on a job
(send a transaction for it, count a failure, refuse it, give it up), in one object.

Phases keep their own timers; the few that another phase sets (a reconciled receipt
says when a claim or delivery may be retried) are in `Schedule`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from client.abi_codec import Call
from client.chain import Header
from client.marketplace import Marketplace
from provider.agent.config import PolicyConfig
from provider.agent.errors import TxWouldRevert
from provider.agent.gaslimits import GasLimits
from provider.agent.metrics import Family
from provider.agent.records import JobRecord, JobState, Pending, Step
from provider.agent.store import Store
from provider.agent.txmanager import TxManager

log = logging.getLogger("verinfer.agent.jobs")

MAX_FAILURES = 3  # a job whose transaction keeps failing is given up (FAILED)


@dataclass
class Schedule:
    """Per-job times one phase sets for another (monotonic seconds unless said)."""

    turn_at: dict[int, float] = field(default_factory=dict)  # SEEN job -> when we may claim it
    deliver_at: dict[int, float] = field(default_factory=dict)  # CLAIMED r = 1 job -> when we may deliver


class JobSteps:
    """The parts the phases share, and the steps they all take on jobs."""

    def __init__(self, *, store: Store, txm: TxManager, market: Marketplace, policy: PolicyConfig,
                 sent: Family):
        self.store, self.txm, self.market, self.policy = store, txm, market, policy
        self.me = txm.address
        self.gas = GasLimits()
        self.schedule = Schedule()
        self.head: Header | None = None  # the block this tick works on: views are read at it
        self._sent = sent

    def send(self, call: Call, step: Step | str, job_ids: list[int], state: JobState | None = None,
             units: int | None = None, extra_gas: int = 0, learn_gas: bool = True) -> int:
        """Send a step for `job_ids`; each job records the pending transaction (and its
        new `state`) atomically with the intent, so a crash can't leave either alone.
        `units`: what the step's gas grows with (GasLimits), if not one per job: the
        seats a commit or reveal covers. `extra_gas`: added to an estimated limit.
        `learn_gas=False`: this batch's items may cost unalike (a claim that may draw):
        always estimated, and its receipt teaches no limit."""
        kind = str(step)

        def mark(tx_id: int) -> None:
            if job_ids:
                self.store.update_jobs(job_ids, pending=Pending(Step(kind), tx_id),
                                       **({} if state is None else {"state": state}))

        units = len(job_ids) if units is None else units
        gas = self.gas.limit(kind, units) if learn_gas else None
        meta: dict[str, Any] = {"jobs": job_ids}
        if units != len(job_ids):
            meta["units"] = units
        if not learn_gas:
            meta["unlike_items"] = True
        if gas is not None:
            meta["learned_gas"] = True
        tx_id = self.txm.send(call.to, call.data, kind=kind, meta=meta, gas=gas, extra_gas=extra_gas,
                              on_record=mark)
        self._sent.inc(len(job_ids), kind=kind)
        return tx_id

    def send_and_wait(self, call: Call, kind: str) -> None:
        record = self.txm.wait(self.send(call, kind, []), timeout=300)
        if not record.succeeded:
            raise RuntimeError(f"{kind} transaction failed ({record.status.value})")

    def send_all_or_each(self, step: Step, jobs: list[JobRecord],
                         build: Callable[[list[int]], Call]) -> None:
        """All-or-nothing batches: if the batch would revert, send each job alone so
        one bad job does not hold back the others."""
        ids = [j.job_id for j in jobs]
        try:
            self.send(build(ids), step, ids, units=sum(j.round_seats for j in jobs))
        except TxWouldRevert:
            for job in jobs:
                try:
                    self.send(build([job.job_id]), step, [job.job_id], units=job.round_seats)
                except TxWouldRevert as err:
                    self.fail(self.store.job(job.job_id) or job, f"{step} would revert: {err}")

    def fail(self, job: JobRecord, reason: str, count: bool = True) -> None:
        """Count a failed step (a step no fault of the job's failed: `count` False); retry
        it later, or give up after MAX_FAILURES.

        A seat we applied but the chain does not show lost its claim to a reorg that
        the tx manager may not have noticed yet: no failure then (giving up would get
        us slashed once the claim is mined again); the job waits for its last step
        and re-derives its state from the contract."""
        if (job.state in (JobState.CLAIMED, JobState.COMMITTED) and job.last_tx is not None
                and not self.market.assignment(job.job_id, self.me).assigned):
            if job.step is not Step.RESYNC:
                self.store.update_job(job.job_id, pending=Pending(Step.RESYNC, job.last_tx))
            log.warning("job seat not on chain (reorg); re-checking",
                        extra={"job_id": job.job_id, "reason": reason})
            return
        failures = job.failures + count
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

    def refuse(self, job: JobRecord, reason: str) -> None:
        self.store.update_job(job.job_id, state=JobState.REFUSED, reason=reason)
        log.info("job refused", extra={"job_id": job.job_id, "reason": reason})

    def give_up(self, job: JobRecord, reason: str) -> None:
        self.store.update_job(job.job_id, state=given_up(job), reason=reason)


def given_up(job: JobRecord) -> JobState:
    """Where a job goes when we take no (more) seats of it: LOST, but our own challenged
    delivery waits for its round's settlement, which judges it (REVEALED)."""
    return JobState.REVEALED if job.challenge and 0 in job.seats else JobState.LOST


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
