"""Keeps the explorer's state (``gateway.explorer_index``) in step with the chain,
incrementally from the last block seen, and rewinds when the chain reorganizes.

Each ``sync`` reads the events of the blocks after the last checkpoint, up to the
head, folds them into a fork of that checkpoint's state, reads the views of the jobs
they touched at the head, and keeps the result as a new checkpoint (the head's number
and hash). Before that it checks the newest checkpoints' hashes against the chain: a
checkpoint whose block the chain replaced is dropped, so the next range starts after
the newest block both chains share. A reorg deeper than every checkpoint kept rebuilds
from the start block.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from client.chain import block_hash, block_number, headers
from client.marketplace import Marketplace
from client.transport import translate_errors
from gateway.explorer_index import ExplorerState

log = logging.getLogger("verinfer.gateway.explorer")


@dataclass(frozen=True)
class Checkpoint:
    block: int
    hash: bytes
    state: ExplorerState


class ExplorerSync:
    """The explorer's state, brought up to the chain's head by ``sync`` (blocking: run it
    off the event loop; one caller at a time)."""

    def __init__(self, market: Marketplace, start_block: int = 0, *, keep: int = 64, max_range: int = 50_000):
        """Follow ``market`` from ``start_block`` (its deployment's block). ``keep``:
        checkpoints kept to rewind to (one per sync that saw new blocks); ``max_range``:
        blocks read per sync, so a long catch-up shows progress rather than nothing."""
        self.market, self.start_block, self.max_range = market, start_block, max_range
        self._checkpoints: deque[Checkpoint] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.state = ExplorerState(block=start_block - 1)
        self.rewinds = 0  # reorgs seen (a metric, and for tests)

    def sync(self) -> bool:
        """Read what the chain added since the last sync; whether the state changed."""
        with self._lock, translate_errors():
            w3 = self.market.w3
            rewound = self._drop_replaced()
            base = self._checkpoints[-1] if self._checkpoints else None
            since = base.state if base else ExplorerState(block=self.start_block - 1)
            head = min(block_number(w3), since.block + self.max_range)
            if head <= since.block:
                if rewound:
                    self.state = since
                return rewound
            [header] = headers(w3, [head])
            if header is None:  # the head moved back between the two reads: next time
                return rewound
            state = since.fork()
            touched = state.apply(self.market.get_events(since.block + 1, head))
            ids = [j for j in sorted(touched) if j in state.jobs]
            if ids:
                state.apply_views(self.market.jobs(ids, block=head))
            state.apply_time(head, header.timestamp)
            if block_hash(w3, head) != header.hash:  # replaced while we read: read it again next time
                return rewound
            self._checkpoints.append(Checkpoint(head, header.hash, state))
            self.state = state
            return True

    def _drop_replaced(self) -> bool:
        """Drop the checkpoints whose blocks the chain no longer has; whether any was."""
        dropped = False
        while self._checkpoints:
            newest = self._checkpoints[-1]
            if block_hash(self.market.w3, newest.block) == newest.hash:
                break
            self._checkpoints.pop()
            dropped = True
        if dropped:
            self.rewinds += 1
            log.warning("chain reorganized: explorer rewinds to block %s",
                        self._checkpoints[-1].block if self._checkpoints else self.start_block - 1)
        return dropped
