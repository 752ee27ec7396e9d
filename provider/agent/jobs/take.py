"""Taking jobs: which open jobs to claim (policy, input, our turn, capacity, stake),
claimed in batches; jobs nobody drew us for are claimed again once redrawable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from client.protocol import MAX_ID_BATCH, R_CHALLENGE, JobStatus
from provider.agent.batching import Batcher
from provider.agent.config import BatchConfig
from provider.agent.jobs.runner import JobRunner
from provider.agent.jobs.steps import JobSteps, chunks
from provider.agent.partition import ProviderDirectory, claim_delay
from provider.agent.records import JobRecord, JobState, Step

log = logging.getLogger("verinfer.agent.jobs")

CLAIM_MARGIN = 2  # seconds of chain time left before a deadline to still try
# Why a job was given up from the contract's word alone (no step of ours): the seats are
# taken or the job is no longer open. A reorg can undo that word (JobBook.rewind).
SEATS_TAKEN = "taken"
# Gas to draw one seat, cold (a weight tree walk, the seat's provider, SeatDrawn): ~33k warm.
DRAW_GAS = 50_000


class Taker:
    """Claims the jobs we take; hands r = 1 jobs to the engine while their claim is in flight."""

    def __init__(self, steps: JobSteps, engines: Mapping[bytes, JobRunner], claim_batch: BatchConfig,
                 providers: ProviderDirectory, compute: Callable[[JobRecord], None]):
        """`compute(job)`: queue a job for the engine (the seal phase's)."""
        self.steps, self.engines, self.providers, self.compute = steps, engines, providers, compute
        self.store, self.market = steps.store, steps.market
        self._claims: Batcher[None, int] = Batcher(claim_batch.max_size, claim_batch.max_wait)
        self._claiming: set[int] = set()  # ids inside the claim batcher
        self._redraw_at: dict[int, int] = {}  # UNDRAWN job id -> chain time its seats may be redrawn
        self._vetted: set[int] = set()  # SEEN job ids whose input the engine accepted
        self.stake_free: int | None = None  # last read from the contract (for the dashboard)

    def run(self, now: int) -> None:
        self._retry_undrawn(now)
        self._consider_new(now)
        self._send_claims()

    def _retry_undrawn(self, now: int) -> None:
        """UNDRAWN jobs whose take window is over go back to SEEN: claimed again, a claim
        draws their untaken seats anew (or finds them all taken: LOST)."""
        ids = self.store.job_ids(JobState.UNDRAWN)
        self._redraw_at = {i: self._redraw_at[i] for i in ids if i in self._redraw_at}
        for job in self.store.jobs(JobState.UNDRAWN, ids=[i for i in ids if i not in self._redraw_at]):
            self._redraw_at[job.job_id] = job.redraw_at or 0
        due = [i for i, at in self._redraw_at.items() if at <= now]
        if not due:
            return
        self.store.update_jobs(due, state=JobState.SEEN)  # all UNDRAWN: read above, one writer
        for job_id in due:
            del self._redraw_at[job_id]
        log.info("undrawn jobs claimed again", extra={"jobs": len(due)})

    def _consider_new(self, now: int) -> None:
        """Claim the open jobs that policy, input, our turn (`_my_turn`), capacity and
        stake allow, in claim batches; an r = 1 job also goes to the engine at once, its
        result computed while the claim is in flight. Their contract state is read in
        one batched view."""
        schedule = self.steps.schedule
        seen_ids = self.store.job_ids(JobState.SEEN)
        seen = set(seen_ids)
        for gone in [j for j in schedule.turn_at if j not in seen]:
            del schedule.turn_at[gone]
        self._vetted &= seen
        # Capacity bounds work in progress; revealed jobs only wait for settlement.
        held = self.store.count_jobs(JobState.CLAIMING, JobState.CLAIMED, JobState.COMMITTED)
        held += len(self._claiming & seen)
        # Jobs waiting for our turn are not even read: at r = 1 most jobs an agent sees
        # are other providers' to take first.
        mono = time.monotonic()
        ready = [i for i in seen_ids if i not in self._claiming and schedule.turn_at.get(i, 0.0) <= mono]
        due: list[JobRecord] = []
        with self.store.atomic():  # one commit for every refusal of this pass
            for job in self.store.jobs(JobState.SEEN, ids=ready):
                if job.pending is not None:
                    continue
                if now + CLAIM_MARGIN > job.round.claim_deadline:
                    self.steps.give_up(job, "claim deadline")
                elif job.reward < self.steps.policy.price:
                    self.steps.refuse(job, "reward below the provider's price")
                elif self._my_turn(job) and self._valid_input(job):
                    if held + len(due) >= self.steps.policy.capacity:
                        break
                    due.append(job)
        if not due:
            return
        infos = self.market.jobs([j.job_id for j in due])
        at_risk = self.store.stake_at_risk()
        free = self.stake_free = self.market.provider(self.steps.me).free
        collaterals: dict[int, dict[str, int]] = {}
        with self.store.atomic():
            for job, info in zip(due, infos):
                if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED) or (
                    info.nclaimed >= info.round_seats
                ):
                    self.steps.give_up(job, SEATS_TAKEN)
                    continue
                # One seat's collateral: a draw may give us more, which the claim
                # only takes if our free stake covers them.
                collateral = info.collateral_per_seat
                if at_risk + collateral > self.steps.policy.max_stake_at_risk or collateral > free:
                    continue  # wait: stake frees up when held jobs settle
                at_risk += collateral
                free -= collateral
                collaterals[job.job_id] = {"seat_collateral": collateral,
                                           "collateral": collateral * (len(job.seats) + 1)}
                self._claiming.add(job.job_id)
                self._claims.put(None, job.job_id)
                if job.single:
                    self.compute(job)
            self.store.update_each(collaterals)

    def _my_turn(self, job: JobRecord) -> bool:
        """Whether our turn to claim this job has come. An r = 1 job's seat goes to the
        first claim, and its result is computed while the claim is in flight, so
        racing for it wastes every loser's claim and engine run: it goes to the
        provider it hashes to, the others only take it after a grace
        (provider/agent/partition.py): at once if it ranks us first among the providers
        serving its model, at rank k once k x grace passed since we first asked. Other
        jobs' seats are drawn: no race."""
        if not self.steps.policy.takeover_grace or not job.single:
            return True
        turn_at = self.steps.schedule.turn_at
        if job.job_id not in turn_at:  # ranked once, with the providers known then
            serving = self.providers.serving(job.model_id)
            turn_at[job.job_id] = time.monotonic() + claim_delay(
                job.job_id, self.steps.me, serving, self.steps.policy.takeover_grace)
        return time.monotonic() >= turn_at[job.job_id]

    def _valid_input(self, job: JobRecord) -> bool:
        """Check a job's input once; refuse it if the engine would."""
        if job.job_id in self._vetted:
            return True
        try:
            self.engines[job.model_id].check(job.terms.input)
        except ValueError as err:  # the engine's invalid-input errors
            self.steps.refuse(job, f"invalid input: {err}")
            return False
        self._vetted.add(job.job_id)
        return True

    def _send_claims(self) -> None:
        """Claim batches. One of r = 1 jobs alone (seat 0, no draw: every item costs
        alike) goes out on a learned gas limit (GasLimits). One that may draw is
        estimated, with gas to draw its jobs' seats on top: a claim estimated after
        another's draw must make the draw itself if it lands first after all (a reorg
        took that draw, or its take window ran out)."""
        while (batch := self._claims.ready()) is not None:
            ids = batch[1]
            self._claiming.difference_update(ids)
            jobs = self.store.jobs(JobState.SEEN, ids=ids)  # still: not taken meanwhile
            for chunk in chunks(jobs, MAX_ID_BATCH):
                draws = sum(R_CHALLENGE if j.challenge else j.terms.r for j in chunk if not j.single)
                chunk_ids = [j.job_id for j in chunk]
                self.steps.send(self.market.build_claim_many(chunk_ids), Step.CLAIM, chunk_ids,
                                JobState.CLAIMING, extra_gas=DRAW_GAS * draws, learn_gas=not draws)
