"""Contract event watcher: trails the head, reads logs in bounded ranges, survives reorgs.

Each step reads one range of blocks [checkpoint + 1, min(head - confirmations,
checkpoint + max_range)] and hands its decoded events to the handler *in the same
sqlite transaction* that advances the checkpoint: if the handler's writes are in the
store too, a crash delivers each event exactly once (silverback marks events processed
before handlers finish; we do not). Before each step the stored hash of the checkpoint
block is compared with the chain; on a mismatch the watcher walks back through the
remembered hashes to the fork point, tells the handler to `rewind`, and re-delivers
from there. RPC outages only delay it: the checkpoint never moves past unread blocks.

It runs no thread of its own: the job worker's tick runs it first (`catch_up`), so the
job book's writes and the worker's share one thread (jobs/worker.py), which also
retries a failed range and stops the agent on `ReorgTooDeep`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3RPCError

from client.chain import Header, block_hash, get_logs, headers
from provider.agent.config import WatcherConfig
from provider.agent.errors import ReorgTooDeep
from provider.agent.metrics import Metrics
from provider.agent.store import Checkpoint, Store

log = logging.getLogger("verinfer.agent.watcher")


@dataclass(frozen=True)
class Event:
    """A decoded contract event and where it happened."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int

    @property
    def key(self) -> tuple[bytes, int]:
        """Unique per log on one chain: (transaction hash, log index)."""
        return self.tx_hash, self.log_index


class LogDecoder(Protocol):
    """What the watcher needs to filter and decode logs; the object `decode` returns is
    handed to the handler as is (an Event below, or the SDK's typed marketplace events)."""

    @property
    def topics(self) -> list[str]:
        """topic0 of every event of interest (0x hex)."""

    def decode(self, raw_log: Any) -> Any | None:
        """The decoded event, or None to skip the log."""


class EventDecoder:
    """A LogDecoder for any contract, from its ABI's event entries."""

    def __init__(self, w3: Web3, event_abis: Sequence[dict[str, Any]]):
        abis = [a for a in event_abis if a.get("type") == "event"]
        if not abis:
            raise ValueError("no event entries in the ABI")
        contract = w3.eth.contract(abi=abis)
        self._events = {}
        for abi in abis:
            event = contract.events[abi["name"]]()
            self._events[bytes(HexBytes(event.topic))] = event

    @property
    def topics(self) -> list[str]:
        return ["0x" + t.hex() for t in self._events]

    def decode(self, raw_log: Any) -> Event | None:
        topics = raw_log["topics"]
        event = self._events.get(bytes(topics[0])) if topics else None
        if event is None:
            return None
        decoded = event.process_log(raw_log)
        return Event(
            name=decoded["event"],
            args=dict(decoded["args"]),
            address=to_checksum_address(decoded["address"]),
            block_number=decoded["blockNumber"],
            block_hash=bytes(decoded["blockHash"]),
            tx_hash=bytes(decoded["transactionHash"]),
            log_index=decoded["logIndex"],
        )


class EventHandler(Protocol):
    """Receives events. Both calls run inside the store transaction that moves the
    checkpoint, so writes to the same Store commit (or roll back) together with it."""

    def handle(self, events: list[Any], to_block: int) -> None:
        """Events of blocks up to `to_block` (inclusive), in chain order; may be empty."""

    def rewind(self, fork_block: int, fork_time: int) -> None:
        """Blocks above `fork_block` (mined at chain time `fork_time`) were orphaned;
        their events will be delivered again from the new chain. Undo whatever must not
        survive that."""


class Watcher:
    """Delivers the contract's events, range by range, to one handler; see the module doc."""

    def __init__(
        self,
        w3: Web3,
        store: Store,
        decoder: LogDecoder,
        handler: EventHandler,
        config: WatcherConfig,
        *,
        addresses: Sequence[str],
        start_block: int = 0,
        metrics: Metrics | None = None,
    ):
        self.w3, self.store, self.decoder, self.handler = w3, store, decoder, handler
        self.config = config
        self.addresses = [to_checksum_address(a) for a in addresses]
        self.start_block = start_block
        self.head_block: int | None = None
        self._range = config.max_range
        metrics = metrics or Metrics()
        self._delivered = metrics.counter("verinfer_events_total", "Events delivered")
        self._reorgs = metrics.counter("verinfer_reorgs_total", "Reorgs detected")
        self._synced = metrics.gauge("verinfer_synced_block", "Last block processed")

    def catch_up(self, max_ranges: int) -> bool:
        """Process up to `max_ranges` ranges (a reorg's rewind counts as one). Returns True
        when caught up with the safe head. Raises what `step` raises: nothing of the range
        that failed was checkpointed, so calling again retries it."""
        for _ in range(max_ranges):
            if self.step():
                return True
        return False

    def step(self) -> bool:
        """Process one range (or one reorg). Returns True when caught up with the safe head."""
        checkpoint = self.store.checkpoint()
        held = [] if checkpoint is None else [checkpoint]  # blocks whose hash we rely on
        latest, *found = headers(self.w3, ["latest", *(b.number for b in held)])
        head = self.head_block = latest.number
        safe = head - self.config.confirmations
        if checkpoint is not None and not _unchanged(found, held):
            self._rewind_to_fork(checkpoint)
            return False
        start = self.start_block if checkpoint is None else checkpoint.number + 1
        if start > safe:
            return True
        end = min(safe, start + self._range - 1)
        end_hash = block_hash(self.w3, end)
        if end_hash is None:
            return False
        try:
            raw_logs = get_logs(self.w3, start, end, self.addresses, [self.decoder.topics])
        except Web3RPCError as err:
            if self._range == 1:
                raise
            self._range = max(1, self._range // 2)
            log.warning("log range refused; narrowing",
                        extra={"range": self._range, "error": str(err)[:120]})
            return False
        # Logs and hashes were read at different moments: if the range end or the
        # checkpoint block changed meanwhile, a reorg raced us; read the range again.
        held.append(Checkpoint(end, end_hash))
        if not _unchanged(headers(self.w3, [b.number for b in held]), held):
            return False
        events = []
        for raw in sorted(raw_logs, key=lambda r: (r["blockNumber"], r["logIndex"])):
            if raw.get("removed"):
                continue
            if raw["blockNumber"] == end and bytes(raw["blockHash"]) != end_hash:
                return False
            event = self.decoder.decode(raw)
            if event is not None:
                events.append(event)
        with self.store.atomic():
            self.handler.handle(events, end)
            self.store.save_checkpoint(end, end_hash, keep_blocks=self.config.reorg_window)
        self._delivered.inc(len(events))
        self._synced.set(end)
        if self._range < self.config.max_range:
            self._range = min(self.config.max_range, self._range * 2)
        log.debug("synced", extra={"from": start, "to": end, "events": len(events)})
        return end >= safe

    def _rewind_to_fork(self, stale: Checkpoint) -> None:
        known = self.store.known_blocks()
        fork: Checkpoint | None = None
        for block in known:
            if block_hash(self.w3, block.number) == block.hash:
                fork = block
                break
        if fork is None and len(known) >= self.config.reorg_window:
            raise ReorgTooDeep(
                f"reorg below block {known[-1].number}, the oldest of {len(known)} remembered"
            )
        # With nothing matching but the whole history remembered, start over.
        fork_block = fork.number if fork is not None else self.start_block - 1
        fork_header = headers(self.w3, [fork_block])[0] if fork_block >= 0 else None
        # Unknown (before genesis, or gone again): anything may have changed since time 0.
        fork_time = fork_header.timestamp if fork_header is not None else 0
        with self.store.atomic():
            self.handler.rewind(fork_block, fork_time)
            self.store.rewind(fork)
        self._reorgs.inc()
        log.warning("reorg detected; rewinding", extra={
            "stale_checkpoint": stale.number, "fork_block": fork_block,
            "redeliver_from": fork_block + 1,
        })


def _unchanged(found: list[Header | None], held: list[Checkpoint]) -> bool:
    """Whether the chain still holds each of `held` blocks with the hash we know."""
    return all(h is not None and h.hash == b.hash for h, b in zip(found, held, strict=True))
