"""Automatic auditing on anvil, with two provider agents and a liar outside them (an r = 1
provider delivering wrong bytes through the SDK's claim/deliver calls):

- through the gateway (`verinfer serve --audit 0`, requests asking `verinfer.audit = 1`):
  an honest delivery is re-executed and matches (no challenge); a lie is answered, then
  detected, challenged with the bond and followed to settlement: the drawn agents
  re-execute, the liar is slashed, the audit log says won, and the gateway's balance
  shows the refund, the bond's return and the slash share;
- the edge cases, by an auditor in this process: a mismatch too close to the end of its
  window, a bond the account cannot pay, a job someone else already challenged, an input
  the engine refuses; and a pending audit left in the log resumes at start.
"""

import asyncio
import contextlib
import signal
import threading
import time

import httpx
import openai
import pytest

from client import Client
from client.events import JobChallenged, JobPosted, ProviderSlashed, ResultRevealed
from client.protocol import Fault, JobStatus, result_digest
from gateway.audit import Auditor
from gateway.audit_log import AuditLog, AuditRecord, log_path
from gateway.config import GatewayConfig
from gateway.service import Answer, Batcher, Market
from tests.e2e.cluster import CLIENT, REWARD, WINDOWS
from tests.support.anvil import funded_account
from tests.gateway.conftest import GatewayProcess, audit_of
from tests.support.market import transact

pytestmark = pytest.mark.anvil

MODEL = "all-MiniLM-L6-v2"
LIAR, OTHER, BROKE = 8, 6, 7  # test accounts that are no agent: a lying provider, another client, no tokens
LIE_STAKE = 9 * 10**17  # collateral for many r = 1 jobs, under the draw minimum: never drawn to re-execute
SETTLE_TIMEOUT = 400


@pytest.fixture(scope="module")
def liar(cluster):
    account = funded_account(LIAR)
    w3, market = cluster.w3, cluster.market
    transact(w3, cluster.owner, cluster.token.build_mint(account.address, LIE_STAKE))
    transact(w3, account, cluster.token.build_approve(market.address, LIE_STAKE))
    transact(w3, account, market.build_register([cluster.engine.model_id], 0))
    transact(w3, account, market.build_stake(LIE_STAKE))
    return account


@pytest.fixture(scope="module")
def audit_gateway(cluster, api_keys, keys_file, tmp_path_factory):
    process = GatewayProcess(cluster, tmp_path_factory.mktemp("audit-gateway"), keys_file, "--audit", "0",
                             "--batch-window", "0.1")
    yield process
    process.stop()
    assert process.proc.returncode == 0, process.log.read_text()[-3000:]


@contextlib.contextmanager
def agents_paused(cluster):
    """The agents stopped (SIGSTOP), so that the liar is first to the jobs posted meanwhile."""
    for agent in cluster.agents:
        agent.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for agent in cluster.agents:
            agent.signal(signal.SIGCONT)


def lie_about(cluster, liar, job_id: int) -> bytes:
    """The liar claims the job and delivers the honest bytes with one bit flipped."""
    [honest] = cluster.engine.embed([cluster.texts[job_id]])
    lie = honest[:-1] + bytes([honest[-1] ^ 1])
    transact(cluster.w3, liar, cluster.market.build_claim_many([job_id]))
    receipt = transact(cluster.w3, liar, cluster.market.build_deliver_many([job_id], [lie]))
    # Delivered (deliver_many skips what fails): its receipt says so. The job's status
    # may be CHALLENGED already: the gateway audits as soon as the delivery is mined.
    assert [(e.job_id, e.provider) for e in cluster.market.decode_receipt(receipt)
            if isinstance(e, ResultRevealed)] == [(job_id, liar.address)]
    return lie


def embed(gateway, key: str, text: str, audit: float | None = 1.0):
    client = openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0)
    body = {} if audit is None else {"extra_body": {"verinfer": {"audit": audit}}}
    return client.embeddings.create(model=MODEL, input=text, **body).data[0].model_extra["verinfer"]


def test_an_honest_delivery_audited_matches_and_nothing_is_challenged(audit_gateway, api_keys, cluster):
    proof = embed(audit_gateway, api_keys["app"], "The cat sat on the mat.")
    assert proof["r"] == 1 and proof["status"] == "delivered" and proof["audit"] == "pending"
    answer = audit_of(audit_gateway, api_keys["app"], proof["job_id"])
    [record] = answer["data"]
    assert (record["outcome"], record["challenger"]) == ("match", None)
    assert record["ours"] == record["delivered"] == proof["digest"]
    assert answer["counters"]["audited"] == 1 and answer["counters"]["mismatched"] == 0
    assert not any(isinstance(e, JobChallenged) for e in cluster.client.history(proof["job_id"]))

    # Not asked for (the gateway's default here is 0): not audited, not in the log.
    plain = embed(audit_gateway, api_keys["app"], "A dog runs in the park.", audit=None)
    assert plain["audit"] is None
    listed = httpx.get(f"{audit_gateway.url}/audit", params={"job": plain["job_id"]},
                       headers={"Authorization": f"Bearer {api_keys['app']}"}).json()
    assert listed["data"] == []


def test_a_lie_is_challenged_won_and_the_refund_and_compensation_credited(audit_gateway, api_keys, cluster, liar):
    client, market = cluster.client, cluster.market
    gateway_account = funded_account(CLIENT).address
    before = client.balances()
    start = cluster.w3.eth.block_number + 1
    answers: list = []
    text = "The liar answers this one."
    with agents_paused(cluster):
        asking = threading.Thread(target=lambda: answers.append(embed(audit_gateway, api_keys["app"], text)))
        asking.start()
        give_up = time.monotonic() + 60
        while not (posts := [e for e in market.get_events(start, events=["JobPosted"])
                             if isinstance(e, JobPosted) and e.client == gateway_account]):
            assert time.monotonic() < give_up, "the gateway posted nothing"
            time.sleep(0.2)
        [post] = posts
        cluster.texts[post.job_id] = text
        lie = lie_about(cluster, liar, post.job_id)
        asking.join(60)
    [proof] = answers
    # The answer went out as delivered (the lie: its digest), flagged for an audit.
    assert proof["job_id"] == post.job_id and proof["digest"] == "0x" + result_digest(lie).hex()
    assert proof["providers"] == [liar.address] and proof["audit"] == "pending"

    answer = audit_of(audit_gateway, api_keys["app"], post.job_id)
    [record] = answer["data"]
    assert record["outcome"] == "won", record
    assert record["challenger"] == gateway_account and record["challenge_tx"].startswith("0x")
    [honest] = cluster.engine.embed([text])
    assert record["ours"] == "0x" + result_digest(honest).hex() != record["delivered"]
    counters = answer["counters"]
    assert (counters["audited"], counters["mismatched"], counters["challenged"], counters["won"]) == (1, 1, 1, 1)

    # The chain settled on the honest bytes, against the liar.
    info = client.job(post.job_id)
    assert info.status == JobStatus.FINALIZED and info.result_digest == result_digest(honest)
    slashes = [e for e in client.history(post.job_id) if isinstance(e, ProviderSlashed)]
    assert [(e.provider, e.reason) for e in slashes] == [(liar.address, Fault.LOST_CHALLENGE)]
    # The gateway's account: the escrow refunded, the bond back less the round's pay,
    # the slash share in stake credits.
    price, bond = market.job_price(1, REWARD, 1), int(record["bond"])
    refund, bond_back, share = int(record["refund"]), int(record["bond_returned"]), int(record["compensation"])
    assert refund == price and bond == market.challenge_bond(post.job_id) and 0 < bond_back < bond and share > 0
    after = client.balances()
    assert after.deposited - before.deposited == refund + bond_back - price - bond
    assert after.stake_credits - before.stake_credits == share


# ------------------------------------------------------------ edge cases, in this process


@pytest.fixture(scope="module")
def other(cluster):
    """Another client (posts and challenges the edge cases' jobs)."""
    account = funded_account(OTHER)
    transact(cluster.w3, cluster.owner, cluster.token.build_mint(account.address, 10**21))
    client = Client.connect(rpc=cluster.anvil.url, private_key=cluster.key(OTHER),
                            marketplace=cluster.market.address, poll_interval=0.1)
    client.deposit(10**21)
    yield client
    client.close()


def lied_job(cluster, other, liar, text: str) -> tuple[int, bytes]:
    with agents_paused(cluster):
        job_id = other.post(text, reward=REWARD, r=1, deadlines=WINDOWS)
        cluster.texts[job_id] = text
        return job_id, lie_about(cluster, liar, job_id)


def audited(cluster, tmp_path, answers_inputs, **config) -> AuditLog:
    """Run an auditor of the BROKE account (it holds no tokens) in this process on the
    given (answer, input) pairs, until its audits are done; its log."""
    client = Client.connect(rpc=cluster.anvil.url, private_key=cluster.key(BROKE),
                            marketplace=cluster.market.address, poll_interval=0.1)
    settings = GatewayConfig(reward=REWARD, data_dir=tmp_path, **config)

    async def run() -> AuditLog:
        batcher = Batcher(Market(client, settings), settings)
        auditor = Auditor(client, batcher, settings, engine=cluster.engine)
        auditor.start()
        try:
            answers, inputs = zip(*answers_inputs) if answers_inputs else ((), ())
            auditor.schedule(list(answers), list(inputs), fraction=1.0, until="result", key=None, from_block=0)
            give_up = time.monotonic() + SETTLE_TIMEOUT
            while auditor.log.unfinished():
                assert time.monotonic() < give_up, auditor.log.unfinished()
                await asyncio.sleep(0.2)
            return auditor.log
        finally:
            await auditor.stop()
            await batcher.stop()

    try:
        return asyncio.run(run())
    finally:
        client.close()


def delivered_answer(cluster, job_id: int) -> Answer:
    result = cluster.client.results([job_id], from_block=cluster.start_block)[job_id]
    return Answer(job_id, 1, result, b"", b"")


def test_mismatches_left_unchallenged_window_closing_bond_unaffordable(cluster, other, liar, tmp_path):
    closing, _ = lied_job(cluster, other, liar, "Too late to challenge this one.")
    poor, _ = lied_job(cluster, other, liar, "Nobody can pay the bond for this one.")
    # The window is 60 s: a 1000 s margin leaves no time to challenge.
    log = audited(cluster, tmp_path / "closing", [(delivered_answer(cluster, closing), cluster.texts[closing].encode())],
                  audit_margin=1000)
    record = log.get(closing)
    assert (record.outcome, record.challenger) == ("mismatch", None) and "window closes in" in record.reason
    log = audited(cluster, tmp_path / "poor", [(delivered_answer(cluster, poor), cluster.texts[poor].encode())],
                  audit_margin=0)
    record = log.get(poor)
    assert record.outcome == "mismatch" and "bond is not affordable" in record.reason
    assert log.counters()["mismatched"] == 1 and log.counters()["challenged"] == 0
    for job_id in (closing, poor):
        assert cluster.client.job(job_id).status in (JobStatus.DELIVERED, JobStatus.FINALIZED)  # unchallenged


def test_a_job_challenged_by_someone_else_is_followed_not_challenged_again(cluster, other, liar, tmp_path):
    job_id, _ = lied_job(cluster, other, liar, "Someone else challenges this one.")
    answer = delivered_answer(cluster, job_id)
    other.challenge(job_id)
    log = audited(cluster, tmp_path, [(answer, cluster.texts[job_id].encode())], audit_margin=0)
    record = log.get(job_id)
    assert record.outcome == "won" and record.challenger == other.address
    assert "already challenged by" in record.reason and record.bond is None
    assert log.counters(account=funded_account(BROKE).address)["challenged"] == 0
    challenges = [e for e in cluster.client.history(job_id) if isinstance(e, JobChallenged)]
    assert [e.challenger for e in challenges] == [other.address]
    assert cluster.client.job(job_id).status == JobStatus.FINALIZED


def test_an_input_the_engine_refuses_is_recorded_not_judged(cluster, other, tmp_path):
    [job_id] = other.post_many(["An honest job."], reward=REWARD, r=1, deadlines=WINDOWS)
    other.wait([job_id], timeout=120)
    # As if the gateway had posted bytes the engine cannot read (not UTF-8).
    log = audited(cluster, tmp_path, [(delivered_answer(cluster, job_id), b"\xff\xfe not text")])
    record = log.get(job_id)
    assert record.outcome == "refused" and "InvalidUtf8Error" in record.reason and record.ours is None
    assert log.counters()["audited"] == 0 and log.counters()["refused"] == 1


def test_a_pending_audit_left_in_the_log_resumes_at_start(cluster, other, tmp_path):
    """A gateway stopped between answering and re-executing: the next start reads the
    job's input back from the chain and finishes the audit."""
    [job_id] = other.post_many(["Audited after a restart."], reward=REWARD, r=1, deadlines=WINDOWS)
    other.wait([job_id], timeout=120)
    digest = other.job(job_id).result_digest
    client = Client.connect(rpc=cluster.anvil.url, private_key=cluster.key(BROKE),
                            marketplace=cluster.market.address)
    path = log_path(tmp_path, cluster.w3.eth.chain_id, cluster.market.address)
    client.close()
    AuditLog(path).put(AuditRecord(job_id=job_id, delivered="0x" + digest.hex(), from_block=cluster.start_block))
    log = audited(cluster, tmp_path, [])
    record = log.get(job_id)
    assert record.outcome == "match" and record.ours == "0x" + digest.hex()
