"""Talking to an RPC endpoint that may go away: connection and retry with exponential backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import ProviderConnectionError, Web3RPCError

from provider.agent.errors import RpcUnavailable

log = logging.getLogger("verinfer.agent.rpc")

T = TypeVar("T")

# requests' ConnectionError / Timeout / HTTPError are OSErrors; JSON-RPC error *answers*
# (web3's Web3RPCError, a ValueError) are not transient and are never retried here.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, ProviderConnectionError)


def connect(url: str, timeout: float = 10.0) -> Web3:
    """A Web3 for an HTTP endpoint, without web3's own silent retries (we retry visibly)
    and without its default middlewares: they cost more CPU than a local node's round
    trip, and none serves the agent (it signs locally, gives every fee and gas, uses no
    ENS names and reads results by key)."""
    return Web3(
        HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None),
        middleware=[],
    )


@dataclass(frozen=True)
class Header:
    """The fields of a block the agent uses."""

    number: int
    hash: bytes
    timestamp: int
    base_fee: int | None


def headers(w3: Web3, blocks: Sequence[int | str]) -> list[Header | None]:
    """Headers of `blocks` (numbers or tags such as "latest"; None where the node has no
    such block), read raw in one round trip where the provider batches: web3's get_block
    formats every field of the block, several times the cost of the request itself."""
    requests = [("eth_getBlockByNumber", [hex(b) if isinstance(b, int) else b, False])
                for b in blocks]
    if len(requests) > 1 and hasattr(w3.provider, "make_batch_request"):
        answers = w3.provider.make_batch_request(requests)
        if not isinstance(answers, list) or len(answers) != len(requests):
            raise Web3RPCError(f"block batch refused: {answers}", rpc_response=answers)
        for answer in answers:
            if "error" in answer:
                raise Web3RPCError(str(answer["error"]), rpc_response=answer)
        results = [answer.get("result") for answer in answers]
    else:
        results = [w3.manager.request_blocking(*request) for request in requests]
    return [None if r is None else _header(r) for r in results]


def block_hash(w3: Web3, number: int) -> bytes | None:
    """The hash of block `number`, or None while the chain is shorter."""
    header = headers(w3, [number])[0]
    return None if header is None else header.hash


def mined_receipt(w3: Web3, tx_hash: bytes) -> dict[str, Any] | None:
    """The receipt of a mined transaction (None while it is not), read raw and formatted
    only in the fields the agent reads: web3 checksums the address of every log (a keccak
    each), which costs more than the request for a batch's receipt."""
    answer = w3.manager.request_blocking("eth_getTransactionReceipt", ["0x" + bytes(tx_hash).hex()])
    if answer is None or answer.get("blockNumber") is None:
        return None
    return {**_formatted(answer, _RECEIPT), "logs": [_formatted(log, _LOG) for log in answer["logs"]]}


def get_logs(w3: Web3, from_block: int, to_block: int, addresses: Sequence[str],
             topics: list[Any]) -> list[dict[str, Any]]:
    """eth_getLogs, read raw and formatted as `mined_receipt` formats logs."""
    answer = w3.manager.request_blocking("eth_getLogs", [{
        "fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses),
        "topics": topics,
    }])
    return [_formatted(log, _LOG) for log in answer]


def _quantity(value: Any) -> int:
    # Quantities are hex on the wire; in-process test providers answer with ints.
    return int(value, 16) if isinstance(value, str) else int(value)


_LOG = {"address": str, "topics": lambda topics: [HexBytes(t) for t in topics], "data": HexBytes,
        "blockNumber": _quantity, "blockHash": HexBytes, "transactionHash": HexBytes,
        "transactionIndex": _quantity, "logIndex": _quantity, "removed": bool}
_RECEIPT = {"transactionHash": HexBytes, "blockNumber": _quantity, "blockHash": HexBytes,
            "status": _quantity, "gasUsed": _quantity, "effectiveGasPrice": _quantity}


def _formatted(raw: dict[str, Any], fields: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    return {key: form(raw[key]) for key, form in fields.items() if raw.get(key) is not None}


def _header(block: dict[str, Any]) -> Header:
    base_fee = block.get("baseFeePerGas")
    return Header(_quantity(block["number"]), bytes(HexBytes(block["hash"])),
                  _quantity(block["timestamp"]), None if base_fee is None else _quantity(base_fee))


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
