"""Revealing and settling: reveal committed results once the commits are in, finalize
revealed jobs once finalize is due (partitioned among the seat holders), and settle
jobs the chain settled without an event reaching us."""

from __future__ import annotations

import logging
import time
from typing import Any

from client.protocol import MAX_ID_BATCH, MAX_RESULT_BATCH, R_CHALLENGE, JobStatus
from provider.agent.jobs.settlement import settle
from provider.agent.jobs.steps import JobSteps, chunks
from provider.agent.partition import claim_delay
from provider.agent.records import JobRecord, JobState, Settlement, Step

log = logging.getLogger("verinfer.agent.jobs")


class Settler:
    """Reveals and finalizes our jobs; views each at most once per poll interval."""

    def __init__(self, steps: JobSteps, poll_interval: float):
        self.steps, self.poll_interval = steps, poll_interval
        self.store, self.market = steps.store, steps.market
        self.next_check: dict[int, float] = {}  # job id -> monotonic time of its next view
        self.finalize_at: dict[int, float] = {}  # REVEALED job id -> time we may finalize it

    def run(self, now: int) -> None:
        self.reveal(now)
        self.finalize(now)

    def _due_for_check(self, job_id: int) -> bool:
        now = time.monotonic()
        if self.next_check.get(job_id, 0) > now:
            return False
        self.next_check[job_id] = now + self.poll_interval
        return True

    def _viewed(self, state: JobState, now: int) -> list[tuple[JobRecord, Any]]:
        """The jobs in `state` due for a fresh view, with their views read in one batch.
        Our r = 1 deliveries are left alone, not even found in the store (an index range
        skips them), until their challenge window ends (chain time: `quiet_until`)."""
        # An expired entry means what no entry means: drop them, or it grows by a job each.
        mono = time.monotonic()
        self.next_check = {j: t for j, t in self.next_check.items() if t > mono}
        ids = [i for i in self.store.awake_ids(state, now) if self._due_for_check(i)]
        due = [j for j in self.store.jobs(state, ids=ids) if j.pending is None]
        return list(zip(due, self.market.jobs([j.job_id for j in due], block=self.steps.head.number)))

    def reveal(self, now: int) -> None:
        ready = []
        for job, info in self._viewed(JobState.COMMITTED, now):
            if info.status not in (JobStatus.OPEN, JobStatus.CHALLENGED):
                continue  # settled meanwhile; the JobFinalized event says how
            if now > info.reveal_deadline:
                self.store.update_job(job.job_id, state=JobState.FAILED, reason="reveal deadline passed")
                log.error("reveal deadline missed", extra={"job_id": job.job_id})
                continue
            if info.ncommitted == info.round_seats or now > info.commit_deadline:
                ready.append(job)
        stored = {j.job_id: self.store.result(j.job_id) for j in ready}
        for chunk in chunks(ready, MAX_RESULT_BATCH):
            self.steps.send_all_or_each(Step.REVEAL, chunk, lambda ids: self.market.build_reveal_many(
                ids, [stored[i].result for i in ids], [stored[i].salt for i in ids]))

    def finalize(self, now: int) -> None:
        held = set(self.store.job_ids(JobState.REVEALED, ids=self.finalize_at))
        for gone in [j for j in self.finalize_at if j not in held]:  # settled: forget it
            del self.finalize_at[gone]
        due: list[int] = []
        unranked: list[tuple[JobRecord, Any]] = []
        quiet: dict[int, dict[str, int]] = {}
        for job, info in self._viewed(JobState.REVEALED, now):
            if info.status is JobStatus.DELIVERED and now <= info.challenge_end:
                quiet[job.job_id] = {"quiet_until": info.challenge_end}
            if info.status.settled:
                # Settled without an event reaching us (an unchallenged r = 1 delivery
                # settles lazily when its window ends, and the watcher trails the head):
                # as the view at this block shows it.
                head = self.steps.head
                settle(self.store, job, Settlement(info.status, bytes(info.result_digest),
                                                   head.number, head.hash))
            elif not info.finalize_due(now):
                continue
            elif not self.steps.policy.takeover_grace:
                due.append(job.job_id)
            elif job.job_id not in self.finalize_at:
                unranked.append((job, info))
            elif time.monotonic() >= self.finalize_at[job.job_id]:
                due.append(job.job_id)
        self.store.update_each(quiet)
        due += self._rank_finalizers(unranked)
        for chunk in chunks(due, MAX_ID_BATCH):
            self.steps.send(self.market.build_finalize_many(chunk), Step.FINALIZE, chunk)

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
            self.finalize_at[job.job_id] = mono + claim_delay(job.job_id, self.steps.me, holders,
                                                              self.steps.policy.takeover_grace)
            if self.finalize_at[job.job_id] <= mono:
                turn.append(job.job_id)
        return turn
