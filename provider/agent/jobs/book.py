"""Events -> the job book: what the chain announces, recorded in the store.

Each handler is registered for its event where it is defined (`@EVENTS.on(JobPosted)`,
the way silverback's `@app.on_(...)` ties a subscription to its handler), so the
events the watcher asks the node for (`WATCHED_EVENTS`) are exactly those handled.
The watcher (the job worker's first phase, on its thread) hands each range's events
over inside the store transaction that moves its checkpoint: a crash records each
event exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from client.events import JobChallenged, JobFinalized, JobPosted, ProviderSlashed
from client.marketplace import Marketplace
from client.protocol import JobStatus
from provider.agent.jobs.settlement import settle
from provider.agent.jobs.take import SEATS_TAKEN
from provider.agent.records import JobRecord, JobState, Round, Settlement, Step, Terms
from provider.agent.store import Store

log = logging.getLogger("verinfer.agent.jobs")

Handler = Callable[["JobBook", Any], None]


class EventRoutes:
    """Event type -> its handler, filled by the `on` decorator."""

    def __init__(self) -> None:
        self.handlers: dict[type, Handler] = {}

    def on(self, event_type: type) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if event_type in self.handlers:
                raise ValueError(f"{event_type.__name__} has a handler already")
            self.handlers[event_type] = handler
            return handler
        return register

    @property
    def names(self) -> tuple[str, ...]:
        """The contract events handled (the SDK's event classes are named after them)."""
        return tuple(event_type.__name__ for event_type in self.handlers)


EVENTS = EventRoutes()


class MarketplaceLogs:
    """The watcher's LogDecoder for the marketplace, decoding with the SDK."""

    def __init__(self, market: Marketplace, events: Iterable[str] | None = None):
        self.market = market
        self.topics = [market.topic(name) for name in (WATCHED_EVENTS if events is None else events)]

    def decode(self, raw_log: Any) -> Any | None:
        return self.market.decode_log(raw_log)


class JobBook:
    """Watcher handler: records posted jobs for our models and held jobs' outcomes."""

    def __init__(self, store: Store, provider: str, models: Iterable[bytes]):
        self.store, self.provider, self.models = store, provider, set(models)

    def handle(self, events: list[Any], to_block: int) -> None:
        for event in events:
            handler = EVENTS.handlers.get(type(event))
            if handler is not None:
                handler(self, event)

    def rewind(self, fork_block: int, fork_time: int) -> None:
        # Posts in orphaned blocks may come back with other contents: forget the ones
        # we never acted on. Anything we acted on is checked against contract state.
        orphaned = [j.job_id for j in self.store.jobs(JobState.SEEN)
                    if j.terms is not None and j.terms.block > fork_block and j.pending is None]
        self.store.forget_jobs(orphaned)
        # A job given up because the contract said its seats were taken may have been
        # taken in the orphaned blocks (a reorg takes others' claims too, and any draw
        # among them): while it can still be claimed, the take phase asks again.
        retake = [j.job_id for j in self.store.jobs(JobState.LOST)
                  if j.reason == SEATS_TAKEN and j.round is not None
                  and j.round.claim_deadline > fork_time]
        self.store.update_jobs(retake, state=JobState.SEEN, reason=None)
        if retake:
            log.info("jobs given up as taken are looked at again after a reorg",
                     extra={"jobs": len(retake), "fork_block": fork_block})

    def _held(self, job_id: int) -> JobRecord | None:
        """The job if we track it and it is not final yet."""
        job = self.store.job(job_id)
        return None if job is None or job.state.final else job

    @EVENTS.on(JobPosted)
    def _posted(self, event: JobPosted) -> None:
        if event.model_id not in self.models:
            return
        if self.store.add_job(
            event.job_id, event.model_id, reward=event.reward,
            terms=Terms(event.r, event.client, event.input, event.meta.block_number),
            round=Round(event.claim_deadline, event.commit_deadline, event.reveal_deadline),
        ):
            log.info("job seen", extra={"job_id": event.job_id, "r": event.r,
                                        "reward": event.reward})

    @EVENTS.on(JobChallenged)
    def _challenged(self, event: JobChallenged) -> None:
        """A disputed r = 1 delivery re-opens as a round of R_CHALLENGE seats drawn by
        stake, its deliverer as eligible as anyone: every job we did not refuse becomes
        claimable again (our own delivery keeps its seat 0 in `seats`).

        A challenger may act right after the delivery, while our own claim or delivery
        is still in flight: it goes on, and its receipt re-opens the job for the round
        (reconcile). A round already learned from the contract (a claim of ours that
        met it before this event) stays as it is."""
        job = self.store.job(event.job_id)
        if job is None or job.state is JobState.REFUSED or job.challenge:
            return
        round_terms = challenge_round(event)
        if job.step in (Step.CLAIM, Step.DELIVER, Step.RESYNC):
            self.store.update_job(job.job_id, **round_terms)
        else:
            self.store.update_job(job.job_id, state=JobState.SEEN, pending=None, failures=0,
                                  **round_terms)
        log.info("job challenged; re-execution round open", extra={"job_id": job.job_id})

    @EVENTS.on(ProviderSlashed)
    def _slashed(self, event: ProviderSlashed) -> None:
        job = self._held(event.job_id)
        if job is None or event.provider != self.provider:
            return
        # One event per seat: a provider holding two seats may be slashed twice.
        self.store.update_job(job.job_id, slashed={**job.slashed, event.seat: event.amount},
                              faults={**job.faults, event.seat: int(event.reason)})

    @EVENTS.on(JobFinalized)
    def _finalized(self, event: JobFinalized) -> None:
        job = self._held(event.job_id)
        if job is None:
            return
        settled = Settlement(JobStatus(event.status), bytes(event.result_digest),
                             event.meta.block_number, bytes(event.meta.block_hash))
        if job.state is JobState.CLAIMING or job.step is Step.DELIVER:
            # Our claim / delivery receipt decides which seats we held; the worker
            # settles the job when it applies that receipt.
            self.store.update_job(job.job_id, settled=settled)
            return
        settle(self.store, job, settled)


def challenge_round(round_: Any) -> dict[str, Any]:
    """Record fields of a re-execution round, from its JobChallenged event or the job's view."""
    return {"challenge": True, "round": Round(round_.claim_deadline, round_.commit_deadline,
                                              round_.reveal_deadline)}


WATCHED_EVENTS = EVENTS.names
