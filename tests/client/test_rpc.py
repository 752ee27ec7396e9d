"""The plain-RPC way in (URL + private key), SDK and CLI, against a real anvil node."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from eth_utils import keccak

from client import Client
from client.cli import main
from client.errors import InvalidArgument, JobNotFound, ResultUnavailable
from client.events import SeatDrawn
from client.protocol import JobStatus
from tests.support.anvil import ANVIL_KEYS, funded_account
from tests.support.market import deploy_market, transact

pytestmark = pytest.mark.anvil

MODEL_ID = keccak(text="verinfer-rpc-test-model")


@pytest.fixture(scope="module")
def market(node) -> str:
    w3, owner = node.w3(), funded_account(8)
    _, market, token = deploy_market(w3, owner, MODEL_ID, model_name="rpc-model")
    transact(w3, owner, token.build_mint(funded_account(1).address, 10**21))
    return market.address


def test_client_over_rpc(node, market):
    with Client.connect(rpc=node.url, private_key=ANVIL_KEYS[1], marketplace=market) as client:
        assert client.model().name == "rpc-model"
        [job] = client.post_texts(["over http"], reward=10**15, r=2)
        assert client.job(job).status == JobStatus.OPEN
        assert client.cancel(job).client_refund == client.estimate(reward=10**15, r=2).total
        with pytest.raises(InvalidArgument, match="jobs: window too short"):  # a node's revert data, mapped
            client.send(client.marketplace.build_post_job(MODEL_ID, b"x", 1, 1, 0, 1, 1))


def test_results_over_rpc_refuse_jobs_without_one(node, market):
    """Client.results reads the views in one batch here: the same errors as one by one."""
    with Client.connect(rpc=node.url, private_key=ANVIL_KEYS[1], marketplace=market) as client:
        first, second = client.post_texts(["no result yet", "nor here"], reward=10**15, r=1)
        with pytest.raises(ResultUnavailable, match=rf"{first}: 'OPEN', {second}: 'OPEN'"):
            client.results([first, second])
        with pytest.raises(JobNotFound):
            client.results([first, 10**9])


def test_cli_over_rpc(node, market):
    result = CliRunner().invoke(main, ["--rpc", node.url, "--marketplace", market, "models"],
                                env={"VERINFER_PRIVATE_KEY": ANVIL_KEYS[1]})
    assert result.exit_code == 0 and "rpc-model" in result.output, result.output


def test_http_connections_read_proxy_settings_once(monkeypatch, node):
    """The environment's proxies apply as requests would apply them (NO_PROXY included),
    read when connecting rather than on every request; without one, requests go over
    kept-alive connections of our own."""
    from client.transport import KeepAlive, http_web3

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    proxied = http_web3("http://rpc.example:8545", 5).provider._request_session_manager  # noqa: SLF001
    assert proxied._explicit_session.proxies.get("http") == "http://proxy.invalid:3128"  # noqa: SLF001
    local = http_web3(node.url, 5)
    assert isinstance(local.provider._request_session_manager, KeepAlive)  # noqa: SLF001
    monkeypatch.setenv("NO_PROXY", "")  # changed after connecting: the node is still reached directly
    assert local.eth.block_number >= 0


def test_a_draw_right_after_the_post_is_estimated_in_the_pending_block(node, market):
    """anvil simulates eth_estimateGas at "latest" in the latest block: right after a post
    that is the post's block, where a claim cannot draw ("jobs: draw not ready", ~37k gas)
    while the mined claim draws every seat (~150k). The Signer estimates in "pending"."""
    w3, provider = node.w3(), funded_account(2)
    token = Client.connect(rpc=node.url, marketplace=market).pay_token()
    sdk = Client.connect(rpc=node.url, marketplace=market).marketplace
    transact(w3, funded_account(8), token.build_mint(provider.address, 10**21))
    transact(w3, provider, token.build_approve(market, 10**21))
    transact(w3, provider, sdk.build_register([MODEL_ID], 1))
    transact(w3, provider, sdk.build_stake(10**20))
    with Client.connect(rpc=node.url, private_key=ANVIL_KEYS[1], marketplace=market) as client:
        [job] = client.post_texts(["drawn at once"], reward=10**15, r=3)
        drawn = client.send(client.marketplace.build_claim_many([job])).of(SeatDrawn)  # the client draws
        assert [(e.seat, e.provider) for e in drawn] == [(s, provider.address) for s in range(3)]
