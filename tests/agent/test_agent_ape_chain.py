"""The tx manager and the watcher on ape's in-process test chain (what the demo uses)."""

import ape
import pytest
from agent_chain import Ping

from provider.agent.config import TxConfig, WatcherConfig
from provider.agent.store import Store, TxStatus
from provider.agent.txmanager import TxManager
from provider.agent.watcher import EventDecoder, Watcher


@pytest.fixture
def ape_w3():
    with ape.networks.ethereum.local.use_provider("test") as provider:
        yield provider.web3


def test_transactions_and_events_on_the_embedded_chain(ape_w3, signer, other, ping_artifacts,
                                                      tmp_path):
    ping = Ping(ape_w3, other, ping_artifacts)
    store = Store(tmp_path / "agent.db")
    txm = TxManager(ape_w3, signer, store, TxConfig(confirmations=1))
    txm.setup()
    first_nonce = txm.next_nonce
    ids = [txm.send(ping.address, ping.calldata("ping", n, b"ape"), kind="ping") for n in range(3)]
    records = [txm.wait(i, timeout=30) for i in ids]
    assert all(r.status is TxStatus.CONFIRMED and r.succeeded for r in records)
    assert [r.nonce for r in records] == [first_nonce, first_nonce + 1, first_nonce + 2]

    seen = []

    class Handler:
        def handle(self, events, to_block):
            seen.extend((e.args["sender"], e.args["n"], e.args["note"]) for e in events)

        def rewind(self, fork_block, fork_time):
            raise AssertionError("no reorg expected")

    watcher = Watcher(ape_w3, store, EventDecoder(ape_w3, ping.abi), Handler(),
                      WatcherConfig(confirmations=0), addresses=[ping.address],
                      start_block=ping.deploy_block)
    assert watcher.step()
    assert seen == [(signer.address, n, b"ape") for n in range(3)]
