"""The job logic end to end on anvil, with the real Marketplace, the real integer engine
and three agents (one dishonest): claim, compute, commit, reveal, deliver, finalize,
refusal of malformed jobs, and a reorg under running agents. Seats of r >= 2 jobs and
of re-execution rounds are drawn by stake: the tests draw them first (Env.draw) where
the roles matter."""

import time

import pytest
from agent_market import (
    CHALLENGE_WINDOW,
    REWARD,
    SENTENCES,
    SINGLE,
    WINDOW,
    Env,
    assert_clean_transactions,
    drive,
)
from eth_utils import keccak

from client.protocol import Fault, JobStatus
from provider.agent.store import JobState
from tests.support.market import transact

pytestmark = pytest.mark.anvil


@pytest.mark.slow
def test_three_agents_serve_jobs_and_the_dishonest_one_is_slashed(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    majority: list[int] = []

    def corrupt(job_id, result):  # agent 3 lies on the r = 3 jobs
        return result[:-1] + bytes([result[-1] ^ 1]) if job_id in majority else result

    agents = [env.agent(1, tmp_path), env.agent(2, tmp_path), env.agent(3, tmp_path, corrupt)]
    majority += env.post(SENTENCES, r=3)
    for job_id in majority:  # a seat each: the liar is outvoted
        env.draw(job_id)
    singles = env.post(SINGLE, r=1)
    malformed = env.post([b"\xff\xfe not utf-8", b"   "], r=3)
    cheap = env.post([b"Below every provider's price."], r=1, reward=REWARD - 1)
    drive(agents, lambda: all(env.status(j) is JobStatus.FINALIZED for j in majority)
          and all(env.status(j) is JobStatus.DELIVERED for j in singles))

    expected = dict(zip(majority + singles, engine.embed(SENTENCES + SINGLE)))
    for job_id in majority:
        assert env.market.job(job_id).result_digest == keccak(expected[job_id])
    drive(agents, lambda: all(a.store.job(j).state.final for a in agents for j in majority))
    for job_id in majority:
        assert [a.store.job(job_id).state for a in agents] == [
            JobState.PAID, JobState.PAID, JobState.SLASHED]
        assert agents[0].store.result(job_id).result == expected[job_id]

    env.advance(CHALLENGE_WINDOW + 1)  # the r = 1 deliveries stand, their provider is paid
    drive(agents, lambda: all(env.status(j) is JobStatus.FINALIZED for j in singles)
          and all(a.store.job(j).state.final for a in agents for j in singles))
    for job_id in singles:
        states = sorted(a.store.job(job_id).state.value for a in agents)
        assert states == ["lost", "lost", "paid"]
        assert env.market.job(job_id).result_digest == keccak(expected[job_id])

    # Malformed inputs are refused by every agent and never claimed; the client is
    # refunded once the claim deadline passes.
    # So is a reward below the agents' price (declared on chain at registration).
    for job_id in malformed + cheap:
        assert {a.store.job(job_id).state for a in agents} == {JobState.REFUSED}
        assert env.market.job(job_id).nclaimed == 0
    assert {a.store.job(cheap[0]).reason for a in agents} == {
        "reward below the provider's price"}
    env.advance(WINDOW + 1)
    transact(env.w3, env.client, env.market.build_finalize_many(malformed + cheap))
    assert {env.status(j) for j in malformed + cheap} == {JobStatus.CANCELLED}

    for agent in agents:
        assert_clean_transactions(env, agent.store, agent.txm.address)
    assert agents[0].store.earnings() == REWARD * (len(majority) + sum(
        agents[0].store.job(j).state is JobState.PAID for j in singles))


def test_a_reorg_under_running_agents_is_survived(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(i, tmp_path, tx_confirmations=3) for i in (1, 2, 3)]
    [job_id] = env.post(SENTENCES[:1], r=3)
    env.draw(job_id)  # a seat each
    anvil.rpc("anvil_mine", 2)  # the post and the draw stay below the coming reorg

    # Automine: each claim lands in its own block. Stop as soon as all three landed.
    for _ in range(200):
        for agent in agents:
            agent.step()
            if env.market.job(job_id).nclaimed == 3:
                break
        else:
            time.sleep(0.02)
            continue
        break
    anvil.rpc("anvil_reorg", 2, [])  # the last two claims vanish with their blocks
    assert env.market.job(job_id).nclaimed == 1

    drive(agents, lambda: all(a.store.job(job_id).state is JobState.PAID for a in agents),
          anvil=anvil)
    assert sum(a.metrics.counter("verinfer_reorgs_total", "").get() for a in agents) >= 1
    anvil.rpc("anvil_mine", 3)  # the last transactions reach their confirmations
    for agent in agents:
        agent.txm.poll()
        kinds = [t.kind for t in agent.store.txs()]
        assert kinds.count("claim") == 1  # the dropped claims were re-sent, not re-intended
        assert_clean_transactions(env, agent.store, agent.txm.address)


def test_a_challenged_delivery_is_re_executed_and_the_liar_slashed(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    liar = env.agent(3, tmp_path, lambda job_id, result: result[:-1] + bytes([result[-1] ^ 1]))
    [job_id] = env.post(SINGLE[:1], r=1)
    drive([liar], lambda: liar.store.job(job_id).state is JobState.REVEALED)  # it delivers
    honest = [env.agent(1, tmp_path), env.agent(2, tmp_path)]
    drive(honest, lambda: all(a.store.job(job_id).state is JobState.LOST for a in honest))

    transact(env.w3, env.client, env.market.build_challenge(job_id))
    agents = honest + [liar]
    # The round's seats are drawn among all three: the deliverer may be drawn like
    # anyone. Here it is, for one seat, and repeats its lie there.
    env.draw(job_id)
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents))

    honest_digest = keccak(engine.embed(SINGLE[:1])[0])
    assert env.market.job(job_id).status is JobStatus.FINALIZED
    assert env.market.job(job_id).result_digest == honest_digest
    assert [a.store.job(job_id).state for a in agents] == [
        JobState.PAID, JobState.PAID, JobState.SLASHED]
    # Slashed twice: its delivery (seat 0) lost the challenge, its round seat lost the vote.
    slashed = liar.store.job(job_id)
    assert sorted(slashed.faults.values()) == [Fault.LOSING_DIGEST, Fault.LOST_CHALLENGE]
    assert sorted(slashed.slashed) == [0, slashed.seats[1]]
    for agent in agents:
        kinds = [t.kind for t in agent.store.txs() if job_id in t.meta.get("jobs", [])]
        assert kinds.count("commit") == kinds.count("reveal") == 1
        assert_clean_transactions(env, agent.store, agent.txm.address)
