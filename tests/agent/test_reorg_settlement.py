"""Issue 13's depth-6 reorg, on anvil with in-process agents and the sample config's
depths (events after 2 blocks, receipts after 1): the agents have settled two r = 3
jobs (paid), then a reorg deeper than the watcher's confirmations, within its reorg
window, takes every commit, reveal and finalize while one agent is paused.

The running agents' reveals, sent again at their nonces, revert (the paused agent's
commit is missing). What must hold: nobody keeps an outcome the chain no longer shows;
each agent re-opens its jobs, reveals again once the commits are in again, and all
three are paid: no honest provider slashed, the jobs FINALIZED on the honest digest."""

import pytest
from agent_market import SENTENCES, Env, assert_clean_transactions, drive
from eth_utils import keccak

from client.protocol import JobStatus
from provider.agent.store import JobState

pytestmark = pytest.mark.anvil

WATCHER = {"confirmations": 2, "poll_interval": 0.05, "reorg_window": 64}


def test_an_orphaned_settlement_and_reveal_are_redone_not_trusted(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(i, tmp_path, watcher=WATCHER) for i in (1, 2, 3)]
    jobs = env.post(SENTENCES[:2], r=3)
    for job_id in jobs:
        env.draw(job_id)  # a seat each, below the coming reorg: the draws stand
    anvil.rpc("anvil_mine", 2)  # the posts 2 blocks deep: the watchers deliver them

    def all_in(*states):
        return all(a.store.job(j).state in states for a in agents for j in jobs)

    drive(agents, lambda: all_in(JobState.PAID), anvil=anvil)
    anvil.rpc("anvil_mine", 3)  # the JobFinalized events reach the watchers too
    for agent in agents:
        agent.step()
    assert all(a.store.job(j).settled.status is JobStatus.FINALIZED for a in agents for j in jobs)
    first_commit = min(t.block_number for a in agents for t in a.store.txs() if t.kind == "commit")
    depth = env.w3.eth.block_number - first_commit + 1
    assert WATCHER["confirmations"] < depth <= WATCHER["reorg_window"]

    *running, paused = agents
    anvil.rpc("anvil_reorg", depth, [])  # every commit, reveal and finalize goes; the claims stay
    assert [env.market.job(j).ncommitted for j in jobs] == [0, 0]
    drive(running, lambda: all(a.store.job(j).state is JobState.COMMITTED for a in running for j in jobs)
          and all(not t.status.is_open for a in running for t in a.store.txs()), anvil=anvil)
    # Their commits are back, their re-sent reveals reverted: nobody revealed yet.
    reveals = [t for a in running for t in a.store.txs() if t.kind == "reveal"]
    assert reveals and all(t.reorgs == 1 and not t.succeeded for t in reveals)
    assert [(env.market.job(j).ncommitted, env.market.job(j).nrevealed) for j in jobs] == [(2, 0), (2, 0)]

    drive(agents, lambda: all_in(JobState.PAID), anvil=anvil)  # the paused agent is back
    honest = [keccak(r) for r in engine.embed(SENTENCES[:2])]
    assert [(env.status(j), env.market.job(j).result_digest) for j in jobs] == [
        (JobStatus.FINALIZED, digest) for digest in honest]
    assert all(a.store.job(j).slashed == {} for a in agents for j in jobs)
    anvil.rpc("evm_mine")  # the last transactions reach their confirmation
    for agent in agents:
        agent.txm.poll()
        assert_clean_transactions(env, agent.store, agent.txm.address)
