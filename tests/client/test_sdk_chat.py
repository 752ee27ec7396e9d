"""Chat jobs through the SDK and the CLI on the embedded chain: a chat model registered
beside the embedding model, requests routed by kind, refused before sending when no
provider could answer them, and the real LLM's answer verified and decoded."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sdk_helpers import MODEL, PRICE, WINDOWS

from client.chat import CHAT_FORMAT, ChatRequest
from client.cli import main
from client.errors import InvalidInput
from client.protocol import JobStatus
from scripts.deploy import ModelEntry

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def chat_model(chat_runner, deployed, owner, bots, sdk_market) -> ModelEntry:
    """The LLM registered (by the owner, as scripts/deploy.py does) and served by the bots."""
    info = chat_runner.engine.model_info
    entry = ModelEntry(info.model_id, info.name, info.weights_digest, info.format_version)
    deployed.marketplace.register_model(entry.model_id, entry.name, entry.weights_digest,
                                        entry.format_version, sender=owner)
    for bot in bots:
        bot.send(sdk_market.build_update_provider([MODEL.model_id, entry.model_id], PRICE))
    return entry


def test_a_chat_job_is_answered_verified_and_decoded(client, chat_model, chat_runner, bots):
    assert client.model(format_version=CHAT_FORMAT).name == chat_model.name
    request = ChatRequest(messages=FRANCE, max_tokens=16)
    job = client.post(request, reward=10**15, r=1, deadlines=WINDOWS)
    posted = client.job(job)
    assert posted.model_id == chat_model.model_id  # routed to the chat model by its kind
    [raw] = chat_runner.run([request.encode()])
    bots[0].deliver([job], [raw])
    assert client.wait([job], timeout=30)[job].status == JobStatus.DELIVERED
    answer = client.result(job).answer
    assert answer.text == "The capital of France is Paris." and answer.finish == "stop"
    assert list(answer.ids) == chat_runner.engine.generate(FRANCE, 16)

    # The CLI decodes by the model's format.
    cli = CliRunner().invoke(main, ["--network", "ethereum:local:test", "--account", "TEST::2", "--marketplace",
                                    client.marketplace.address, "result", "--json", str(job)])
    assert cli.exit_code == 0, cli.output
    [record] = json.loads(cli.output)
    assert record["text"] == answer.text and record["token_ids"] == list(answer.ids)


def test_requests_no_provider_could_answer_are_refused_before_sending(client, chat_model, web3):
    nonce = web3.eth.get_transaction_count(client.address)
    chat = ChatRequest(messages=FRANCE)
    with pytest.raises(InvalidInput, match="needs a chat model"):
        client.post(chat, reward=10**15, model_id=MODEL.model_id)
    with pytest.raises(InvalidInput, match="input 0: a chat model takes a ChatRequest, not str"):
        client.post("hello", reward=10**15, model_id=chat_model.model_id)
    with pytest.raises(InvalidInput, match="input 1: chat request not in canonical form"):
        client.post_many([chat.encode(), chat.encode().replace(b",", b", ")], reward=10**15,
                         model_id=chat_model.model_id)
    with pytest.raises(InvalidInput, match="max_tokens"):
        client.chat(FRANCE, reward=10**15, max_tokens=0)
    with pytest.raises(InvalidInput, match="exactly one of messages and prompt"):
        client.chat(FRANCE, prompt="also this", reward=10**15)
    with pytest.raises(InvalidInput, match="at most 2048"):
        client.chat([{"role": "user", "content": "x" * 2000}], reward=10**15, max_tokens=100)
    assert web3.eth.get_transaction_count(client.address) == nonce  # nothing sent


def test_the_default_model_is_chosen_by_kind(client, chat_model, deployed, owner):
    text_job = client.post("an embedding job", reward=10**15, deadlines=WINDOWS)
    assert client.job(text_job).model_id == MODEL.model_id
    # A second chat model makes the chat default ambiguous; the embedding default stands.
    deployed.marketplace.register_model(b"\x07" * 32, "another-chat-model", b"\x01" * 32, CHAT_FORMAT, sender=owner)
    with pytest.raises(InvalidInput, match="2 active models of format_version 2: pass model_id"):
        client.post(ChatRequest(prompt="Once"), reward=10**15)
    assert client.model(format_version=1).model_id == MODEL.model_id


def test_the_cli_refuses_bad_chat_options_before_sending(chat_model, market_address, web3, funded_clients):
    def run(*args):
        return CliRunner().invoke(main, ["--network", "ethereum:local:test", "--account", "TEST::2",
                                         "--marketplace", market_address, "chat", *args])

    nonce = web3.eth.get_transaction_count(funded_clients[0])
    out = run("Hi", "--reward", "0.001", "--temperature", "0.0005")
    assert out.exit_code == 2 and "--temperature" in out.output and "Traceback" not in out.output
    out = run("Hi", "--reward", "0.001", "--raw", "--system", "Be brief.")
    assert out.exit_code == 2 and "--system needs a chat message" in out.output
    out = run("Hi", "--reward", "0.001", "--max-tokens", "9999")
    assert out.exit_code != 0 and "max_tokens" in out.output and "Traceback" not in out.output
    assert web3.eth.get_transaction_count(funded_clients[0]) == nonce
