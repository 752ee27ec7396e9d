"""The job logic's parts on their own: event routes, the one settlement rule, the job
book writing typed records, and the engine as the model-agnostic JobRunner."""

import pytest

from client.events import EVENT_TYPES, JobFinalized, JobPosted, LogMeta, ProviderSlashed
from client.marketplace import Marketplace
from client.protocol import Fault, JobStatus
from provider.agent.jobs import WATCHED_EVENTS, JobBook, JobRunner, MarketplaceLogs, outcome
from provider.agent.jobs.book import EVENTS
from provider.agent.records import JobRecord, JobState, Settlement, Terms
from provider.agent.store import Store

MODEL = b"\x02" * 32
ME, OTHER = "0x" + "11" * 20, "0x" + "22" * 20
META = LogMeta(7, b"b" * 32, b"t" * 32, 0, "0x" + "33" * 20)
OURS, THEIRS = b"o" * 32, b"x" * 32


def test_watched_events_are_exactly_the_handled_ones():
    assert set(WATCHED_EVENTS) == {"JobPosted", "JobChallenged", "ProviderSlashed", "JobFinalized"}
    assert all(EVENT_TYPES[name] in EVENTS.handlers for name in WATCHED_EVENTS)
    logs = MarketplaceLogs(Marketplace(None, "0x" + "44" * 20))
    assert len(set(logs.topics)) == len(WATCHED_EVENTS)  # each a topic of the shipped ABI
    with pytest.raises(ValueError, match="JobPosted has a handler already"):
        EVENTS.on(JobPosted)(lambda book, event: None)


@pytest.mark.parametrize(("seats", "slashed", "status", "digest", "state"), [
    ((1,), {}, JobStatus.FINALIZED, OURS, JobState.PAID),
    ((1, 2), {}, JobStatus.FINALIZED, THEIRS, JobState.SLASHED),  # its slash event not seen yet
    ((1,), {1: 5}, JobStatus.FINALIZED, OURS, JobState.SLASHED),
    ((1,), {}, JobStatus.UNRESOLVED, OURS, JobState.RELEASED),
    ((0,), {}, JobStatus.CANCELLED, THEIRS, JobState.RELEASED),
    ((), {}, JobStatus.CANCELLED, THEIRS, JobState.CANCELLED),
    ((), {}, JobStatus.FINALIZED, THEIRS, JobState.LOST),
])
def test_one_rule_decides_a_settled_job(seats, slashed, status, digest, state):
    job = JobRecord(1, MODEL, JobState.REVEALED, seats=seats, slashed=slashed)
    assert outcome(job, Settlement(status, digest), OURS) is state


def test_the_job_book_records_typed_jobs_and_settles_them(tmp_path):
    store = Store(tmp_path / "agent.db")
    book = JobBook(store, ME, [MODEL])
    posted = dict(client=OTHER, r=3, reward=9, claim_deadline=10, commit_deadline=20,
                  reveal_deadline=30, input=b"hello", meta=META)
    book.handle([JobPosted(job_id=1, model_id=MODEL, **posted),
                 JobPosted(job_id=2, model_id=b"\x03" * 32, **posted)], to_block=7)  # not served
    job = store.job(1)
    assert (job.state, job.reward, job.terms) == (JobState.SEEN, 9, Terms(3, OTHER, b"hello", 7))
    assert job.round.claim_deadline == 10 and store.job(2) is None

    store.update_job(1, state=JobState.REVEALED, seats=[2])
    store.save_result(1, OURS, b"r", b"s" * 32)
    slash = dict(job_id=1, seat=2, amount=4, reason=Fault.LOSING_DIGEST, meta=META)
    final = JobFinalized(job_id=1, status=JobStatus.FINALIZED, result_digest=THEIRS, provider_pay=0,
                         client_refund=0, slashed=4, meta=META)
    book.handle([ProviderSlashed(provider=OTHER, **slash), ProviderSlashed(provider=ME, **slash), final],
                to_block=8)
    job = store.job(1)
    assert (job.state, job.slashed, job.faults) == (JobState.SLASHED, {2: 4}, {2: Fault.LOSING_DIGEST})
    assert job.settled == Settlement(JobStatus.FINALIZED, THEIRS, META.block_number, META.block_hash)


def test_a_reorg_sends_jobs_given_up_as_taken_back_to_the_take_phase_while_claimable(tmp_path):
    """The contract said every seat was taken, in blocks a reorg may have orphaned: the
    take phase asks again, for jobs whose claim deadline is after the fork block's time.
    Jobs lost through a step of ours (its receipt is re-checked by the tx manager) and
    jobs no longer claimable stay as they are; posts we never acted on above the fork
    are forgotten (they may come back with other contents)."""
    from provider.agent.jobs.take import SEATS_TAKEN
    from provider.agent.records import Round

    store = Store(tmp_path / "agent.db")
    book = JobBook(store, ME, [MODEL])
    for job_id, deadline, reason, block in ((1, 500, SEATS_TAKEN, 5), (2, 100, SEATS_TAKEN, 5),
                                            (3, 500, "jobs: already claimed", 5), (4, 500, None, 12)):
        store.add_job(job_id, MODEL, state=JobState.LOST if reason else JobState.SEEN, reason=reason,
                      terms=Terms(3, OTHER, b"x", block), round=Round(deadline, deadline + 1, deadline + 2))
    book.rewind(fork_block=10, fork_time=200)
    assert (store.job(1).state, store.job(1).reason) == (JobState.SEEN, None)
    assert store.job(2).state is JobState.LOST  # claim deadline before the fork: nothing to retake
    assert store.job(3).state is JobState.LOST and store.job(3).reason == "jobs: already claimed"
    assert store.job(4) is None


def test_the_engine_is_a_job_runner(engine):
    """Bytes in, result bytes out: `run` is `embed`, `check` refuses what `run` would."""
    runner: JobRunner = engine
    texts = [b"a sentence to embed", b"another one"]
    assert runner.run(texts) == engine.embed(texts)
    runner.check(texts[0])
    for bad, why in ((b"   \n", "empty"), (b"\xff\xfe", "UTF-8")):
        with pytest.raises(ValueError, match=why):
            runner.check(bad)
        with pytest.raises(ValueError, match=why):
            runner.run([bad])
