"""The explorer's index, events in -> state out: job paths, statuses and escrow, provider
stake, earnings and slashes, the model registry, r = 1 deliveries becoming final when
their window ends, and forks that leave the state they came from untouched (what the
sync rewinds to on a reorg)."""

import itertools

from client.events import (JobChallenged, JobClaimed, JobFinalized, JobPosted, LogMeta, ModelRegistered,
                           ModelStatusChanged, PayoutsReleased, ProviderRegistered, ProviderSlashed, ProviderUpdated,
                           ResultRevealed, SealCommitted, SeatDrawn, Staked, StakeWithdrawn, UnbondRequested)
from client.protocol import R_CHALLENGE, Fault, JobStatus
from client.records import JobInfo
from gateway.explorer_index import NOBODY, ExplorerState

MODEL, OTHER = b"\x01" * 32, b"\x02" * 32
ALICE, BOB, CAROL, DAVE, CLIENT = ("0x" + c * 40 for c in "abcde")
REWARD, FEE, COLLATERAL = 100, 10, 1000
GOOD, BAD = b"\x0a" * 32, b"\x0b" * 32


class Chain:
    """Events with increasing positions, one block per `block()`."""

    def __init__(self):
        self.number, self._index = 10, itertools.count()

    def block(self) -> None:
        self.number += 1

    def meta(self) -> LogMeta:
        return LogMeta(self.number, self.number.to_bytes(32, "big"), b"t" * 32, next(self._index), "0x" + "11" * 20)

    def __call__(self, cls, **fields):
        return cls(meta=self.meta(), **fields)


def posted(chain: Chain, job_id: int, r: int) -> JobPosted:
    return chain(JobPosted, job_id=job_id, client=CLIENT, model_id=MODEL, r=r, reward=REWARD, claim_deadline=0,
                 commit_deadline=0, reveal_deadline=0, input=b"text")


def view(job_id: int, r: int, status: JobStatus, challenge_end: int = 0) -> JobInfo:
    return JobInfo(job_id=job_id, client=CLIENT, model_id=MODEL, r=r, reward=REWARD, fee_per_seat=FEE,
                   collateral_per_seat=COLLATERAL, status=status, posted_at=0, claim_deadline=0, commit_deadline=0,
                   reveal_deadline=0, challenge_end=challenge_end, challenger=NOBODY, nclaimed=0, ncommitted=0,
                   nrevealed=0, input_hash=b"\0" * 32, result_digest=b"\0" * 32)


def providers(chain: Chain, *accounts: str) -> list:
    out = []
    for account in accounts:
        out += [chain(ProviderRegistered, provider=account, price=REWARD, model_ids=(MODEL,)),
                chain(Staked, provider=account, amount=10 * COLLATERAL)]
    return out


def kinds(state: ExplorerState, job_id: int) -> list[str]:
    return [s.kind for s in state.jobs[job_id].steps]


def test_an_r3_job_with_a_losing_seat_path_pay_and_slash():
    chain, state = Chain(), ExplorerState().fork()
    state.apply(providers(chain, ALICE, BOB, CAROL))
    chain.block()
    touched = state.apply([posted(chain, 256, 3)])
    state.apply_views([view(256, 3, JobStatus.OPEN)])
    assert touched == {256}
    assert state.escrow == 3 * (REWARD + FEE) and state.by_status[JobStatus.OPEN] == 1
    chain.block()
    seats = {0: ALICE, 1: BOB, 2: CAROL}
    state.apply([chain(SeatDrawn, job_id=256, provider=p, seat=s) for s, p in seats.items()]
                + [chain(JobClaimed, job_id=256, provider=p, seat=s) for s, p in seats.items()])
    chain.block()
    state.apply([chain(SealCommitted, job_id=256, provider=p, seat=s, seal=b"s" * 32) for s, p in seats.items()])
    chain.block()
    state.apply([chain(ResultRevealed, job_id=256, provider=p, seat=s, digest=BAD if p == CAROL else GOOD,
                       result=b"r") for s, p in seats.items()])
    chain.block()
    state.apply([chain(ProviderSlashed, job_id=256, provider=CAROL, seat=2, amount=COLLATERAL,
                       reason=Fault.LOSING_DIGEST),
                 chain(JobFinalized, job_id=256, status=JobStatus.FINALIZED, result_digest=GOOD,
                       provider_pay=2 * REWARD, client_refund=REWARD + FEE, slashed=COLLATERAL)])
    state.apply_time(chain.number, 1_000)

    assert kinds(state, 256) == ["posted"] + ["drawn"] * 3 + ["claimed"] * 3 + ["sealed"] * 3 + ["revealed"] * 3 + [
        "slashed", "finalized"]
    job = state.jobs[256]
    assert job.status == JobStatus.FINALIZED and job.slashed == COLLATERAL and job.provider_pay == 2 * REWARD
    assert [s.detail for s in job.steps if s.kind == "slashed"] == ["losing_digest"]
    assert state.by_status[JobStatus.OPEN] == 0 and state.by_status[JobStatus.FINALIZED] == 1
    assert state.escrow == 0 and state.slashed == COLLATERAL
    assert {a: p.earnings for a, p in state.providers.items()} == {ALICE: REWARD, BOB: REWARD, CAROL: 0}
    assert state.providers[CAROL].slashes == 1 and state.providers[CAROL].stake == 9 * COLLATERAL
    assert state.stake == 29 * COLLATERAL
    assert all(p.results == 1 for p in state.providers.values())


def test_an_r1_delivery_becomes_final_when_its_window_ends_and_pays_on_release():
    chain, state = Chain(), ExplorerState().fork()
    state.apply(providers(chain, ALICE))
    state.apply([posted(chain, 300, 1)])
    state.apply_views([view(300, 1, JobStatus.OPEN)])
    chain.block()
    state.apply([chain(ResultRevealed, job_id=300, provider=ALICE, seat=0, digest=GOOD, result=b"r")])
    state.apply_views([view(300, 1, JobStatus.DELIVERED, challenge_end=2_000)])
    state.apply_time(chain.number, 2_000)  # the window's last second: still challengeable
    assert kinds(state, 300) == ["posted", "delivered"] and state.jobs[300].status == JobStatus.DELIVERED
    assert state.escrow == REWARD + FEE and state.by_status[JobStatus.DELIVERED] == 1

    chain.block()
    state.apply_time(chain.number, 2_001)
    assert kinds(state, 300) == ["posted", "delivered", "finalized"]
    assert state.jobs[300].status == JobStatus.FINALIZED and state.escrow == 0
    assert state.by_status[JobStatus.DELIVERED] == 0 and state.by_status[JobStatus.FINALIZED] == 1
    assert state.providers[ALICE].earnings == 0  # credited only when released
    state.apply([chain(PayoutsReleased, provider=ALICE, generation=1, pay=REWARD, fees=FEE, collateral=COLLATERAL,
                       treasury=DAVE)])
    assert state.providers[ALICE].earnings == REWARD


def challenged_r1(chain: Chain, state: ExplorerState, job_id: int, majority: bytes) -> None:
    """An r = 1 job delivered GOOD by ALICE, challenged by DAVE, re-executed to `majority`."""
    state.apply([posted(chain, job_id, 1)])
    chain.block()
    state.apply([chain(ResultRevealed, job_id=job_id, provider=ALICE, seat=0, digest=GOOD, result=b"r")])
    state.apply_views([view(job_id, 1, JobStatus.DELIVERED, challenge_end=5_000)])
    chain.block()
    state.apply([chain(JobChallenged, job_id=job_id, challenger=DAVE, bond=5 * REWARD, claim_deadline=0,
                       commit_deadline=0, reveal_deadline=0)])
    state.apply_time(chain.number, 6_000)  # past the delivery's window: a challenged job waits for its round
    assert state.jobs[job_id].status == JobStatus.CHALLENGED
    chain.block()
    seats = dict(zip(range(1, R_CHALLENGE + 1), itertools.cycle([BOB, CAROL])))
    state.apply([chain(ResultRevealed, job_id=job_id, provider=p, seat=s, digest=majority, result=b"r")
                 for s, p in seats.items()])


def test_a_delivery_that_survives_its_challenge_earns_twice_and_the_round_is_paid():
    chain, state = Chain(), ExplorerState().fork()
    state.apply(providers(chain, ALICE, BOB, CAROL))
    challenged_r1(chain, state, 400, GOOD)
    chain.block()
    state.apply([chain(JobFinalized, job_id=400, status=JobStatus.FINALIZED, result_digest=GOOD,
                       provider_pay=R_CHALLENGE * REWARD + 2 * REWARD, client_refund=0, slashed=0)])
    assert kinds(state, 400) == ["posted", "delivered", "challenged"] + ["revealed"] * R_CHALLENGE + ["finalized"]
    per_seat = {BOB: 0, CAROL: 0}
    for s in range(1, R_CHALLENGE + 1):
        per_seat[[BOB, CAROL][(s - 1) % 2]] += REWARD
    assert {a: p.earnings for a, p in state.providers.items()} == {ALICE: 2 * REWARD, **per_seat}


def test_a_delivery_convicted_by_its_challenge_is_slashed_and_earns_nothing():
    chain, state = Chain(), ExplorerState().fork()
    state.apply(providers(chain, ALICE, BOB, CAROL))
    challenged_r1(chain, state, 401, BAD)
    chain.block()
    state.apply([chain(ProviderSlashed, job_id=401, provider=ALICE, seat=0, amount=COLLATERAL,
                       reason=Fault.LOST_CHALLENGE),
                 chain(JobFinalized, job_id=401, status=JobStatus.FINALIZED, result_digest=BAD,
                       provider_pay=R_CHALLENGE * REWARD, client_refund=REWARD + FEE, slashed=COLLATERAL)])
    assert state.providers[ALICE].earnings == 0 and state.providers[ALICE].slashed == COLLATERAL
    assert state.providers[BOB].earnings + state.providers[CAROL].earnings == R_CHALLENGE * REWARD
    assert state.escrow == 0 and state.by_status[JobStatus.FINALIZED] == 1 and state.slashed == COLLATERAL


def test_unclaimed_jobs_cancel_and_undrawn_seats_say_so():
    chain, state = Chain(), ExplorerState().fork()
    state.apply([posted(chain, 500, 2), chain(SeatDrawn, job_id=500, provider=NOBODY, seat=0)])
    state.apply_views([view(500, 2, JobStatus.OPEN)])
    chain.block()
    state.apply([chain(JobFinalized, job_id=500, status=JobStatus.CANCELLED, result_digest=b"\0" * 32,
                       provider_pay=0, client_refund=2 * (REWARD + FEE), slashed=0)])
    drawn = state.jobs[500].steps[1]
    assert (drawn.kind, drawn.provider, drawn.detail) == ("drawn", None, "nobody to draw")
    assert kinds(state, 500)[-1] == "cancelled" and state.by_status[JobStatus.CANCELLED] == 1 and state.escrow == 0


def test_stake_models_and_registry():
    chain, state = Chain(), ExplorerState().fork()
    state.apply([chain(ModelRegistered, model_id=MODEL, index=0, name="<script>alert(1)</script>",
                       weights_digest=b"w" * 32, format_version=1),
                 chain(ModelRegistered, model_id=OTHER, index=1, name="other", weights_digest=b"v" * 32,
                       format_version=2),
                 *providers(chain, ALICE),
                 chain(ProviderUpdated, provider=ALICE, price=2 * REWARD, model_ids=(MODEL, OTHER)),
                 chain(UnbondRequested, provider=ALICE, amount=3 * COLLATERAL, ready_at=0),
                 chain(UnbondRequested, provider=ALICE, amount=4 * COLLATERAL, ready_at=0),
                 chain(ModelStatusChanged, model_id=OTHER, active=False)])
    alice = state.providers[ALICE]
    assert (alice.stake, alice.unbonding, alice.price, alice.model_ids) == (
        10 * COLLATERAL, 4 * COLLATERAL, 2 * REWARD, (MODEL, OTHER))
    state.apply([chain(StakeWithdrawn, provider=ALICE, amount=4 * COLLATERAL)])
    assert (state.providers[ALICE].stake, state.providers[ALICE].unbonding) == (6 * COLLATERAL, 0)
    assert state.models[MODEL].name == "<script>alert(1)</script>" and not state.models[OTHER].active
    assert [m.index for m in state.models.values()] == [0, 1]


def test_events_of_jobs_posted_before_the_indexed_range_are_skipped():
    chain, state = Chain(), ExplorerState().fork()
    touched = state.apply([chain(JobClaimed, job_id=7, provider=ALICE, seat=0),
                           chain(ResultRevealed, job_id=7, provider=ALICE, seat=0, digest=GOOD, result=b"r")])
    assert touched == set() and state.jobs == {} and state.providers == {}


def test_a_fork_leaves_its_origin_as_it_was():
    chain, base = Chain(), ExplorerState().fork()
    base.apply([*providers(chain, ALICE), posted(chain, 600, 1)])
    base.apply_views([view(600, 1, JobStatus.OPEN)])
    base.apply_time(chain.number, 100)
    before = (dict(base.jobs), dict(base.providers), dict(base.by_status), base.escrow, base.block)

    chain.block()
    later = base.fork()
    later.apply([posted(chain, 601, 1),
                 chain(ResultRevealed, job_id=600, provider=ALICE, seat=0, digest=GOOD, result=b"r"),
                 chain(ProviderSlashed, job_id=600, provider=ALICE, seat=0, amount=COLLATERAL,
                       reason=Fault.LOST_CHALLENGE)])
    later.apply_views([view(601, 1, JobStatus.OPEN), view(600, 1, JobStatus.DELIVERED, challenge_end=500)])
    later.apply_time(chain.number, 600)

    assert (base.jobs, base.providers, base.by_status, base.escrow, base.block) == before
    assert kinds(base, 600) == ["posted"] and 601 not in base.jobs and base.awaiting_window == {}
    assert kinds(later, 600) == ["posted", "delivered", "slashed", "finalized"]
    assert later.escrow == REWARD + FEE  # job 601's; job 600 is final
    assert [j.job_id for j in later.recent_jobs(5)] == [601, 600]
