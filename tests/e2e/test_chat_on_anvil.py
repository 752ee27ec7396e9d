"""Chat jobs end to end on anvil: three agent processes serving MiniLM and the integer
LLM; the `verinfer chat` command gets a verified r = 3 answer; an r = 1 chat answer
delivered wrong by a provider outside the agents is challenged, re-executed by the
drawn agents, and the liar slashed."""

import json
import signal
import subprocess
import sys
from dataclasses import astuple

import pytest
from cluster import CLIENT, REWARD, WINDOWS, Cluster, python_env
from tests.support.anvil import funded_account
from tests.support.market import transact

from client.chat import ChatAnswer, ChatRequest
from client.events import JobPosted, ProviderSlashed
from client.protocol import Fault, JobStatus
from provider.agent.store import JobState

pytestmark = pytest.mark.anvil

QUESTION = "What is the capital of France?"
LIAR = 8  # a funded test account that is no agent


@pytest.fixture(scope="module")
def cluster(engine, chat_runner, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("chat"), engine, chat=chat_runner)
    cluster.start_agents(timeout=400)  # each loads both engines and runs their self-tests
    yield cluster
    cluster.stop()


def test_verinfer_chat_gets_a_verified_answer_at_r3(cluster, chat_runner):
    done = subprocess.run(
        [sys.executable, "-m", "client.cli", "--rpc", cluster.anvil.url, "--private-key", cluster.key(CLIENT),
         "--marketplace", cluster.market.address, "chat", QUESTION, "--reward", "0.01", "--r", "3",
         "--max-tokens", "24", "--json"],
        env=python_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert record["text"] == "The capital of France is Paris." and record["finish"] == "stop"
    assert record["status"] == JobStatus.FINALIZED.name and record["providers"]  # seats drawn with replacement
    [own] = chat_runner.run([ChatRequest(messages=[{"role": "user", "content": QUESTION}], max_tokens=24).encode()])
    assert record["token_ids"] == list(ChatAnswer.decode(own).ids)


def test_a_wrong_r1_chat_answer_is_challenged_and_the_liar_slashed(cluster, chat_runner):
    market, client, w3 = cluster.market, cluster.client, cluster.w3
    liar = funded_account(LIAR)
    chat_model = cluster.model_ids[1]
    # The liar stakes enough to take an r = 1 job (first come) but less than the draw
    # minimum: never drawn to re-execute its own job.
    stake = 10**17
    transact(w3, cluster.owner, cluster.token.build_mint(liar.address, stake))
    transact(w3, liar, cluster.token.build_approve(market.address, stake))
    transact(w3, liar, market.build_register([chat_model], 0))
    transact(w3, liar, market.build_stake(stake))

    request = ChatRequest(messages=[{"role": "user", "content": QUESTION}], max_tokens=16)
    lie = ChatAnswer(finish="stop", ids=(504, 3575), text="Berlin.").encode()
    for agent in cluster.agents:  # the liar is first to the job
        agent.signal(signal.SIGSTOP)
    try:
        job = client.post(request, reward=REWARD, r=1, deadlines=WINDOWS)
        transact(w3, liar, market.build_claim_many([job]))
        transact(w3, liar, market.build_deliver_many([job], [lie]))
    finally:
        for agent in cluster.agents:
            agent.signal(signal.SIGCONT)
    assert client.result(job).answer.text == "Berlin."  # delivered, still challengeable

    [honest] = chat_runner.run([request.encode()])
    assert honest != lie  # the client re-ran it: a mismatch
    before = client.balances()
    bond = client.challenge(job).bond
    info = client.wait([job], timeout=400, until="settled", settle=True)[job]
    assert info.status == JobStatus.FINALIZED
    settled = client.result(job)
    assert settled.result == honest and settled.answer.text == "The capital of France is Paris."
    slashes = [e for e in client.history(job) if isinstance(e, ProviderSlashed)]
    assert [(e.provider, e.reason) for e in slashes] == [(liar.address, Fault.LOST_CHALLENGE)]
    after = client.balances()
    # The bond came back, and the liar's slash compensates the challenger.
    assert bond > 0 and after.deposited >= before.deposited
    assert after.stake_credits > before.stake_credits


def test_a_chat_input_no_provider_can_answer_is_refused_by_every_agent(cluster):
    """Posted past the SDK (the contract takes any bytes): every agent refuses it, none
    crashes, and the client learns why from the chain."""
    market, client = cluster.market, cluster.client
    bad = ChatRequest(messages=[{"role": "user", "content": QUESTION}], max_tokens=4).encode().replace(b",", b", ")
    client.deposit(market.job_price(1, REWARD, 1))
    call = market.build_post_job(cluster.model_ids[1], bad, 1, REWARD, *astuple(WINDOWS))
    [job] = [e.job_id for e in client.send(call).of(JobPosted)]

    def refused() -> bool:
        records = [agent.job(job) for agent in cluster.agents]
        return all(r is not None and r.state is JobState.REFUSED for r in records)

    cluster.wait(refused, "every agent's refusal")
    assert market.job(job).nclaimed == 0 and all(agent.alive for agent in cluster.agents)
    [reason] = client.why(job).reasons
    assert "no honest provider can answer its input" in reason and "canonical form" in reason
