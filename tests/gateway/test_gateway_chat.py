"""`POST /v1/chat/completions` through the official `openai` client against `verinfer
serve` on anvil, three agents serving MiniLM and the integer LLM: verified answers equal
to the local LLM's bytes, greedy, sampled from a seed and streamed; chat and embedding
requests sent to the other kind of model, and unsupported fields, refused as OpenAI
errors."""

import openai
import pytest

from client.chat import ChatAnswer, ChatRequest
from gateway.audit_log import AuditLog, log_path
from gateway.keys import KeyStore
from tests.e2e.cluster import Cluster
from tests.gateway.conftest import GatewayProcess, audit_of

pytestmark = pytest.mark.anvil

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def chat_cluster(engine, chat_runner, tmp_path_factory):
    """A cluster whose agents serve both models."""
    cluster = Cluster(tmp_path_factory.mktemp("chat-cluster"), engine, chat=chat_runner)
    try:
        cluster.start_agents(timeout=400)
        yield cluster
    finally:
        cluster.stop()


def start_gateway(cluster, workdir, *args) -> GatewayProcess:
    secret = KeyStore(workdir / "keys.json").create("app")[1]
    gateway = GatewayProcess(cluster, workdir, workdir / "keys.json", "--no-explorer", *args)
    gateway.secret = secret
    return gateway


@pytest.fixture(scope="module")
def served(chat_cluster, chat_runner, tmp_path_factory):
    """(gateway, chat model name)."""
    gateway = start_gateway(chat_cluster, tmp_path_factory.mktemp("chat-gateway"))
    yield gateway, chat_runner.engine.model_info.name
    gateway.stop()
    assert gateway.proc.returncode == 0, gateway.log.read_text()[-3000:]


def api(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=gateway.secret, timeout=300, max_retries=0)


def local(chat_runner, **fields) -> ChatAnswer:
    return ChatAnswer.decode(chat_runner.run([ChatRequest(**fields).encode()])[0])


def test_a_greedy_answer_is_the_local_llms(served, chat_runner):
    gateway, model = served
    reply = api(gateway).chat.completions.create(model=model, messages=FRANCE, max_tokens=24)
    [choice] = reply.choices
    assert choice.message.content == "The capital of France is Paris." and choice.finish_reason == "stop"
    extension = reply.model_extra["verinfer"]
    assert extension["token_ids"] == list(local(chat_runner, messages=FRANCE, max_tokens=24).ids)
    assert extension["status"] == "delivered" and extension["r"] == 1
    assert reply.usage.completion_tokens == len(extension["token_ids"])


def test_a_sampled_answer_replays_from_its_seed_and_streams_at_r3(served, chat_runner):
    gateway, model = served
    ask = [{"role": "user", "content": "Name three colours."}]
    stream = api(gateway).chat.completions.create(
        model=model, messages=ask, max_tokens=12, temperature=0.9, top_p=0.95, seed=7, stream=True,
        extra_body={"verinfer": {"r": 3, "top_k": 40}})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    want = local(chat_runner, messages=ask, max_tokens=12, temperature_milli=900, top_p_micro=950_000, seed=7, top_k=40)
    assert text == want.text and chunks[-1].choices[0].finish_reason in ("stop", "length")
    extension = chunks[-1].model_extra["verinfer"]
    assert extension["token_ids"] == list(want.ids) and extension["r"] == 3 and extension["final"] is True
    assert extension["seed"] == "7" and extension["top_k"] == 40


def test_requests_for_the_other_kind_of_model_or_unsupported_fields_are_refused(served):
    gateway, model = served
    client = api(gateway)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="all-MiniLM-L6-v2", messages=FRANCE)
    assert caught.value.response.json()["error"]["code"] == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=model, input="hello")
    assert caught.value.response.json()["error"]["code"] == "wrong_model_kind"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=FRANCE, n=2)
    assert caught.value.response.json()["error"]["param"] == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=FRANCE, max_tokens=10_000)
    assert caught.value.response.json()["error"]["param"] == "max_tokens"


def test_a_gateway_stopped_while_its_audit_engine_works_exits_and_resumes_the_audit(chat_cluster, chat_runner,
                                                                                  tmp_path):
    """SIGTERM right after an audited answer, the LLM still loading in the gateway's audit
    thread: the gateway exits at once (not after the load and the generation) with
    status 0, the audit pending in its log; started again, it finishes the audit."""
    model = chat_runner.engine.model_info.name
    gateway = start_gateway(chat_cluster, tmp_path)
    reply = api(gateway).chat.completions.create(model=model, messages=FRANCE, max_tokens=8,
                                                 extra_body={"verinfer": {"audit": 1.0}})
    extension = reply.model_extra["verinfer"]
    assert extension["audit"] == "pending" and extension["r"] == 1
    gateway.stop()  # SIGTERM, then SIGKILL after 10 s
    assert gateway.proc.returncode == 0, gateway.log.read_text()[-3000:]
    assert "the audit engine is still working: exiting without it" in gateway.log.read_text()
    path = log_path(tmp_path / "data", chat_cluster.w3.eth.chain_id, chat_cluster.market.address)
    assert [(r.job_id, r.state) for r in AuditLog(path).unfinished()] == [(extension["job_id"], "pending")]

    again = GatewayProcess(chat_cluster, tmp_path, tmp_path / "keys.json", "--no-explorer")
    try:
        record = audit_of(again, gateway.secret, extension["job_id"])["data"][0]
        assert record["outcome"] == "match" and record["ours"] == extension["digest"]
    finally:
        again.stop()
    assert again.proc.returncode == 0, again.log.read_text()[-3000:]
