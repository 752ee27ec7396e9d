"""The official `openai` client against `python -m gateway serve` on anvil, with two
provider agents serving the jobs: verified embeddings bit for bit equal to the local
engine's, concurrent requests sharing posts, policy per request, and OpenAI-shaped
errors with the right status codes."""

import base64
import threading

import httpx
import numpy as np
import openai
import pytest
from eth_utils import keccak

from bench.gas_steps import gas_by_step
from client.encoding import decode_embedding
from client.protocol import MAX_BATCH, MAX_INPUT
from tests.e2e.cluster import CLIENT, REWARD

pytestmark = pytest.mark.anvil

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["A man is playing a guitar.", "Someone performs music on a guitar.", "The bank raised interest rates."]


def api(gateway, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key=key or "none")


def engine_vectors(engine, texts: list[str]) -> tuple[list[bytes], np.ndarray]:
    results = engine.embed(texts)
    return results, np.stack([decode_embedding(r) for r in results])


def error_of(exc: openai.APIStatusError) -> dict:
    return exc.response.json()["error"]


def test_models_are_listed_with_their_price(gateway, api_keys, cluster, engine):
    models = api(gateway, api_keys["app"]).models.list().data
    [model] = models
    assert model.id == MODEL
    extra = model.model_extra["verinfer"]
    assert extra["model_id"] == "0x" + engine.model_id.hex() and extra["active"]
    price = extra["price"]
    assert price["r"] == 1 and int(price["reward"]) == REWARD
    assert int(price["per_input"]) == cluster.market.job_price(1, REWARD, 1)
    assert price["providers"] == 2 and price["enough_providers"]
    assert price["token"]["decimals"] == 18
    assert api(gateway, api_keys["app"]).models.retrieve(MODEL).id == MODEL


def test_embeddings_equal_the_local_engines_bytes(gateway, api_keys, engine):
    client = api(gateway, api_keys["app"])
    results, expected = engine_vectors(engine, TEXTS)
    # The openai client asks for base64 by default and decodes it to floats.
    default = client.embeddings.create(model=MODEL, input=TEXTS)
    floats = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    b64 = client.embeddings.create(model=MODEL, input=TEXTS[:2], encoding_format="base64")

    got = np.array([item.embedding for item in default.data], dtype=np.float32)
    assert got.tobytes() == expected.tobytes()
    assert np.array(floats.data[0].embedding, dtype=np.float32).tobytes() == expected[0].tobytes()
    assert [base64.b64decode(item.embedding) for item in b64.data] == [v.tobytes() for v in expected[:2]]
    assert [item.index for item in default.data] == [0, 1, 2] and default.model == MODEL

    for item, result in zip(default.data, results):
        proof = item.model_extra["verinfer"]
        assert base64.b64decode(proof["result"]) == result
        assert proof["digest"] == "0x" + keccak(result).hex()
        assert proof["r"] == 1 and proof["status"] == "delivered" and not proof["final"]
        assert len(proof["providers"]) == 1
        assert proof["transaction"].startswith("0x") and len(proof["transaction"]) == 66
        assert len(proof["result_transaction"]) == 66


def test_concurrent_requests_share_post_transactions(gateway, api_keys, cluster, engine):
    texts = [f"Sentence number {i} about the weather." for i in range(12)]
    _, expected = engine_vectors(engine, texts)
    start = cluster.w3.eth.block_number + 1
    answers: dict[int, openai.types.CreateEmbeddingResponse] = {}

    def ask(i: int) -> None:
        answers[i] = api(gateway, api_keys["app"]).embeddings.create(model=MODEL, input=texts[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(answers) == list(range(len(texts)))
    for i, answer in answers.items():
        assert np.array(answer.data[0].embedding, dtype=np.float32).tobytes() == expected[i].tobytes()
    posts = {answer.data[0].model_extra["verinfer"]["transaction"] for answer in answers.values()}
    steps = gas_by_step(cluster.market, start)
    sent = sum(steps[f].txs for f in ("post_job", "post_jobs") if f in steps)
    assert sent == len(posts) < len(texts), f"{len(texts)} requests took {sent} post transactions"
    assert sum(steps[f].items for f in ("post_job", "post_jobs") if f in steps) == len(texts)


def test_policy_per_request_r3_settled(gateway, api_keys, engine):
    [result], expected = engine_vectors(engine, [TEXTS[2]])
    answer = api(gateway, api_keys["app"]).embeddings.create(
        model=MODEL, input=[TEXTS[2]], extra_body={"verinfer": {"r": 3, "until": "settled"}})
    proof = answer.data[0].model_extra["verinfer"]
    assert proof["r"] == 3 and proof["status"] == "finalized" and proof["final"]
    assert base64.b64decode(proof["result"]) == result
    assert np.array(answer.data[0].embedding, dtype=np.float32).tobytes() == expected[0].tobytes()
    assert answer.model_extra["verinfer"]["r"] == 3


def test_policy_per_key_and_the_request_over_it(gateway, api_keys):
    client = api(gateway, api_keys["majority"])
    by_key = client.embeddings.create(model=MODEL, input=TEXTS[1]).data[0].model_extra["verinfer"]
    assert (by_key["r"], by_key["status"]) == (3, "finalized")
    by_request = client.embeddings.create(model=MODEL, input=TEXTS[1], extra_body={"verinfer": {"r": 1, "until": "result"}})
    assert (by_request.data[0].model_extra["verinfer"]["r"], by_request.model_extra["verinfer"]["until"]) == (1, "result")
    assert by_key["digest"] == by_request.data[0].model_extra["verinfer"]["digest"]  # same bytes, r = 1 or 3


def test_bad_requests_get_openai_errors(gateway, api_keys):
    client = api(gateway, api_keys["app"])
    with pytest.raises(openai.NotFoundError) as unknown:
        client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert error_of(unknown.value)["code"] == "model_not_found" and error_of(unknown.value)["param"] == "model"

    with pytest.raises(openai.BadRequestError) as oversize:
        client.embeddings.create(model=MODEL, input=["fine", "x" * (MAX_INPUT + 1)])
    assert error_of(oversize.value)["code"] == "input_too_large"

    with pytest.raises(openai.BadRequestError) as too_many:
        client.embeddings.create(model=MODEL, input=["a sentence"] * (MAX_BATCH + 1))
    assert error_of(too_many.value)["code"] == "too_many_inputs"

    with pytest.raises(openai.BadRequestError) as tokens:
        client.embeddings.create(model=MODEL, input=[[101, 2023, 102]])
    assert error_of(tokens.value)["param"] == "input"

    with pytest.raises(openai.BadRequestError) as bad_r:
        client.embeddings.create(model=MODEL, input="hi", extra_body={"verinfer": {"r": 0}})
    assert error_of(bad_r.value)["param"] == "verinfer.r"

    with pytest.raises(openai.BadRequestError) as blank:
        client.embeddings.create(model=MODEL, input="\u200b\u200b")
    assert error_of(blank.value)["code"] == "invalid_input"

    headers = {"Authorization": f"Bearer {api_keys['app']}"}
    huge = httpx.post(f"{gateway.url}/embeddings", headers=headers, content=b" " * 1_000_000)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(100):
            yield b" " * 10_000

    streamed = httpx.post(f"{gateway.url}/embeddings", headers=headers, content=chunks())
    assert streamed.status_code == 413
    assert huge.headers["x-should-retry"] == "false"


def test_wrong_or_missing_key_is_refused(gateway, api_keys):
    with pytest.raises(openai.AuthenticationError) as wrong:
        api(gateway, api_keys["app"] + "x").embeddings.create(model=MODEL, input="hi")
    assert error_of(wrong.value)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        api(gateway, None).models.list()
    assert httpx.get(f"{gateway.url}/models").status_code == 401


def test_spending_limit(gateway, api_keys, cluster, keys_file):
    client = api(gateway, api_keys["tight"])
    with pytest.raises(openai.RateLimitError) as two:  # two jobs cost more than its limit
        client.embeddings.create(model=MODEL, input=["first text", "second text"])
    assert error_of(two.value)["code"] == "insufficient_quota"
    assert two.value.response.headers["x-should-retry"] == "false"
    client.embeddings.create(model=MODEL, input="first text")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=MODEL, input="second text")
    from gateway.keys import KeyStore

    [tight] = [k for k in KeyStore(keys_file).records() if k.name == "tight"]
    assert tight.spent == tight.spend_limit == cluster.market.job_price(1, REWARD, 1)


def test_no_private_key_in_responses_or_logs(gateway, api_keys, cluster):
    key = cluster.key(CLIENT).removeprefix("0x").lower()
    answers = [httpx.get(f"{gateway.url}/models", headers={"Authorization": f"Bearer {api_keys['app']}"}).text,
               httpx.get(f"{gateway.url.removesuffix('/v1')}/healthz").text,
               httpx.post(f"{gateway.url}/embeddings", json={"model": MODEL, "input": 5},
                          headers={"Authorization": f"Bearer {api_keys['app']}"}).text]
    logs = gateway.log.read_text() + gateway.out.read_text()
    assert "POST /v1/embeddings" in logs  # the access log is there
    for text in [*answers, logs]:
        assert key not in text.lower()
    for secret in api_keys.values():
        assert secret not in logs
