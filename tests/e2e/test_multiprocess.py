"""Multi-process end to end on anvil: three agents as separate processes (one started
with the `verinfer-provider` command, its network and account given on the command line
and the node reached through ape's foundry network; two with `python -m provider.agent`
and an rpc_url) and the client as another process (the `verinfer` CLI); results
verified against the engine's bytes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cluster import CHALLENGE_WINDOW, CLIENT, Cluster, clean_transactions, python_env
from eth_utils import keccak

from client.encoding import decode_embedding
from provider.agent.store import JobState

pytestmark = pytest.mark.anvil

MAJORITY = ["Two dogs run across a snowy field.", "The central bank raised interest rates.",
            "Fresh coffee is brewing in the kitchen."]
SINGLE = ["A child is learning to ride a bicycle.", "The orchestra tuned their instruments.",
          "Rain is forecast for the weekend."]


def verinfer(cluster: Cluster, *args: str, timeout: float = 300) -> str:
    """Run the client CLI as its own process; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "client.cli", "--rpc", cluster.anvil.url, "--private-key",
         cluster.key(CLIENT), "--marketplace", cluster.market.address, *args],
        env=python_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def cluster(engine, tmp_path):
    cluster = Cluster(tmp_path, engine)
    first = cluster.agents[0]
    # No rpc_url, and another network and account in the file: the command line's --network
    # and --account decide, and ape's foundry provider joins this node.
    config = first.config.read_text()
    for line, instead in ((f'rpc_url = "{cluster.proxy.url}"\n', ""),
                          ('network = "ethereum:local:foundry"', 'network = "ethereum:local:test"'),
                          ('account = "TEST::1"', 'account = "TEST::7"')):
        assert line in config
        config = config.replace(line, instead)
    first.config.write_text(config)
    first.command = [str(Path(sys.executable).with_name("verinfer-provider")), "--config", str(first.config),
                     "--network", "ethereum:local:foundry", "--account", "TEST::1", "--no-dashboard"]
    first.env = {"APE_FOUNDRY_HOST": cluster.proxy.url}
    yield cluster
    cluster.stop()


def test_agents_and_client_in_separate_processes(cluster, engine, tmp_path):
    cluster.start_agents()
    sentences = tmp_path / "majority.txt"
    sentences.write_text("\n".join(MAJORITY) + "\n")
    majority = [int(j) for j in verinfer(cluster, "post", "--file", str(sentences), "--reward", "0.01",
                                         "--r", "3").split()]
    single = [int(j) for j in verinfer(cluster, "post", *SINGLE, "--reward", "0.01").split()]
    jobs = majority + single
    verinfer(cluster, "wait", *map(str, jobs), "--until", "result")

    # r = 1 deliveries become final once their challenge window is over.
    cluster.advance(CHALLENGE_WINDOW + 1)
    verinfer(cluster, "wait", *map(str, jobs), "--until", "settled", "--settle")
    records = json.loads(verinfer(cluster, "result", *map(str, jobs), "--json"))

    expected = dict(zip(jobs, engine.embed(MAJORITY + SINGLE)))
    # r = 3 seats are drawn by stake: one provider may hold several, another none.
    holders = {j: cluster.holders(j) for j in majority}
    assert all(holders.values())
    assert [r["job_id"] for r in records] == jobs
    for record in records:
        result = expected[record["job_id"]]
        assert record["final"] and record["digest"] == "0x" + keccak(result).hex()
        assert np.allclose(record["embedding"], decode_embedding(result), atol=1e-6)
        assert len(record["providers"]) == len(holders.get(record["job_id"], {"the deliverer"}))

    cluster.wait(lambda: all(a.job(j) is not None and a.job(j).state.final
                             for a in cluster.agents for j in jobs), "agents settling")
    for job_id in majority:
        assert {a.address: a.job(job_id).state for a in cluster.agents} == {
            a.address: JobState.PAID if a.address in holders[job_id] else JobState.LOST
            for a in cluster.agents}
    for job_id in single:
        assert sorted(a.job(job_id).state.value for a in cluster.agents) == ["lost", "lost", "paid"]
    for agent in cluster.agents:
        assert agent.stop() == 0, agent.log_text()[-3000:]
        clean_transactions(cluster, agent)
