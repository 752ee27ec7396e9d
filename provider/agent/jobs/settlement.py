"""The one place that decides a settled job's outcome. (The protocol facts the phases
read from a job's view, the seats of a round and when finalize is due, are the SDK's:
``client.records.JobInfo.round_seats`` and ``finalize_due``.)

Both the job book (a JobFinalized event) and the worker (a view that shows the job
settled, or a receipt applied after it settled) record a settlement through `settle`.
"""

from __future__ import annotations

import logging

from client.protocol import JobStatus
from provider.agent.records import JobRecord, JobState, Settlement
from provider.agent.store import Store

log = logging.getLogger("verinfer.agent.jobs")


def outcome(job: JobRecord, settled: Settlement, our_digest: bytes | None) -> JobState:
    """Our final state for a settled job.

    A seat holder is slashed when a slash event names it, or when the job FINALIZED on
    another digest than ours (the slash event may not have reached us yet: the watcher
    trails the head, and an unchallenged r = 1 delivery settles without an event); it is
    paid when it FINALIZED on our digest (slash events come before JobFinalized in the
    same transaction, so a seat holder not slashed by then revealed or delivered on
    every seat it held); any other settlement releases it. Without seats, the job was
    cancelled or lost to others."""
    if job.slashed:
        return JobState.SLASHED
    if job.seats:
        if settled.status is not JobStatus.FINALIZED:
            return JobState.RELEASED
        return JobState.PAID if our_digest == settled.digest else JobState.SLASHED
    return JobState.CANCELLED if settled.status is JobStatus.CANCELLED else JobState.LOST


def settle(store: Store, job: JobRecord, settled: Settlement) -> JobState:
    """Record the chain's settlement of `job` and our outcome of it (inside the caller's
    store transaction, if any)."""
    ours = store.result(job.job_id)
    state = outcome(job, settled, None if ours is None else ours.digest)
    store.update_job(job.job_id, state=state, settled=settled)
    log.info("job settled", extra={"job_id": job.job_id, "state": state.value,
                                   "status": settled.status.name})
    return state
