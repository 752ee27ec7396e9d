"""Faults on anvil under three agent processes: malformed jobs, an RPC outage, a dropped
transaction, kill -9 between commit and reveal, and a reorg. One cluster serves the
module (starting three agents costs tens of seconds); each test leaves it healthy.
Every test ends with the job settled by the honest majority, each agent paid for the
seats drawn to it (or, drawn for none, the job lost), and each agent's transactions
clean: every intent confirmed once, nonces contiguous.

The chain mines a block a second and agents take a receipt as final only after
CONFIRMATIONS blocks. A shallower reorg undoes receipts before the agents act on them;
a deeper one takes receipts they counted confirmed and acted on, which they notice
(within the watcher's reorg window) and send again at the same nonces."""

import signal
import time

import pytest
from cluster import REWARD, WINDOWS, Cluster, clean_transactions
from eth_utils import keccak

from client.errors import InvalidInput, ModelNotFound
from client.events import JobPosted
from client.protocol import MAX_INPUT, JobStatus
from provider.agent.store import JobState, TxStatus

pytestmark = pytest.mark.anvil

CONFIRMATIONS = 3
REORG_DEPTH = 2  # < CONFIRMATIONS


@pytest.fixture(scope="module")
def shared(engine, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("faults"), engine, block_time=1,
                      tx_confirmations=CONFIRMATIONS)
    try:
        cluster.start_agents()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(shared):
    assert all(a.alive for a in shared.agents), "an agent died in an earlier test"
    yield shared
    for agent in shared.agents:  # a failed test may have left some stopped
        if agent.alive:
            agent.signal(signal.SIGCONT)


def settled_by_all(cluster: Cluster, job_ids: list[int], what: str) -> None:
    """Wait until the jobs are finalized and every agent was paid for each whose seats
    it held (drawn by stake; an agent drawn for none lost it)."""

    def settled() -> bool:
        if not all(cluster.market.job(j).status is JobStatus.FINALIZED for j in job_ids):
            return False
        holders = {j: cluster.holders(j) for j in job_ids}
        return all((r := a.job(j)) is not None
                   and r.state is (JobState.PAID if a.address in holders[j] else JobState.LOST)
                   for a in cluster.agents for j in job_ids)

    cluster.wait(settled, what)
    expected = cluster.engine.embed([cluster.texts[j] for j in job_ids])
    assert [cluster.market.job(j).result_digest for j in job_ids] == [keccak(e) for e in expected]
    for agent in cluster.agents:
        clean_transactions(cluster, agent)


def intents(agent, kind: str, job_id: int) -> list:
    return [t for t in agent.txs() if t.kind == kind and job_id in t.meta.get("jobs", [])]


def test_malformed_jobs_are_refused_and_the_client_refunded(cluster):
    client, market = cluster.client, cluster.market
    with pytest.raises(ModelNotFound, match="models: unknown model"):
        client.post_many(["fine text"], reward=REWARD, model_id=keccak(b"no such model"))
    with pytest.raises(InvalidInput, match=f"1..{MAX_INPUT} bytes"):
        client.post_many([b"x" * (MAX_INPUT + 1)], reward=REWARD)

    inputs = [b"\xff\xfe not utf-8", b" \n\t "]
    for data in inputs:  # the SDK refuses them before sending
        with pytest.raises(InvalidInput, match="not UTF-8|no text"):
            client.post_many([data], reward=REWARD, r=3, deadlines=WINDOWS)
    # another client posts them anyway (the contract takes any bytes)
    client.deposit(2 * market.job_price(3, REWARD, 1))
    receipt = client.send(market.build_post_jobs(cluster.engine.model_id, inputs, 3, REWARD,
                                                 WINDOWS.claim, WINDOWS.commit, WINDOWS.reveal))
    bad = [e.job_id for e in receipt.of(JobPosted)]
    good = cluster.post(["Agents keep serving after refusing bad jobs."], r=3)
    cluster.wait(lambda: all((r := a.job(j)) is not None and r.state is JobState.REFUSED
                             for a in cluster.agents for j in bad), "every agent refusing")
    settled_by_all(cluster, good, "the good job")
    assert all(market.job(j).nclaimed == 0 for j in bad)

    cluster.advance(WINDOWS.claim + 1)  # unclaimed past the claim deadline: refundable
    deposited = client.balances().deposited
    refunds = client.finalize(bad)
    assert [(e.job_id, e.status) for e in refunds] == [(j, JobStatus.CANCELLED) for j in bad]
    assert [e.client_refund for e in refunds] == [market.job_price(3, REWARD, 1)] * 2
    assert client.balances().deposited == deposited + 2 * market.job_price(3, REWARD, 1)
    assert all(a.alive for a in cluster.agents)


def test_rpc_endpoint_going_away_for_a_while(cluster):
    [job] = cluster.post(["The endpoint goes away mid-job."], r=3)
    cluster.wait(lambda: cluster.market.job(job).nclaimed == 3, "claims")
    before = [a.log_text().count("rpc unavailable") for a in cluster.agents]
    cluster.proxy.down()  # the agents' endpoint refuses connections; the chain goes on
    try:
        cluster.wait(lambda: all(a.log_text().count("rpc unavailable") > n
                                 for a, n in zip(cluster.agents, before)), "agents noticing")
        time.sleep(3)  # a few backoff rounds
        assert all(a.alive for a in cluster.agents)
    finally:
        cluster.proxy.up()
    settled_by_all(cluster, [job], "the job after the outage")


def test_a_dropped_transaction_is_sent_again(cluster):
    a = cluster.agents[0]
    for agent in cluster.agents:
        agent.signal(signal.SIGSTOP)
    [job] = cluster.post(["A transaction vanishes from the pool."], r=3)
    cluster.anvil.rpc("evm_setIntervalMining", 0)  # mining paused: transactions wait in the pool
    for agent in cluster.agents:
        agent.signal(signal.SIGCONT)

    def pooled() -> list[str]:
        pending = cluster.anvil.rpc("txpool_content")["pending"]
        return [tx["hash"] for sender, txs in pending.items() if sender.lower() == a.address.lower()
                for tx in txs.values()]

    try:
        cluster.wait(lambda: bool(pooled()), "the claim in the pool")
        [claim] = pooled()
        cluster.anvil.rpc("anvil_dropTransaction", claim)
        cluster.wait(lambda: "tx dropped by the node; sending again" in a.log_text(), "the re-broadcast")
    finally:
        cluster.anvil.rpc("evm_setIntervalMining", 1)
    settled_by_all(cluster, [job], "the job after the drop")
    [intent] = intents(a, "claim", job)
    assert intent.mined_hash.hex() == claim.removeprefix("0x")  # the same signed bytes


def test_kill_9_between_commit_and_reveal_then_restart(cluster):
    a, b, c = cluster.agents
    for agent in cluster.agents:
        agent.signal(signal.SIGSTOP)
    [job] = cluster.post(["Killed between commit and reveal."], r=3)
    cluster.draw(job)  # a seat each: reveals open once all three committed, a waits alone
    a.signal(signal.SIGCONT)
    cluster.wait(lambda: (r := a.job(job)) is not None and r.state is JobState.COMMITTED, "a's commit")
    a.kill()
    for agent in (b, c):
        agent.signal(signal.SIGCONT)
    cluster.wait(lambda: cluster.market.job(job).nrevealed == 2, "b and c revealing")

    a.start()  # same store: reconciles, reveals the stored result with its stored salt
    settled_by_all(cluster, [job], "a's reveal after the restart")  # paid: its reveal matched its seal
    for kind in ("claim", "commit", "reveal"):
        assert len(intents(a, kind, job)) == 1


def test_a_reorg_under_running_agents(cluster):
    for agent in cluster.agents:
        agent.signal(signal.SIGSTOP)
    [job] = cluster.post(["The chain reorganises under the agents."], r=3)
    cluster.anvil.rpc("anvil_mine", CONFIRMATIONS)  # the post stays below the coming reorg
    for agent in cluster.agents:
        agent.signal(signal.SIGCONT)
    cluster.wait(lambda: cluster.market.job(job).nclaimed == 3, "claims")
    # Mining paused for a moment (the agents keep running): we must know which blocks go.
    cluster.anvil.rpc("evm_setIntervalMining", 0)
    head = cluster.w3.eth.block_number
    orphaned = [bytes(h) for n in range(head - REORG_DEPTH + 1, head + 1)
                for h in cluster.w3.eth.get_block(n)["transactions"]]
    assert orphaned, "no agent transaction in the blocks to orphan"
    cluster.anvil.rpc("anvil_reorg", REORG_DEPTH, [])  # replaces them, without their txs
    assert cluster.w3.eth.get_block(head)["transactions"] == []
    cluster.anvil.rpc("evm_setIntervalMining", 1)
    settled_by_all(cluster, [job], "the job after the reorg")
    # The agents sent the orphaned transactions again, byte for byte (same hashes); a
    # claim's gas covers the draw a reorg may leave it to make.
    assert all(cluster.w3.eth.get_transaction_receipt(h)["status"] == 1 for h in orphaned)
    for agent in cluster.agents:
        assert len(intents(agent, "claim", job)) == 1


def test_a_reorg_deeper_than_the_confirmations(cluster):
    for agent in cluster.agents:
        agent.signal(signal.SIGSTOP)
    [job] = cluster.post(["The chain reorganises below the confirmations."], r=3)
    cluster.anvil.rpc("anvil_mine", CONFIRMATIONS + 3)  # the post stays below the coming reorg
    for agent in cluster.agents:
        agent.signal(signal.SIGCONT)
    # Every seat taken and every claim sent confirmed. An agent that resumed after the
    # first claim drew the seats to others sends none (on a loaded machine it happens).
    claimants = lambda: [a for a in cluster.agents if intents(a, "claim", job)]  # noqa: E731
    cluster.wait(lambda: cluster.market.job(job).nclaimed == 3 and all(
        intents(a, "claim", job)[0].status is TxStatus.CONFIRMED for a in claimants()),
        "every seat taken, every claim confirmed")
    cluster.anvil.rpc("evm_setIntervalMining", 0)
    claimed = claimants()
    head = cluster.w3.eth.block_number
    depth = head - min(intents(a, "claim", job)[0].block_number for a in claimed) + 1
    assert depth >= CONFIRMATIONS  # it reaches receipts the agents counted final
    cluster.anvil.rpc("anvil_reorg", depth, [])  # every claim goes, and all that followed
    assert cluster.market.job(job).nclaimed == 0
    cluster.anvil.rpc("evm_setIntervalMining", 1)
    settled_by_all(cluster, [job], "the job after the deep reorg")  # nonces contiguous
    for agent in claimed:
        [claim] = intents(agent, "claim", job)  # sent again at its nonce, not intended twice
        assert claim.reorgs == 1
