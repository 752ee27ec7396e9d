"""The rich dashboard renders jobs by state, earnings, stake and gas from the real store."""

import io
import re
import threading

from rich.console import Console

from provider.agent.dashboard import Dashboard, format_units, render, snapshot_from_store
from provider.agent.store import JobState, Store, TxStatus

MODEL = b"\x01" * 32


def text_of(renderable) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_snapshot_of_a_store_renders_every_number(tmp_path):
    store = Store(tmp_path / "agent.db")
    store.save_checkpoint(123, b"h" * 32, keep_blocks=4)
    store.add_job(1, MODEL, state=JobState.PAID, reward=25 * 10**17)
    store.add_job(2, MODEL, state=JobState.CLAIMED, collateral=3 * 10**18)
    store.add_job(3, MODEL, state=JobState.CLAIMED, collateral=10**18)
    tx = store.add_tx(kind="claim", to="0x" + "11" * 20, data=b"", value=0, gas=1, nonce=0)
    store.update_tx(tx, TxStatus.CONFIRMED, gas_used=100_000, effective_gas_price=2 * 10**9,
                    receipt_status=1)
    snap = snapshot_from_store(store, address="0xProvider", network="ethereum:local:foundry",
                               head_block=130, stake_free=7 * 10**18, recent=["job 1 paid"])
    assert snap.jobs == {JobState.PAID: 1, JobState.CLAIMED: 2}
    out = text_of(render(snap))
    assert "0xProvider" in out and "head 130" in out and "synced 123" in out
    assert re.search(r"│ claimed\s+│\s+2 │", out) and re.search(r"│ paid\s+│\s+1 │", out)
    assert "2.5000" in out  # earnings
    assert "4.0000" in out  # stake at risk
    assert "7.0000" in out  # stake free
    assert "0.000200" in out  # gas: 100k gas at 2 gwei
    assert "job 1 paid" in out


def test_unknowns_render_as_placeholders():
    from provider.agent.dashboard import Snapshot

    out = text_of(render(Snapshot(address="0xA", network="n")))
    assert "head ?" in out and "synced -" in out and "stake free" in out


def test_format_units():
    assert format_units(1234500000000000000) == "1.2345"
    assert format_units(10**24, places=0) == "1,000,000"
    assert format_units(5, decimals=0, places=0) == "5"


def test_live_dashboard_redraws_until_stopped(tmp_path):
    store = Store(tmp_path / "agent.db")
    console = Console(file=io.StringIO(), width=140, color_system=None, force_terminal=True)
    calls = []

    def source():
        calls.append(1)
        return snapshot_from_store(store, address="0xA", network="n")

    dashboard = Dashboard(source, refresh=0.01, console=console)
    thread = threading.Thread(target=dashboard.run_forever)
    thread.start()
    while len(calls) < 3:
        store.add_job(len(calls), MODEL)
    dashboard.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert "Jobs" in console.file.getvalue()
