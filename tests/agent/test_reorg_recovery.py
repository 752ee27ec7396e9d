"""A reorg deeper than the tx manager's confirmations, under in-process agents on anvil
with the sample config's depths (a receipt counts after 1 block, events after 2): the
agents' claims vanish after they counted them confirmed, some after they acted on them.

What must hold: the claims are sent again at their nonces (no gap, no second claim
intent), an agent whose confirmed receipt vanished does not stall, an agent that
already held the seat waits for its claim instead of failing the job, and all three
are paid once the claims are mined again."""

import time

import pytest
from agent_market import SENTENCES, Env, assert_clean_transactions, drive

from client.protocol import JobStatus
from provider.agent.jobs import MAX_FAILURES
from provider.agent.store import JobState

pytestmark = pytest.mark.anvil

ENGINE_WAIT = 0.3  # seconds a claimed job waits in the engine batcher (commit not yet sent)


def test_claims_orphaned_after_confirming_are_mined_again_and_the_job_completes(
    anvil, engine, tmp_path
):
    env = Env(anvil, engine)
    agents = [env.agent(i, tmp_path, watcher={"confirmations": 2, "poll_interval": 0.05},
                        engine_batch={"max_wait": ENGINE_WAIT}) for i in (1, 2, 3)]
    [job_id] = env.post(SENTENCES[:1], r=3)
    env.draw(job_id)  # a seat each, drawn below the coming reorg: the draw stands
    anvil.rpc("anvil_mine", 2)  # the post is 2 blocks deep: the watchers deliver it
    anvil.rpc("evm_setAutomine", False)
    drive(agents, lambda: all(a.store.job(job_id).state is JobState.CLAIMING for a in agents))
    anvil.rpc("evm_mine")  # one block with the three claims ...
    anvil.rpc("evm_mine")  # ... and one on top: the reorg below takes both
    assert env.market.job(job_id).nclaimed == 3
    for agent in agents:
        agent.txm.poll()  # each counts its claim confirmed
    *holders, late = agents
    for agent in holders:  # these two act on it: seat held, the job in the engine batcher
        agent.step()
        assert agent.store.job(job_id).state is JobState.CLAIMED
    assert late.store.job(job_id).state is JobState.CLAIMING  # receipt not yet applied

    anvil.rpc("anvil_reorg", 2, [])
    assert env.market.job(job_id).nclaimed == 0
    # Mining stays paused and the node keeps losing the re-sent claims (as a node that
    # forgets its pool would) for as long as MAX_FAILURES commit attempts of a holder
    # take: each round outlasts the engine batcher's wait, an attempt takes two rounds.
    for _ in range(2 * MAX_FAILURES + 2):
        for agent in agents:
            agent.step()  # the late one must not stall on its vanished receipt
        anvil.rpc("anvil_dropAllTransactions")
        time.sleep(ENGINE_WAIT)
    assert [a.store.job(job_id).state for a in agents] == [
        JobState.CLAIMED, JobState.CLAIMED, JobState.CLAIMING]
    assert env.market.job(job_id).ncommitted == 0

    anvil.rpc("evm_setAutomine", True)
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents), anvil=anvil)
    assert env.status(job_id) is JobStatus.FINALIZED
    assert [a.store.job(job_id).state for a in agents] == [JobState.PAID] * 3
    anvil.rpc("evm_mine")  # the last transactions reach their confirmation
    for agent in agents:
        agent.txm.poll()
        [claim] = [t for t in agent.store.txs() if t.kind == "claim"]
        assert claim.reorgs == 1  # sent again at its nonce, never intended twice
        assert agent.metrics.counter("verinfer_tx_reorged_total", "").get(kind="claim") == 1
        assert_clean_transactions(env, agent.store, agent.txm.address)
