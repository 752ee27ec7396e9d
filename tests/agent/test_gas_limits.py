"""Delivery batches after the first go out with a gas limit learned from the agent's own
receipts (no eth_estimateGas), as do claims of r = 1 jobs, commits and reveals (per
seat); a batch that fails anyway sends the next one back to the estimate. Claims that
may draw seats are always estimated and teach no limit."""

import math

import pytest
from agent_market import SENTENCES, SINGLE, Env, drive

from client.protocol import JobStatus
from provider.agent.gaslimits import FIXED, HEADROOM, INTRINSIC, GasLimits


def _estimates(agent) -> list[str]:
    """The functions the agent's tx manager estimates from now on, in order."""
    names, estimate = [], agent.txm._estimate

    def counted(to, data, value):
        names.append(agent.worker.market.function_of(data))
        return estimate(to, data, value)

    agent.txm._estimate = counted
    return names


def test_limits_are_learned_from_batches_that_skipped_nothing():
    gas = GasLimits()
    assert gas.limit("deliver", 3) is None  # nothing learned: estimate
    gas.learn("deliver", INTRINSIC + 64 * 70_000, items=64, won=63)  # a skipped item: no lesson
    assert gas.limit("deliver", 3) is None
    gas.learn("deliver", INTRINSIC + 64 * 70_000, items=64, won=64)
    assert gas.limit("deliver", 3) == 3 * 70_000 * HEADROOM + FIXED
    gas.learn("deliver", INTRINSIC + 2 * 60_000, items=2, won=2)  # cheaper: the most stays
    gas.learn("deliver", INTRINSIC + 2 * 90_001 - 1, items=2, won=2)  # dearer: it rules, rounded up
    assert gas.limit("deliver", 1) == math.ceil(90_001 * HEADROOM) + FIXED
    # One delivery into a new payout bucket with the transaction's own cost fits the
    # limit learned from a large batch.
    assert gas.limit("deliver", 1) > 108_901
    gas.learn("claim", INTRINSIC + 40_000, items=1, won=1)  # r = 1 claims (JobSteps keeps drawn ones out)
    assert gas.limit("claim", 2) == 2 * 40_000 * HEADROOM + FIXED
    gas.learn("settle", INTRINSIC + 40_000, items=1, won=1)  # not a kind whose items cost alike
    assert gas.limit("settle", 1) is None
    gas.forget("deliver")
    assert gas.limit("deliver", 1) is None
    gas.forget("deliver")  # forgetting twice is harmless


@pytest.mark.anvil
def test_deliveries_after_the_first_are_not_estimated_and_a_failed_one_estimates_again(
        anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agent = env.agent(1, tmp_path)  # alone: every r = 1 job is its own at once
    estimated = _estimates(agent)
    worker = agent.worker

    def delivers():
        return [t for t in agent.store.txs() if t.kind == "deliver"]

    def delivered(jobs):
        return lambda: all(env.status(j) is JobStatus.DELIVERED for j in jobs) and all(
            agent.store.job(j).pending is None for j in jobs)

    first = env.post(SINGLE, r=1)
    drive([agent], delivered(first))
    assert len(delivers()) == 1 and estimated == ["claim_many", "deliver_many"]
    (tx,) = delivers()
    assert worker.steps.gas.limit("deliver", 1) == math.ceil(-(-(tx.gas_used - INTRINSIC) // 2) * HEADROOM) + FIXED

    second = env.post(SENTENCES, r=1)
    drive([agent], delivered(second))
    assert estimated.count("deliver_many") == 1  # learned: sent as is
    assert estimated.count("claim_many") == 1  # r = 1 claims too (seat 0, no draw)
    claims = [t for t in agent.store.txs() if t.kind == "claim"]
    assert claims[-1].meta.get("learned_gas") and claims[-1].succeeded
    assert delivers()[-1].gas == worker.steps.gas.limit("deliver", 3) and delivers()[-1].succeeded

    # A limit that is too low (as an unforeseen item cost would make it): the batch runs
    # out of gas once, the next is estimated again, and the jobs are delivered. The
    # failure is no job's: none counts it.
    worker.steps.gas._per_item["deliver"] = 1_000
    third = env.post([b"Out of gas once.", b"Then estimated again."], r=1)
    drive([agent], delivered(third))
    failed, retried = delivers()[-2:]
    assert not failed.succeeded and failed.gas == 1_000 * 2 * HEADROOM + FIXED
    assert retried.succeeded and estimated.count("deliver_many") == 2
    assert [agent.store.job(j).failures for j in third] == [0, 0]

    # The same for a claim batch: out of gas once, claimed again on an estimate, delivered.
    worker.steps.gas._per_item["claim"] = 1  # FIXED alone: four claims need more
    fourth = env.post([b"A claim out of gas.", b"Then claimed", b"on an estimate,", b"and delivered."], r=1)
    drive([agent], delivered(fourth))
    claims = [t for t in agent.store.txs() if t.kind == "claim"]
    assert [t.succeeded for t in claims[-2:]] == [False, True]
    assert estimated.count("claim_many") == 2 and not claims[-1].meta.get("learned_gas")
    assert [agent.store.job(j).failures for j in fourth] == [0, 0, 0, 0]


@pytest.mark.anvil
def test_commits_and_reveals_learn_their_limits_and_a_failed_batch_blames_no_job(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(1, tmp_path), env.agent(2, tmp_path)]
    estimated = [_estimates(a) for a in agents]

    def finalized(jobs):
        return lambda: all(env.status(j) is JobStatus.FINALIZED for j in jobs) and all(
            a.store.job(j).state.final for a in agents for j in jobs)

    def post(texts):  # a seat each
        jobs = env.post(texts, r=2)
        for job_id in jobs:
            env.draw(job_id)
        return jobs

    first = post(SENTENCES)
    drive(agents, finalized(first))
    second = post(SINGLE)
    drive(agents, finalized(second))
    # A job reveals only once its commit was applied, which taught the commit's limit (a
    # reveal's is learned when its receipt is applied before the job settles).
    for agent in agents:
        steps = [t for t in agent.store.txs() if t.kind == "commit" and set(t.meta["jobs"]) & set(second)]
        assert steps and all(t.meta.get("learned_gas") and t.succeeded for t in steps)
        assert all(j.state.value == "paid" for j in agent.store.jobs(ids=first + second))

    # Claims that draw seats: each estimated, none teaching a limit, however many went out.
    for agent, names in zip(agents, estimated):
        claims = [t for t in agent.store.txs() if t.kind == "claim"]
        assert claims and names.count("claim_many") == len(claims)
        assert all(t.meta.get("unlike_items") and not t.meta.get("learned_gas") for t in claims)
        assert agent.worker.steps.gas.limit("claim", 1) is None

    low = agents[0]
    low.worker.steps.gas._per_item["commit"] = 1  # FIXED alone: three commits need more
    third = post([b"A commit out of gas.", b"Then one estimated.", b"And all are paid."])
    drive(agents, finalized(third))
    commits = [t for t in low.store.txs() if t.kind == "commit"]
    assert [t.succeeded for t in commits[-2:]] == [False, True]
    assert commits[-1].meta.get("learned_gas") is None  # estimated, after the failure
    assert [low.store.job(j).failures for j in third] == [0, 0, 0]
    assert all(low.store.job(j).state.value == "paid" for j in third)
