"""Talking to an RPC endpoint that may go away: connection and retry with exponential backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from web3 import Web3
from web3.exceptions import ProviderConnectionError

from client.chain import http_web3
from client.errors import RpcUnavailable

log = logging.getLogger("verinfer.agent.rpc")

T = TypeVar("T")

# requests' ConnectionError / Timeout / HTTPError are OSErrors; JSON-RPC error *answers*
# (web3's Web3RPCError, a ValueError) are not transient and are never retried here.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, ProviderConnectionError)


def connect(url: str, timeout: float = 10.0) -> Web3:
    """A Web3 for an HTTP endpoint (``client.chain.http_web3``: no silent retries, we
    retry visibly)."""
    return http_web3(url, timeout)


@dataclass(frozen=True)
class Backoff:
    """Delays base, base*factor, ... capped at `cap` seconds."""

    base: float = 0.2
    factor: float = 2.0
    cap: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.base
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    stop: threading.Event | None = None,
    deadline: float | None = None,
    backoff: Backoff = Backoff(),
) -> T:
    """Call `fn` until it does not raise a transient RPC error.

    Gives up with RpcUnavailable when `stop` is set or `deadline` (seconds from now)
    has passed; with neither, it retries for as long as the endpoint is down.
    """
    give_up_at = None if deadline is None else time.monotonic() + deadline
    attempt = 0
    for delay in backoff.delays():
        attempt += 1
        try:
            return fn()
        except TRANSIENT_ERRORS as err:
            if give_up_at is not None and time.monotonic() + delay > give_up_at:
                raise RpcUnavailable(f"{what}: endpoint unreachable after {attempt} tries") from err
            log.warning(
                "rpc unavailable",
                extra={"what": what, "attempt": attempt, "retry_in": round(delay, 2),
                       "error": type(err).__name__},
            )
            if stop is not None:
                if stop.wait(delay):
                    raise RpcUnavailable(f"{what}: stopped while endpoint unreachable") from err
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")  # Backoff.delays never ends
