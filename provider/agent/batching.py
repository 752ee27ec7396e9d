"""Dynamic batching: items grouped per key (e.g. model id), released at max size or max wait.

Used for claims (one claim-many transaction) and engine batches (one forward pass per
model). A batch is released as soon as it is full, or `max_wait` seconds after its
oldest item arrived, whichever is first; items keep their arrival order.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Batcher(Generic[K, T]):
    """Thread-safe: any number of producers `put`, consumers `get` (blocking) or `ready`."""

    def __init__(
        self, max_size: int, max_wait: float, *, clock: Callable[[], float] = time.monotonic
    ):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if max_wait <= 0:
            raise ValueError("max_wait must be positive")
        self.max_size, self.max_wait, self._clock = max_size, max_wait, clock
        self._pending: OrderedDict[K, tuple[float, list[T]]] = OrderedDict()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(items) for _, items in self._pending.values())

    def put(self, key: K, item: T) -> None:
        with self._cond:
            if key not in self._pending:
                self._pending[key] = (self._clock(), [])
            self._pending[key][1].append(item)
            self._cond.notify_all()

    def _take(self, key: K) -> tuple[K, list[T]]:
        started, items = self._pending[key]
        batch, rest = items[: self.max_size], items[self.max_size :]
        if rest:
            # The remainder waited as long as the batch it came with.
            self._pending[key] = (started, rest)
            self._pending.move_to_end(key)
        else:
            del self._pending[key]
        return key, batch

    def ready(self) -> tuple[K, list[T]] | None:
        """A batch that is full or has waited long enough, else None (never blocks)."""
        with self._cond:
            now = self._clock()
            for key, (_, items) in self._pending.items():
                if len(items) >= self.max_size:
                    return self._take(key)
            for key, (started, _) in sorted(self._pending.items(), key=lambda kv: kv[1][0]):
                if now - started >= self.max_wait:
                    return self._take(key)
            return None

    def get(self, timeout: float | None = None) -> tuple[K, list[T]] | None:
        """Block until a batch is ready (or `timeout` seconds pass: None)."""
        give_up = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                batch = self.ready()
                if batch is not None:
                    return batch
                waits = [started + self.max_wait - self._clock()
                         for started, _ in self._pending.values()]
                if give_up is not None:
                    waits.append(give_up - time.monotonic())
                    if waits[-1] <= 0:
                        return None
                self._cond.wait(max(min(waits), 0.001) if waits else None)

    def drain(self) -> list[tuple[K, list[T]]]:
        """Everything pending, in batches of at most max_size (for shutdown)."""
        with self._cond:
            out = []
            while self._pending:
                out.append(self._take(next(iter(self._pending))))
            return out
