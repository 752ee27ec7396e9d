"""The explorer's chain follower on anvil: incremental syncs equal one sync from the
deployment block (a restarted gateway), stake and escrow equal the contract's views,
and a reorg that drops blocks rewinds the state to what the new chain holds."""

import pytest
from eth_utils import keccak

from client import Client
from client.protocol import JobStatus
from gateway.explorer_index import ExplorerState
from gateway.explorer_sync import ExplorerSync
from tests.e2e.cluster import CLIENT, FUNDS, OWNER, REWARD, STAKE, WINDOWS
from tests.support.anvil import funded_account, start_anvil
from tests.support.market import deploy_market, transact

pytestmark = pytest.mark.anvil

MODEL = keccak(b"explorer sync model")
PROVIDER = 1


@pytest.fixture
def market_on_anvil():
    anvil = start_anvil()
    try:
        w3 = anvil.w3()
        owner = funded_account(OWNER)
        start_block, market, token = deploy_market(w3, owner, MODEL)
        provider = funded_account(PROVIDER)
        for account in (provider, funded_account(CLIENT)):
            transact(w3, owner, token.build_mint(account.address, FUNDS))
        transact(w3, provider, token.build_approve(market.address, FUNDS))
        transact(w3, provider, market.build_register([MODEL], REWARD))
        transact(w3, provider, market.build_stake(STAKE))
        client = Client.connect(rpc=anvil.url, private_key="0x" + funded_account(CLIENT).key.hex().removeprefix("0x"),
                                marketplace=market.address, poll_interval=0.1)
        with client:
            yield anvil, start_block, market, client, provider
    finally:
        anvil.stop()


def picture(state: ExplorerState) -> tuple:
    return (state.block, state.jobs, state.providers, state.models, state.by_status, state.escrow, state.slashed)


def test_incremental_syncs_equal_a_restart_and_the_contracts_views(market_on_anvil):
    anvil, start_block, market, client, provider = market_on_anvil
    follower = ExplorerSync(market, start_block)
    assert follower.sync()
    assert [m.name for m in follower.state.models.values()] == ["all-MiniLM-L6-v2"]
    assert not follower.sync()  # nothing new

    ids = client.post_many(["one", "two"], reward=REWARD, r=1, model_id=MODEL, deadlines=WINDOWS)
    assert follower.sync()
    ids += client.post_many(["three"], reward=REWARD, r=2, model_id=MODEL, deadlines=WINDOWS)
    transact(market.w3, provider, market.build_request_unbond(STAKE // 4))
    assert follower.sync()

    state = follower.state
    assert list(state.jobs) == ids and state.by_status[JobStatus.OPEN] == 3
    assert state.escrow == sum(info.price for info in market.jobs(ids))
    [row] = state.providers.values()
    chain_view = market.provider(provider.address)
    assert (row.stake, row.unbonding, row.model_ids) == (chain_view.total_stake, chain_view.unbonding, (MODEL,))
    assert row.weight == market.draw_weight(provider.address)

    restarted = ExplorerSync(market, start_block)
    assert restarted.sync()
    assert picture(restarted.state) == picture(state)
    small_steps = ExplorerSync(market, start_block, max_range=2)  # a long catch-up, a few blocks a sync
    while small_steps.sync():
        pass
    assert picture(small_steps.state) == picture(state)


def test_a_reorg_rewinds_to_what_the_new_chain_holds(market_on_anvil):
    anvil, start_block, market, client, provider = market_on_anvil
    follower = ExplorerSync(market, start_block)
    kept = client.post_many(["kept"], reward=REWARD, r=1, model_id=MODEL, deadlines=WINDOWS)
    follower.sync()
    before = picture(follower.state)
    dropped = client.post_many(["dropped"], reward=REWARD, r=1, model_id=MODEL, deadlines=WINDOWS)
    follower.sync()
    assert list(follower.state.jobs) == kept + dropped

    anvil.rpc("anvil_reorg", 1, [])  # the post's block replaced by an empty one
    assert market.w3.eth.get_logs({"fromBlock": follower.state.block, "address": market.address}) == []
    assert follower.sync()
    assert follower.rewinds == 1
    assert list(follower.state.jobs) == kept
    fresh = ExplorerSync(market, start_block)
    fresh.sync()
    assert picture(follower.state) == picture(fresh.state)
    assert picture(follower.state)[1:] == before[1:]  # as before the dropped post, a block later
