"""The transaction manager against real anvil nodes: nonce ownership across kill -9,
re-sending dropped transactions, fee-bumped replacement, reorgs and RPC outages."""

import signal
import subprocess
import threading
import time

import pytest
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from client.errors import RpcUnavailable
from client.transport import http_web3
from provider.agent.config import TxConfig
from provider.agent.errors import TxError, TxWouldRevert
from provider.agent.metrics import Metrics
from provider.agent.store import Broadcast, Store, TxStatus
from provider.agent.txmanager import TxManager
from tests.support.anvil import send_signed

pytestmark = pytest.mark.anvil
GWEI = 10**9


def manager(url, signer, db, **tx_config) -> TxManager:
    txm = TxManager(http_web3(url, timeout=5), signer, Store(db), TxConfig(**tx_config),
                    metrics=Metrics())
    txm.setup()
    return txm


def chain_txs_from(w3, address) -> list:
    """Every mined transaction sent by `address`, oldest first."""
    found = []
    for number in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == address:
                found.append(tx)
    return found


def assert_one_mined_tx_per_intent(w3, txm: TxManager, ping) -> None:
    """No nonce skipped, none used twice, every intent mined exactly once, by its own hash."""
    intents = txm.store.txs()
    assert all(t.status is TxStatus.CONFIRMED and t.succeeded for t in intents)
    mined = chain_txs_from(w3, txm.address)
    assert [t["nonce"] for t in mined] == list(range(len(intents)))
    assert [bytes(t["hash"]) for t in mined] == [t.mined_hash for t in intents]
    assert w3.eth.get_transaction_count(txm.address) == len(intents)
    assert len(ping.logged()) == len(intents)  # each ping executed once


def poll_until_mined(txm: TxManager, tx_ids: list[int], tries: int = 100) -> None:
    """Poll until none of `tx_ids` is pending: anvil automines a transaction a moment
    after accepting it, and a poll can come first."""
    for _ in range(tries):
        txm.poll()
        if all(txm.store.tx(i).status is not TxStatus.PENDING for i in tx_ids):
            return
        time.sleep(0.02)
    raise AssertionError(f"still pending: {[txm.store.tx(i) for i in tx_ids]}")


def mine_until_confirmed(anvil, txm: TxManager, blocks: int = 5) -> None:
    for _ in range(blocks):
        anvil.rpc("evm_mine")
        txm.poll()
        if not txm.store.open_txs():
            return
    raise AssertionError(f"still open: {txm.store.open_txs()}")


def test_sends_with_contiguous_nonces_and_refuses_reverting_calls(anvil, ping, signer, tmp_path):
    txm = manager(anvil.url, signer, tmp_path / "a.db")
    ids = [txm.send(ping.address, ping.calldata("ping", n, b"x"), kind="ping") for n in range(3)]
    records = [txm.wait(i, timeout=30) for i in ids]
    assert [r.nonce for r in records] == [0, 1, 2]
    assert all(r.succeeded and r.gas_used > 21_000 for r in records)
    assert txm.store.gas_spent() == sum(r.fee_paid for r in records) > 0
    with pytest.raises(TxWouldRevert, match="ping: always fails"):
        txm.send(ping.address, ping.calldata("fail"), kind="bad")
    assert len(txm.store.txs()) == 3 and txm.next_nonce == 3  # nothing recorded

    def bookkeeping_fails(tx_id):
        raise RuntimeError("caller's bookkeeping failed")

    with pytest.raises(RuntimeError):  # intent and bookkeeping are one transaction
        txm.send(ping.address, ping.calldata("ping", 9, b""), kind="ping",
                 on_record=bookkeeping_fails)
    assert len(txm.store.txs()) == 3 and txm.next_nonce == 3
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)


def test_send_before_setup_is_an_error(anvil, signer, tmp_path):
    txm = TxManager(http_web3(anvil.url), signer, Store(tmp_path / "a.db"), TxConfig())
    with pytest.raises(TxError, match="not set up"):
        txm.send(signer.address, b"", kind="x", gas=21_000)


def test_kill_9_mid_flight_then_restart_no_duplicate_no_skipped_nonce(
    anvil, ping, signer, tmp_path, python_script
):
    db = tmp_path / "agent.db"
    anvil.rpc("evm_setAutomine", False)  # everything stays pending while the sender runs
    proc = python_script("tx_sender.py", anvil.url, str(db), ping.address,
                         stdout=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline().split() for _ in range(5)]
    assert [line[2] for line in lines] == ["0", "1", "2", "3", "4"]
    proc.send_signal(signal.SIGKILL)  # mid-loop: possibly between recording and sending
    proc.wait()

    store = Store(db)
    sent = store.txs()
    assert len(sent) >= 5
    # A broadcast the node lost while we were down ...
    anvil.rpc("anvil_dropTransaction", "0x" + sent[0].broadcasts[0].hash.hex())
    # ... and an intent recorded just before a crash, never signed.
    store.add_tx(kind="ping", to=ping.address, data=ping.calldata("ping", 999, b""), value=0,
                 gas=100_000, nonce=store.max_nonce() + 1)

    txm = manager(anvil.url, signer, db, stuck_blocks=1000, stuck_seconds=3600)
    assert txm.next_nonce == len(sent) + 1
    after = txm.send(ping.address, ping.calldata("ping", 1000, b""), kind="ping", gas=100_000)
    assert txm.store.tx(after).nonce == len(sent) + 1
    mine_until_confirmed(anvil, txm)
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)
    assert all(len(t.broadcasts) == 1 for t in txm.store.txs())  # re-sent, never re-signed


def test_dropped_transaction_is_sent_again(anvil, ping, signer, tmp_path):
    txm = manager(anvil.url, signer, tmp_path / "a.db", stuck_blocks=1000, stuck_seconds=3600)
    anvil.rpc("evm_setAutomine", False)
    tx_id = txm.send(ping.address, ping.calldata("ping", 1, b""), kind="ping")
    tx_hash = txm.store.tx(tx_id).broadcasts[0].hash
    anvil.rpc("anvil_dropTransaction", "0x" + tx_hash.hex())
    with pytest.raises(TransactionNotFound):
        anvil.w3().eth.get_transaction(HexBytes(tx_hash))
    txm.poll()  # notices it is gone from the pool and sends the same bytes again
    assert anvil.w3().eth.get_transaction(HexBytes(tx_hash))["nonce"] == 0
    mine_until_confirmed(anvil, txm)
    assert txm.store.tx(tx_id).mined_hash == tx_hash
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)


def test_nonce_taken_by_a_foreign_transaction_is_resolved_not_skipped(
    anvil, ping, signer, tmp_path
):
    txm = manager(anvil.url, signer, tmp_path / "a.db", stuck_blocks=1000, stuck_seconds=3600)
    anvil.rpc("evm_setAutomine", False)
    ours = txm.send(ping.address, ping.calldata("ping", 1, b""), kind="ping")
    # Someone else holding the key replaces it in the pool: same nonce, higher fees.
    base = anvil.w3().eth.get_block("latest")["baseFeePerGas"]
    send_signed(anvil.w3(), signer, {"to": ping.address, "data": ping.calldata("ping", 666, b""),
                                     "nonce": 0, "maxFeePerGas": 10 * base + 10 * GWEI,
                                     "maxPriorityFeePerGas": 5 * GWEI}, wait=False)
    anvil.rpc("evm_mine")
    record = txm.wait(ours, timeout=30)
    assert record.status is TxStatus.NONCE_TAKEN and not record.succeeded
    anvil.rpc("evm_setAutomine", True)
    after = txm.wait(txm.send(ping.address, ping.calldata("ping", 2, b""), kind="ping"), timeout=30)
    assert after.nonce == 1 and after.succeeded  # the next nonce, no gap
    assert [n for _, n in ping.logged()] == [666, 2]


def test_stuck_transaction_is_replaced_with_a_fee_bump_up_to_the_cap(anvil, ping, signer, tmp_path):
    txm = manager(anvil.url, signer, tmp_path / "a.db", stuck_blocks=1, stuck_seconds=3600,
                  max_fee_gwei=60, priority_fee_gwei=1, fee_bump_percent=20)
    anvil.rpc("evm_setAutomine", False)
    tx_id = txm.send(ping.address, ping.calldata("ping", 1, b""), kind="ping")
    first = txm.store.tx(tx_id).broadcasts[0]
    # Blocks now cost more than the transaction offers: it stays pending.
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
    anvil.rpc("evm_mine")
    assert txm.w3.eth.get_transaction_count(signer.address) == 0

    txm.poll()  # stuck one block behind a base fee above its max fee: bump, capped at 60 gwei
    casts = txm.store.tx(tx_id).broadcasts
    assert len(casts) == 2 and casts[1].max_fee == 60 * GWEI
    assert casts[1].priority_fee >= first.priority_fee * 1.2
    anvil.rpc("evm_mine")  # base fee still ~87 gwei: even the replacement cannot pay
    txm.poll()  # no room left under the cap for a valid (+10%) bump: no new version
    assert len(txm.store.tx(tx_id).broadcasts) == 2

    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    mine_until_confirmed(anvil, txm)
    record = txm.store.tx(tx_id)
    assert record.mined_hash == casts[1].hash  # the replacement won the nonce
    assert txm.w3.eth.get_transaction_receipt(HexBytes(casts[1].hash))["status"] == 1
    with pytest.raises(TransactionNotFound):
        txm.w3.eth.get_transaction_receipt(HexBytes(first.hash))
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)


def test_fee_bump_arithmetic(signer, tmp_path):
    txm = TxManager(http_web3("http://127.0.0.1:1"), signer, Store(tmp_path / "a.db"),
                    TxConfig(max_fee_gwei=100, priority_fee_gwei=2, fee_bump_percent=10))
    last = Broadcast(b"", max_fee=10 * GWEI, priority_fee=2 * GWEI, raw=b"", head_block=0,
                     sent_at=0)
    assert txm._bumped_fees(last, base_fee=GWEI) == (11 * GWEI, int(2.2 * GWEI))
    assert txm._bumped_fees(last, base_fee=20 * GWEI) == (42 * GWEI + GWEI // 5, int(2.2 * GWEI))
    at_cap = Broadcast(b"", max_fee=95 * GWEI, priority_fee=2 * GWEI, raw=b"", head_block=0,
                       sent_at=0)
    assert txm._bumped_fees(at_cap, base_fee=GWEI) is None  # +10% would pass the cap
    assert txm._initial_fees(base_fee=80 * GWEI) == (100 * GWEI, 2 * GWEI)  # capped


def test_receipt_removed_by_a_reorg_is_sent_again(anvil, ping, signer, tmp_path):
    txm = manager(anvil.url, signer, tmp_path / "a.db", confirmations=3)
    tx_id = txm.send(ping.address, ping.calldata("ping", 1, b""), kind="ping")
    poll_until_mined(txm, [tx_id])
    mined = txm.store.tx(tx_id)
    assert mined.status is TxStatus.MINED
    anvil.rpc("anvil_reorg", 1, [])  # our block is replaced by an empty one
    txm.poll()  # receipt gone -> pending -> not in the pool -> same bytes again (automine)
    poll_until_mined(txm, [tx_id])
    again = txm.store.tx(tx_id)
    assert again.status is TxStatus.MINED and again.block_number == mined.block_number + 1
    anvil.rpc("anvil_mine", 2)
    txm.poll()
    assert txm.store.tx(tx_id).status is TxStatus.CONFIRMED
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)


def test_a_reorged_receipt_is_sent_again_as_is_even_when_old_enough_to_bump(
    anvil, ping, signer, tmp_path
):
    txm = manager(anvil.url, signer, tmp_path / "a.db", confirmations=5, stuck_blocks=1)
    tx_id = txm.send(ping.address, ping.calldata("ping", 1, b""), kind="ping")
    poll_until_mined(txm, [tx_id])
    mined = txm.store.tx(tx_id)
    anvil.rpc("anvil_mine", 1)
    anvil.rpc("anvil_reorg", 2, [])  # our block goes, sent 2 blocks before the head
    txm.poll()  # the same bytes again, its stuck clock restarted: no fee bump
    poll_until_mined(txm, [tx_id])
    again = txm.store.tx(tx_id)
    assert again.status is TxStatus.MINED and again.mined_hash == mined.mined_hash
    assert len(again.broadcasts) == 1


def test_a_reorg_deeper_than_the_confirmations_re_sends_at_the_same_nonces(
    anvil, ping, signer, tmp_path
):
    # Confirmed after one block, as in the sample config: a 2-block reorg reaches below it.
    txm = manager(anvil.url, signer, tmp_path / "a.db", confirmations=1)
    ids = [txm.send(ping.address, ping.calldata("ping", n, b""), kind="ping") for n in range(3)]
    poll_until_mined(txm, ids)
    before = [txm.store.tx(i) for i in ids]
    assert all(t.status is TxStatus.CONFIRMED for t in before)
    # The blocks of nonces 1 and 2 go; the new chain re-includes nonce 1, one block later.
    anvil.rpc("anvil_reorg", 2, [["0x" + before[1].broadcasts[0].raw.hex(), 1]])
    assert anvil.w3().eth.get_transaction_count(signer.address) == 2
    later = txm.send(ping.address, ping.calldata("ping", 3, b""), kind="ping")
    mine_until_confirmed(anvil, txm)  # without re-sending nonce 2, nonce 3 waits forever

    after = [txm.store.tx(i) for i in ids]
    assert [t.reorgs for t in after] == [0, 0, 1]  # only nonce 2 lost its block
    assert after[1].block_number == before[1].block_number + 1  # tracked where it is now
    assert after[1].block_hash != before[1].block_hash
    assert after[2].mined_hash == before[2].mined_hash  # the same signed bytes again
    assert txm.store.tx(later).nonce == 3
    assert [n for _, n in ping.logged()] == [0, 1, 2, 3]  # each once, none skipped
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)


def test_rpc_outage_and_refused_broadcasts_are_survived(anvil, ping, signer, proxy, tmp_path):
    txm = manager(proxy.url, signer, tmp_path / "a.db", send_deadline=30, poll_interval=0.05)
    loop = threading.Thread(target=txm.run_forever)
    loop.start()
    try:
        proxy.down()  # endpoint gone: connection refused
        done = []
        sender = threading.Thread(target=lambda: done.append(
            txm.send(ping.address, ping.calldata("ping", 1, b""), kind="ping")))
        sender.start()
        time.sleep(0.5)
        assert not done and loop.is_alive()  # retrying, not crashed
        proxy.up()
        sender.join(30)
        assert txm.wait(done[0], timeout=30).succeeded

        # The node refuses broadcasts for a while: the intent is kept and re-sent.
        proxy.fail = {"eth_sendRawTransaction"}
        tx_id = txm.send(ping.address, ping.calldata("ping", 2, b""), kind="ping")
        time.sleep(0.3)
        assert anvil.w3().eth.get_transaction_count(signer.address) == 1
        proxy.fail = set()
        assert txm.wait(tx_id, timeout=30).succeeded

        # With a short deadline, a send during an outage fails cleanly, recording nothing.
        proxy.down()
        quick = TxManager(txm.w3, signer, txm.store, TxConfig(send_deadline=0.5))
        quick._next_nonce, quick.chain_id = txm.next_nonce, txm.chain_id
        with pytest.raises(RpcUnavailable):
            quick.send(ping.address, ping.calldata("ping", 3, b""), kind="ping")
        assert len(txm.store.txs()) == 2
        proxy.up()
    finally:
        txm.stop()
        loop.join(10)
    assert not loop.is_alive()
    assert_one_mined_tx_per_intent(anvil.w3(), txm, ping)
    assert all(len(t.broadcasts) == 1 for t in txm.store.txs())
