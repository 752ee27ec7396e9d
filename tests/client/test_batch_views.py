"""Batched views (``call_many``, ``jobs``, ``providers``): the same answers as one call
each, read at one block; over HTTP in JSON-RPC batches, on the embedded chain one by one."""
from __future__ import annotations

import pytest
from eth_utils import keccak
from sdk_helpers import MODEL, REWARD, WINDOWS, draw, seated

import client.contract as contract_module
from client.errors import JobNotFound
from client.marketplace import Marketplace, Token
from client.protocol import JobStatus
from tests.support.anvil import funded_account
from tests.support.market import deploy, transact


def test_jobs_and_providers_equal_single_views_on_the_embedded_chain(client, bots, sdk_market, chain):
    ids = client.post_many([b"one", b"two", b"three"], reward=REWARD, r=2, model_id=MODEL.model_id,
                           deadlines=WINDOWS)
    [holder, _] = seated(bots, draw(chain, sdk_market, ids[1], client.signer))
    holder.send(sdk_market.build_claim(ids[1]))
    assert sdk_market.jobs(ids) == [sdk_market.job(j) for j in ids]
    assert [i.nclaimed for i in sdk_market.jobs(ids)] == [0, 1, 0]
    seats = sdk_market.round_seats(ids[1])
    assert [(s, seat.claimed) for s, seat in seats.items()] == [(0, True), (1, False)]
    assert seats[0] == sdk_market.seat(ids[1], 0) and seats[0].provider == holder.address
    accounts = [b.address for b in bots]
    assert sdk_market.providers(accounts) == [sdk_market.provider(a) for a in accounts]
    assert sdk_market.draw_weights(accounts) == {a: sdk_market.draw_weight(a) for a in accounts}
    assert set(accounts) <= sdk_market.provider_accounts()
    assert sdk_market.jobs([]) == [] and sdk_market.call_many([]) == []
    with pytest.raises(JobNotFound):
        sdk_market.jobs([ids[0], 10**9])


@pytest.fixture(scope="module")
def http_market(node):
    """A marketplace on anvil with 7 jobs posted (r = 1), one of them delivered."""
    w3, owner, user = node.w3(), funded_account(8), funded_account(1)
    token = Token(w3, deploy(w3, owner, "TestToken", "Verinfer Test", "VIT"))
    market = Marketplace(w3, deploy(w3, owner, "Marketplace", token.address, token.address, owner.address))
    model = keccak(text="batch-views-model")
    transact(w3, owner, market.build("register_model", model, "batch-model", bytes(32), 1))
    transact(w3, owner, token.build_mint(user.address, 10**24))
    transact(w3, user, token.build_approve(market.address, 10**24))
    transact(w3, user, market.build_register([model], REWARD))
    transact(w3, user, market.build_stake(10**21))
    receipt = transact(w3, user, market.build_post_jobs(model, [b"job %d" % i for i in range(7)], 1, REWARD,
                                                        600, 600, 600))
    ids = [e.job_id for e in market.decode_receipt(receipt) if hasattr(e, "input")]
    return market, user.address, ids


class CountingBatches:
    """Wraps a provider's make_batch_request to count round trips and calls."""

    def __init__(self, provider):
        self.inner, self.round_trips, self.calls = provider.make_batch_request, 0, 0

    def __call__(self, requests):
        self.round_trips += 1
        self.calls += len(requests)
        return self.inner(requests)


def test_jobs_over_http_come_in_json_rpc_batches_at_one_block(http_market, monkeypatch):
    market, user, ids = http_market
    counter = CountingBatches(market.w3.provider)
    monkeypatch.setattr(market.w3.provider, "make_batch_request", counter)
    monkeypatch.setattr(contract_module, "BATCH_CALLS", 3)
    before = market.w3.eth.block_number
    single = [market.job(j) for j in ids]
    assert market.jobs(ids) == single
    assert (counter.round_trips, counter.calls) == (2, 6)  # 3 + 3, and the last one alone

    result = bytes(range(1, 65))
    transact(market.w3, funded_account(1), market.build_claim(ids[2]))  # r = 1: claim, deliver a block later
    transact(market.w3, funded_account(1), market.build_deliver(ids[2], result))
    assert market.jobs(ids[:3])[2].status is JobStatus.DELIVERED
    assert market.jobs(ids[:3], block=before) == single[:3]  # a pinned block reads the past
    [me] = market.providers([user])
    assert me == market.provider(user) and me.registered and me.locked > 0
    assert market.provider_accounts() == {user}


def test_a_revert_inside_a_batch_or_alone_raises_its_named_error(http_market):
    market, _, ids = http_market
    with pytest.raises(JobNotFound, match="jobs: unknown job"):
        market.jobs([ids[0], 10**9, ids[1]])
    with pytest.raises(JobNotFound, match="jobs: unknown job"):
        market.job(10**9)


def test_a_node_refusing_batches_is_read_one_by_one(http_market, monkeypatch):
    market, user, ids = http_market
    refusals = []

    def refuse(requests):
        refusals.append(len(requests))
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch requests disabled"}}

    monkeypatch.setattr(market.w3.provider, "make_batch_request", refuse)
    assert market.jobs(ids) == [market.job(j) for j in ids]
    assert refusals == [len(ids)]
