"""Audit finding 3: an r = 1 delivery copied from the mempool. On anvil with automine
off, a watcher decodes the provider's pending `deliver` and re-sends its calldata with a
higher tip, as a front-runner on a public chain would. The seat is bound by a claim
mined before the result is visible, so the copy is refused and the provider is paid."""

import pytest
from eth_utils import keccak

from client.events import JobPosted
from tests.support.anvil import funded_account, send_signed, start_anvil
from tests.support.market import deploy_market, transact

MODEL_ID = keccak(text="mempool-copy-model")
TOKEN = 10**18
WINDOW = 600


@pytest.fixture
def chain():
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture
def market(chain):
    """A marketplace on anvil with a client, the honest provider and a copier (staked)."""
    w3 = chain.w3()
    owner, client, provider, copier = (funded_account(i) for i in (0, 2, 4, 5))
    _, market, token = deploy_market(w3, owner, MODEL_ID)
    for account in (client, provider, copier):
        transact(w3, account, token.build_mint(account.address, 10**6 * TOKEN))
        transact(w3, account, token.build_approve(market.address, 2**256 - 1))
    for account in (provider, copier):
        transact(w3, account, market.build("register", [MODEL_ID], 0))
        transact(w3, account, market.build("stake", 1_000 * TOKEN))
    receipt = transact(w3, client, market.build("post_job", MODEL_ID, b"an input", 1, TOKEN, WINDOW, WINDOW, WINDOW))
    (job_id,) = [e.job_id for e in market.decode_receipt(receipt) if isinstance(e, JobPosted)]
    return w3, market, job_id, provider, copier


def _send(w3, account, call, tip_gwei, nonce=None):
    tx = {"to": call.to, "data": call.data, "maxPriorityFeePerGas": tip_gwei * 10**9,
          "maxFeePerGas": 2 * w3.eth.get_block("latest")["baseFeePerGas"] + tip_gwei * 10**9}
    if nonce is not None:
        tx["nonce"] = nonce
    return send_signed(w3, account, tx, wait=False)


def _copy(w3, copier, tx_hash, tip_gwei):
    """Re-send a pending transaction's calldata from the copier with a higher tip."""
    pending = w3.eth.get_transaction(tx_hash)
    tx = {"to": pending["to"], "data": pending["input"], "maxPriorityFeePerGas": tip_gwei * 10**9,
          "maxFeePerGas": 2 * w3.eth.get_block("latest")["baseFeePerGas"] + tip_gwei * 10**9}
    return send_signed(w3, copier, tx, wait=False)


def test_a_delivery_copied_from_the_mempool_is_refused(chain, market):
    w3, market, job_id, provider, copier = market
    transact(w3, provider, market.build("claim", job_id))  # mined: the seat is bound
    chain.rpc("evm_setAutomine", False)
    honest = _send(w3, provider, market.build("deliver", job_id, b"the result"), tip_gwei=1)
    copy = _copy(w3, copier, honest, tip_gwei=50)
    chain.rpc("evm_mine")
    honest_receipt, copy_receipt = (w3.eth.get_transaction_receipt(h) for h in (honest, copy))
    assert copy_receipt["transactionIndex"] < honest_receipt["transactionIndex"]  # it did front-run
    assert copy_receipt["status"] == 0 and honest_receipt["status"] == 1
    job = market.job(job_id)
    assert job.status.name == "DELIVERED"
    assert market.seat(job_id, 0).provider == provider.address


def test_a_delivery_in_its_claims_block_is_refused(chain, market):
    """A provider that sends its delivery with its claim exposes both to a copier; the
    contract refuses the delivery until a later block, so agents must wait for the claim."""
    w3, market, job_id, provider, copier = market
    chain.rpc("evm_setAutomine", False)
    nonce = w3.eth.get_transaction_count(provider.address)
    claim = _send(w3, provider, market.build("claim", job_id), tip_gwei=1, nonce=nonce)
    deliver = _send(w3, provider, market.build("deliver", job_id, b"the result"), tip_gwei=1, nonce=nonce + 1)
    chain.rpc("evm_mine")
    assert w3.eth.get_transaction_receipt(claim)["status"] == 1
    assert w3.eth.get_transaction_receipt(deliver)["status"] == 0
    assert market.job(job_id).status.name == "OPEN"
    chain.rpc("evm_setAutomine", True)
    transact(w3, provider, market.build("deliver", job_id, b"the result"))
    assert market.job(job_id).status.name == "DELIVERED"
