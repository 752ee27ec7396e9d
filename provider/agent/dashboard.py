"""Live terminal dashboard (rich): jobs by state, earnings, stake and gas.

It only renders a Snapshot, so what it shows can be checked by rendering to a string.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from provider.agent.service import Service
from provider.agent.store import JobState, Store, TxStatus

log = logging.getLogger("verinfer.agent.dashboard")


def format_units(amount: int, decimals: int = 18, places: int = 4) -> str:
    """1234500000000000000 -> '1.2345' (base units to whole tokens / ether)."""
    value = Decimal(amount) / (Decimal(10) ** decimals)
    return f"{value:,.{places}f}"


@dataclass(frozen=True)
class Snapshot:
    """What the dashboard shows at one moment."""

    address: str
    network: str
    head_block: int | None = None
    checkpoint: int | None = None
    jobs: dict[JobState, int] = field(default_factory=dict)
    txs: dict[TxStatus, int] = field(default_factory=dict)
    earnings: int = 0  # payment token base units
    stake_at_risk: int = 0  # collateral locked by jobs we hold
    stake_free: int | None = None  # read from the contract when known
    gas_spent: int = 0  # wei
    recent: tuple[str, ...] = ()  # last few notable events, newest last
    taken_at: float = field(default_factory=time.time)


def snapshot_from_store(
    store: Store,
    *,
    address: str,
    network: str,
    head_block: int | None = None,
    stake_free: int | None = None,
    recent: Sequence[str] = (),
) -> Snapshot:
    cp = store.checkpoint()
    return Snapshot(
        address=address,
        network=network,
        head_block=head_block,
        checkpoint=None if cp is None else cp.number,
        jobs=store.job_counts(),
        txs=store.tx_counts(),
        earnings=store.earnings(),
        stake_at_risk=store.stake_at_risk(),
        stake_free=stake_free,
        gas_spent=store.gas_spent(),
        recent=tuple(recent),
    )


def render(snap: Snapshot) -> Group:
    head = "?" if snap.head_block is None else str(snap.head_block)
    synced = "-" if snap.checkpoint is None else str(snap.checkpoint)
    title = (f"Verinfer provider {snap.address}  ·  {snap.network}  ·  head {head}"
             f"  ·  synced {synced}")

    jobs = Table(title="Jobs", expand=True)
    jobs.add_column("state")
    jobs.add_column("count", justify="right")
    for state in JobState:
        jobs.add_row(state.value, str(snap.jobs.get(state, 0)))
    jobs.add_row("[bold]total[/]", f"[bold]{sum(snap.jobs.values())}[/]")

    money = Table(title="Money", expand=True)
    money.add_column("")
    money.add_column("amount", justify="right")
    money.add_row("earnings", format_units(snap.earnings))
    money.add_row("stake at risk", format_units(snap.stake_at_risk))
    money.add_row("stake free", "?" if snap.stake_free is None else format_units(snap.stake_free))
    money.add_row("gas spent (ETH)", format_units(snap.gas_spent, places=6))

    txs = Table(title="Transactions", expand=True)
    txs.add_column("status")
    txs.add_column("count", justify="right")
    for status in TxStatus:
        txs.add_row(status.value, str(snap.txs.get(status, 0)))

    grid = Table.grid(expand=True)
    for _ in range(3):
        grid.add_column(ratio=1)
    grid.add_row(jobs, money, txs)
    parts: list = [grid]
    if snap.recent:
        parts.append(Panel("\n".join(snap.recent[-8:]), title="Recent"))
    return Group(Panel(Group(*parts), title=title))


class Dashboard(Service):
    """Redraws `render(source())` every `refresh` seconds until stopped."""

    name = "dashboard"

    def __init__(
        self, source: Callable[[], Snapshot], refresh: float = 1.0, console: Console | None = None
    ):
        super().__init__()
        self.source, self.refresh, self.console = source, refresh, console

    def run_forever(self) -> None:
        with Live(render(self.source()), console=self.console, auto_refresh=False) as live:
            while not self.stop_event.wait(self.refresh):
                try:
                    frame = render(self.source())
                except Exception:  # a broken frame must not stop the agent; keep the last one
                    log.exception("dashboard snapshot failed")
                    continue
                live.update(frame, refresh=True)
