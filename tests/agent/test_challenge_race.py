"""A challenger that acts the moment a result is delivered, on anvil with in-process
agents: the honest agents are still after the job themselves (one's claim in flight,
the other's in its claim and engine batchers), yet both must take part in the
re-execution round, whose seats are drawn among all three providers (the deliverer
too), and the liar must be slashed."""

import pytest
from agent_market import SINGLE, Env, assert_clean_transactions, drive
from eth_utils import keccak

from client.protocol import JobStatus
from provider.agent.store import JobState
from tests.support.market import transact

pytestmark = pytest.mark.anvil


def test_challenge_right_after_delivery_is_joined_by_the_agents_still_claiming(
    anvil, engine, tmp_path
):
    env = Env(anvil, engine)
    # The second one's engine batch waits a while: the job is still in it when the
    # challenge comes.
    honest = [env.agent(1, tmp_path), env.agent(2, tmp_path, engine_batch={"max_wait": 1.0})]
    liar = env.agent(3, tmp_path, lambda job_id, result: result[:-1] + bytes([result[-1] ^ 1]))
    [job_id] = env.post(SINGLE[:1], r=1)

    # The first sends its claim, which the node then loses: it stays in flight while
    # the liar claims and delivers first.
    anvil.rpc("evm_setAutomine", False)
    drive(honest[:1], lambda: honest[0].store.job(job_id).state is JobState.CLAIMING)
    honest[1].step()  # sees the job and queues it for a claim and the engine
    anvil.rpc("anvil_dropAllTransactions")
    anvil.rpc("evm_setAutomine", True)
    drive([liar], lambda: liar.store.job(job_id).state is JobState.REVEALED)
    transact(env.w3, env.client, env.market.build_challenge(job_id))  # at once
    assert [a.store.job(job_id).state for a in honest] == [JobState.CLAIMING, JobState.SEEN]
    # Drawn before any agent acts again: a seat each, the deliverer's included.
    env.draw(job_id)

    agents = [*honest, liar]
    # Their r = 1 claims land on the challenged job: they take the round's seats drawn
    # to them, as does the deliverer's claim.
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents))

    assert env.market.job(job_id).status is JobStatus.FINALIZED
    assert env.market.job(job_id).result_digest == keccak(engine.embed(SINGLE[:1])[0])
    assert [a.store.job(job_id).state for a in agents] == [
        JobState.PAID, JobState.PAID, JobState.SLASHED]
    for agent in agents:
        kinds = [t.kind for t in agent.store.txs() if job_id in t.meta.get("jobs", [])]
        # one claim each (the first one's lost claim sent again at its nonce); the
        # deliverer's second claim is for its round seat
        assert kinds.count("claim") == (1 if agent in honest else 2)
        assert kinds.count("deliver") == (0 if agent in honest else 1)
        assert kinds.count("commit") == kinds.count("reveal") == 1
        assert_clean_transactions(env, agent.store, agent.txm.address)
