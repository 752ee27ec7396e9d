"""Splitting r = 1 jobs among providers without coordination: the rule (rendezvous
ranking and claim delays), the chain-backed directory of providers, and agents on anvil
that claim (and deliver) each job once, serve a dead provider's share after the grace,
and work alone; and the same split of finalizing the r = 3 jobs they all hold seats in."""

import time

import pytest
from agent_market import SENTENCES, SINGLE, Env, drive
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from client.events import ItemSkipped
from client.protocol import JobStatus
from provider.agent.partition import ProviderDirectory, claim_delay, ranking
from tests.support.anvil import funded_account
from tests.support.market import transact

ADDRESSES = [Account.from_key(i.to_bytes(32, "big")).address for i in range(1, 9)]
job_ids = st.integers(min_value=0, max_value=2**256 - 1)
provider_sets = st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=8, unique=True)


@given(job_ids, provider_sets)
def test_each_job_has_one_immediate_taker_then_one_backup_per_grace(job_id, providers):
    delays = sorted(claim_delay(job_id, p, providers, 5.0) for p in providers)
    assert delays == [5.0 * k for k in range(len(providers))]


@given(job_ids, provider_sets)
def test_the_ranking_is_the_same_for_every_agent(job_id, providers):
    shuffled = list(reversed(providers)) + [p.lower() for p in providers]
    assert ranking(job_id, providers) == ranking(job_id, shuffled)
    assert sorted(ranking(job_id, providers)) == sorted(providers)


@given(job_ids, provider_sets, st.sampled_from(ADDRESSES))
def test_a_joining_provider_takes_over_only_jobs_it_ranks_first(job_id, providers, newcomer):
    before, after = ranking(job_id, providers)[0], ranking(job_id, providers + [newcomer])[0]
    assert after in (before, newcomer)


@given(job_ids, provider_sets, st.sampled_from(ADDRESSES))
def test_an_agent_missing_from_its_own_list_still_counts_itself(job_id, providers, me):
    others = [p for p in providers if p != me]
    assert claim_delay(job_id, me, others, 2.0) == claim_delay(job_id, me, others + [me], 2.0)


def test_a_lone_provider_never_waits_and_shares_are_even():
    assert claim_delay(12345, ADDRESSES[0], [ADDRESSES[0]], 60.0) == 0.0
    three = ADDRESSES[:3]
    firsts = [ranking(j, three)[0] for j in range(3000)]
    assert all(900 <= firsts.count(p) <= 1100 for p in three)


def test_a_negative_grace_is_refused():
    with pytest.raises(ValueError, match="grace >= 0"):
        claim_delay(1, ADDRESSES[0], ADDRESSES, -1.0)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anvil
def test_the_directory_follows_registrations_and_unbonding(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    clock = Clock()
    directory = ProviderDirectory(env.market, start_block=env.start_block, refresh=10.0, clock=clock)
    assert directory.serving(engine.model_id) == []
    a, b = env.agent(1, tmp_path), env.agent(2, tmp_path)
    assert directory.serving(engine.model_id) == []  # not re-read before `refresh` seconds
    clock.now += 10
    assert sorted(directory.serving(engine.model_id)) == sorted([a.txm.address, b.txm.address])
    assert directory.serving(b"\x01" * 32) == []

    leaver = funded_account(2)  # b's account unbonds all its stake: it is leaving
    stake = env.market.provider(leaver.address).free
    transact(env.w3, leaver, env.market.build_request_unbond(stake))
    clock.now += 10
    assert directory.serving(engine.model_id) == [a.txm.address]


def _partitioned(agent, grace: float):
    agent.worker.steps.policy = agent.worker.steps.policy.model_copy(update={"takeover_grace": grace})
    return agent


def _engine_runs(agents) -> int:
    return sum(a.metrics.counter("verinfer_engine_jobs_total", "").get() for a in agents)


def _deliverers(env) -> dict[int, str]:
    return {e.job_id: e.provider for e in env.market.get_events(env.start_block, events=["ResultRevealed"])}


def _skipped(env) -> list:
    return [e for e in env.market.get_events(env.start_block, events=["ItemSkipped"])
            if isinstance(e, ItemSkipped)]


@pytest.mark.anvil
def test_agents_claim_each_job_once_and_serve_a_dead_providers_share(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    grace = 5.0  # well over one agent step, so a backup claims before the next one's turn
    agents = [_partitioned(env.agent(i, tmp_path), grace) for i in (1, 2)]
    env.agent(3, tmp_path)  # registered and staked, then never runs: a dead provider
    texts = SINGLE + [b"Provider %d takes its share." % i for i in range(10)]
    engine.embed(texts)  # compiled and warm: an agent step stays far below the grace
    jobs = env.post(texts, r=1)
    ranks = {j: ranking(j, [funded_account(i).address for i in (1, 2, 3)]) for j in jobs}
    dead = funded_account(3).address
    own = [j for j in jobs if ranks[j][0] != dead]
    assert own and len(own) < len(jobs)  # the hash gives the dead provider some jobs

    drive(agents, lambda: all(env.status(j) is JobStatus.DELIVERED for j in jobs), rounds=400)
    # Each job claimed and delivered by the provider it prefers; the dead provider's
    # share, after the grace, by its first backup alone.
    assert {j: ranks[j][0] if j in own else ranks[j][1] for j in jobs} == _deliverers(env)
    assert {j: env.market.seat(j, 0).provider for j in jobs} == _deliverers(env)
    assert _engine_runs(agents) == len(jobs)  # nobody computed a job another claimed
    assert _skipped(env) == []  # no claim lost a race, no delivery came too early


@pytest.mark.anvil
def test_a_lone_agent_takes_every_job_at_once(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    alone = _partitioned(env.agent(1, tmp_path), 600.0)
    viewed: list[int] = []
    views = alone.worker.market.jobs
    alone.worker.market.jobs = lambda ids, *a, **k: viewed.extend(ids) or views(ids, *a, **k)
    jobs = env.post(SINGLE, r=1)
    drive([alone], lambda: all(env.status(j) is JobStatus.DELIVERED for j in jobs))
    assert set(_deliverers(env).values()) == {alone.txm.address}
    for _ in range(3):
        alone.step()
        time.sleep(alone.worker.poll_interval)
    # One view per job, before taking it: a delivery is not viewed again before its
    # challenge window ends (by the agent's reckoning, no earlier than the chain's).
    assert sorted(viewed) == sorted(jobs)
    ends = {j: env.market.job(j).challenge_end for j in jobs}
    assert all(alone.store.job(j).quiet_until >= ends[j] for j in jobs)


@pytest.mark.anvil
def test_one_holder_finalizes_each_job_and_a_backup_stands_in_for_one_that_does_not(
        anvil, engine, tmp_path):
    env = Env(anvil, engine)
    grace = 5.0  # well over one agent step, so the backup's finalize lands before the next's turn
    transact(env.w3, env.owner, env.token.build_mint(funded_account(4).address, 10**24))
    agents = [_partitioned(env.agent(i, tmp_path), grace) for i in (1, 2, 3, 4)]
    *live, idle = agents
    idle.worker.settle.finalize = lambda now: None  # takes, commits and reveals its seats; never finalizes
    texts = SENTENCES + [b"Job %d is finalized once." % i for i in range(3)]
    engine.embed(texts)
    jobs = env.post(texts, r=3)
    # Three holders of four providers each: where the job's hash ranks the idle one
    # above two others, it holds a seat and ranks first among the holders; in the other
    # jobs it holds none (and delays nothing, however it ranks among all four).
    everyone = [a.txm.address for a in agents]
    backed_up, ranks = [j for j in jobs if ranking(j, everyone).index(idle.txm.address) <= 1], {}
    assert backed_up and len(backed_up) < len(jobs)
    for job_id in jobs:
        def accept(drawn, job_id=job_id):
            if len(set(drawn)) < 3:
                return False
            if job_id in backed_up:
                return ranking(job_id, drawn)[0] == idle.txm.address
            return idle.txm.address not in drawn
        ranks[job_id] = ranking(job_id, env.draw(job_id, accept))

    revealed_at: dict[int, float] = {}
    finalized_at: dict[int, float] = {}

    def settled() -> bool:
        now = time.monotonic()
        for job_id, info in zip(jobs, env.market.jobs(jobs)):
            if info.nrevealed == 3:
                revealed_at.setdefault(job_id, now)
            if info.status is JobStatus.FINALIZED:
                finalized_at.setdefault(job_id, now)
        return len(finalized_at) == len(jobs) and all(
            a.store.job(j).state.final for a in agents for j in jobs)

    drive(agents, settled, rounds=1000)
    finalizers = {j: [a.txm.address for a in agents for t in a.store.txs()
                      if t.kind == "finalize" and j in t.meta["jobs"]] for j in jobs}
    # One finalize per job: the first-ranked holder's at once; where that one does not
    # finalize, the next holder's, once its grace passed.
    assert finalizers == {j: [ranks[j][1] if j in backed_up else ranks[j][0]] for j in jobs}
    for job_id in jobs:
        waited = finalized_at[job_id] - revealed_at[job_id]
        assert waited >= grace if job_id in backed_up else waited < grace
    time.sleep(max(a.worker.poll_interval for a in agents))
    for agent in live:  # settled jobs' turns and view times are forgotten
        agent.step()
        assert agent.worker.settle.finalize_at == agent.worker.settle.next_check == {}
