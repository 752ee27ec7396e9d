"""The event watcher on real anvil nodes: confirmations, bounded ranges, reorgs
(anvil_reorg), RPC outages, exactly-once delivery across failures and restarts. It is
a component (the job worker's first phase): its retries and stopping are the worker's
loop's, tested in test_worker_threads.py."""

import pytest
from web3 import EthereumTesterProvider, HTTPProvider, Web3

from client.chain import Header, block_hash, get_logs, headers, mined_receipt
from client.transport import TRANSIENT_ERRORS, http_web3
from provider.agent.config import WatcherConfig
from provider.agent.errors import ReorgTooDeep
from provider.agent.store import JobState, Store
from provider.agent.watcher import EventDecoder, Watcher

pytestmark = pytest.mark.anvil


class Recorder:
    """A handler that applies rewinds, so `view` must always equal the canonical chain."""

    def __init__(self):
        self.view: list[tuple[int, int]] = []
        self.deliveries = 0
        self.to_blocks: list[int] = []
        self.rewinds: list[int] = []
        self.fork_times: list[int] = []

    def handle(self, events, to_block):
        assert all(e.name == "Ping" for e in events)
        self.view += [(e.block_number, e.args["n"]) for e in events]
        self.deliveries += len(events)
        self.to_blocks.append(to_block)

    def rewind(self, fork_block, fork_time):
        self.rewinds.append(fork_block)
        self.fork_times.append(fork_time)
        self.view = [item for item in self.view if item[0] <= fork_block]


def make_watcher(url, ping, store, handler, **config) -> Watcher:
    w3 = http_web3(url, timeout=5)
    return Watcher(w3, store, EventDecoder(w3, ping.abi), handler,
                   WatcherConfig(**config),
                   addresses=[ping.address], start_block=ping.deploy_block)


def sync(watcher: Watcher, limit: int = 100) -> None:
    for _ in range(limit):
        if watcher.step():
            return
    raise AssertionError("watcher did not catch up")


def _header(block) -> Header:
    return Header(block["number"], bytes(block["hash"]), block["timestamp"], block["baseFeePerGas"])


def test_raw_headers_equal_web3_blocks(anvil, ping):
    ping.ping(1)
    w3, formatted = anvil.w3(), Web3(HTTPProvider(anvil.url))  # the latter: web3's defaults
    head = w3.eth.block_number
    found = headers(w3, ["latest", head - 1, head + 5])  # one batch
    assert found == [_header(formatted.eth.get_block(head)),
                     _header(formatted.eth.get_block(head - 1)), None]
    assert headers(w3, [head]) == found[:1]  # alone: not batched
    assert (block_hash(w3, head), block_hash(w3, head + 5)) == (found[0].hash, None)


def test_raw_receipts_and_logs_equal_web3s(anvil, ping):
    sent = ping.ping(5, b"note")
    w3, formatted = anvil.w3(), Web3(HTTPProvider(anvil.url))
    tx_hash = bytes(sent["transactionHash"])
    ours, theirs = mined_receipt(w3, tx_hash), formatted.eth.get_transaction_receipt(tx_hash)
    assert {k: theirs[k] for k in ours if k != "logs"} == {k: v for k, v in ours.items() if k != "logs"}
    assert set(ours) == {"transactionHash", "blockNumber", "blockHash", "status", "gasUsed",
                         "effectiveGasPrice", "logs"}
    block = sent["blockNumber"]
    found = get_logs(w3, block, block, [ping.address], [])
    assert found == ours["logs"] and len(found) == 1
    [log] = theirs["logs"]
    assert {k: v for k, v in found[0].items() if k != "address"} == {
        k: log[k] for k in found[0] if k != "address"}
    assert found[0]["address"].lower() == log["address"].lower()
    assert mined_receipt(w3, b"\x01" * 32) is None
    assert mined_receipt(w3, tx_hash, logs=False) == {k: v for k, v in ours.items() if k != "logs"}


def test_raw_headers_on_an_in_process_chain():
    w3 = Web3(EthereumTesterProvider())  # ape's embedded chain: no batches, int fields
    assert headers(w3, ["latest", 7]) == [_header(w3.eth.get_block("latest")), None]


def test_trails_the_head_by_confirmations_in_bounded_ranges(anvil, ping, tmp_path):
    for n in range(10):
        ping.ping(n)  # one block each
    recorder = Recorder()
    watcher = make_watcher(anvil.url, ping, Store(tmp_path / "w.db"), recorder,
                           confirmations=2, max_range=3)
    sync(watcher)
    head = anvil.w3().eth.block_number
    assert recorder.to_blocks[-1] == head - 2
    starts = [ping.deploy_block - 1] + recorder.to_blocks[:-1]
    assert all(0 < end - start <= 3 for start, end in zip(starts, recorder.to_blocks))
    assert recorder.view == [item for item in ping.logged() if item[0] <= head - 2]
    assert [n for _, n in recorder.view] == list(range(8))

    anvil.rpc("anvil_mine", 2)  # the last two pings become deep enough
    sync(watcher)
    assert recorder.view == ping.logged() and recorder.deliveries == 10
    assert watcher.step()  # caught up: nothing new, nothing repeated
    assert recorder.deliveries == 10


def test_reorg_is_detected_rewound_to_the_fork_and_replayed(anvil, ping, other, tmp_path):
    recorder = Recorder()
    watcher = make_watcher(anvil.url, ping, Store(tmp_path / "w.db"), recorder)
    sync(watcher)
    for n in range(5):
        ping.ping(n)
        sync(watcher)  # a checkpoint per block
    head = anvil.w3().eth.block_number
    assert [n for _, n in recorder.view] == [0, 1, 2, 3, 4]

    # The last 3 blocks (pings 2, 3, 4) are replaced by blocks holding pings 100 and 101.
    replacement = [
        [{"from": other.address, "to": ping.address, "gas": hex(200_000),
          "data": "0x" + ping.calldata("ping", n, b"").hex()}, offset]
        for offset, n in enumerate([100, 101])
    ]
    anvil.rpc("anvil_reorg", 3, replacement)
    assert [n for _, n in ping.logged()] == [0, 1, 100, 101]

    sync(watcher)
    assert recorder.rewinds == [head - 3]
    assert recorder.fork_times == [anvil.w3().eth.get_block(head - 3)["timestamp"]]
    assert recorder.view == ping.logged()
    assert recorder.deliveries == 5 + 2  # only the new branch was delivered again


def test_reorg_deeper_than_the_remembered_hashes_is_refused(anvil, ping, tmp_path):
    recorder = Recorder()
    watcher = make_watcher(anvil.url, ping, Store(tmp_path / "w.db"), recorder, reorg_window=2)
    for n in range(4):
        ping.ping(n)
        sync(watcher)
    anvil.rpc("anvil_reorg", 3, [])
    with pytest.raises(ReorgTooDeep):
        watcher.step()
    # Tried again, it refuses again: nothing was rewound (the worker stops the agent).
    with pytest.raises(ReorgTooDeep):
        watcher.catch_up(10)
    assert recorder.rewinds == []


def test_reorg_with_short_history_starts_over(anvil, ping, tmp_path):
    for n in range(3):
        ping.ping(n)
    recorder = Recorder()
    watcher = make_watcher(anvil.url, ping, Store(tmp_path / "w.db"), recorder)
    sync(watcher)  # one range: a single remembered block
    anvil.rpc("anvil_reorg", 2, [])
    sync(watcher)
    assert recorder.rewinds == [ping.deploy_block - 1]
    assert recorder.view == ping.logged() == [(ping.deploy_block + 1, 0)]


class StoringHandler:
    """Writes each event into the agent store; fails on demand after writing."""

    def __init__(self, store):
        self.store, self.fail_next, self.seen = store, False, []

    def handle(self, events, to_block):
        for e in events:
            self.seen.append(e.args["n"])
            self.store.add_job(e.args["n"], b"\x01" * 32, state=JobState.SEEN)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("handler crashed half-way")

    def rewind(self, fork_block, fork_time):
        raise AssertionError("no reorg in this test")


def test_exactly_once_across_handler_failure_and_restart(anvil, ping, tmp_path):
    db = tmp_path / "w.db"
    for n in range(3):
        ping.ping(n)
    store = Store(db)
    handler = StoringHandler(store)
    watcher = make_watcher(anvil.url, ping, store, handler)
    handler.fail_next = True
    with pytest.raises(RuntimeError):
        watcher.step()
    # The handler's writes were rolled back together with the checkpoint.
    assert store.jobs() == [] and store.checkpoint() is None
    sync(watcher)
    assert [j.job_id for j in store.jobs()] == [0, 1, 2]
    store.close()

    ping.ping(3)
    store = Store(db)  # restart: a new process would see exactly this
    handler = StoringHandler(store)
    sync(make_watcher(anvil.url, ping, store, handler))
    assert handler.seen == [3]
    assert [j.job_id for j in store.jobs()] == [0, 1, 2, 3]


def test_rpc_outage_delays_but_loses_and_repeats_nothing(anvil, ping, proxy, tmp_path):
    recorder, store = Recorder(), Store(tmp_path / "w.db")
    watcher = make_watcher(proxy.url, ping, store, recorder)
    for n in range(3):
        ping.ping(n)
    assert watcher.catch_up(10) and recorder.deliveries == 3
    synced = store.checkpoint()
    proxy.down()
    for n in range(3, 6):
        ping.ping(n)  # straight to anvil: the chain moves on during the outage
    for _ in range(3):  # each try fails before anything is delivered or checkpointed
        with pytest.raises(TRANSIENT_ERRORS):
            watcher.catch_up(10)
    assert recorder.deliveries == 3 and store.checkpoint() == synced
    proxy.up()
    assert watcher.catch_up(10)
    assert recorder.view == ping.logged() and recorder.deliveries == 6


def test_log_ranges_narrow_when_the_node_refuses_wide_queries(anvil, ping, proxy, tmp_path):
    for n in range(8):
        ping.ping(n)
    proxy.log_range_limit = 2
    recorder = Recorder()
    watcher = make_watcher(proxy.url, ping, Store(tmp_path / "w.db"), recorder, max_range=16)
    sync(watcher)
    assert recorder.view == ping.logged() and recorder.deliveries == 8
    starts = [ping.deploy_block - 1] + recorder.to_blocks[:-1]
    assert all(end - start <= 2 for start, end in zip(starts, recorder.to_blocks))
