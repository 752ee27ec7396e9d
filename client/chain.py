"""Raw chain reads: block headers, receipts and logs, read with plain JSON-RPC requests
(batched where the provider batches) and formatted only in the fields Verinfer reads.

web3's result formatters cost more CPU than a local node's round trip (``get_block``
formats every field of a block; receipts and logs checksum every log's address, a keccak
each), and agents and clients poll these all the time.

>>> Header(1, b"\\x00" * 32, 0, None).number
1
"""
from __future__ import annotations

import base64
import http.client
import os
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import requests
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3RPCError


def http_web3(url: str, timeout: float) -> Web3:
    """A Web3 for an HTTP endpoint, without web3's own silent retries (callers retry
    visibly) and without its default middlewares: they cost more CPU than a local node's
    round trip, and none serves Verinfer (it signs locally, gives every fee and gas, uses
    no ENS names and reads results by key).

    Requests go over one kept-alive ``http.client`` connection per thread (``KeepAlive``):
    requests' session machinery costs ~0.4 ms of CPU per call, twice what a local node
    takes to answer. Where the environment names a proxy for ``url``, they go through a
    requests session instead, which reads the proxy settings once, here."""
    proxies = requests.utils.get_environ_proxies(url)
    session = None
    if proxies:
        session = requests.Session()
        session.trust_env = False  # or it re-reads the environment on every request
        session.proxies = proxies
        session.verify = _ca_bundle() or True
    provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, session=session,
                            exception_retry_configuration=None)
    if session is None:
        provider._request_session_manager = KeepAlive(url, timeout)  # web3's one seam for its HTTP client
    return Web3(provider, middleware=[])


class KeepAlive:
    """POSTs to one JSON-RPC URL over a persistent ``http.client`` connection per thread,
    in the shape of web3's HTTP session manager (``make_post_request``).

    Failures are ``OSError``s, as requests' are: a refused or dropped connection, a
    timeout, a malformed or non-2xx answer (``ConnectionError``). A kept-alive connection
    the node closed while idle is re-opened once, transparently.
    """

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._https = parts.scheme == "https"
        self._address = (parts.hostname, parts.port)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json"}
        if parts.username is not None:  # credentials in the URL: HTTP basic auth, as requests does
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._timeout = timeout
        self._local = threading.local()

    def make_post_request(self, endpoint_uri: str, data: bytes, **_: Any) -> bytes:
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request("POST", self._path, data, self._headers)
                response = conn.getresponse()
                body = response.read()
            except (ConnectionResetError, BrokenPipeError) as err:  # incl. RemoteDisconnected
                self._drop()
                if reused and attempt == 1:  # the node closed it while idle: open a new one
                    continue
                raise ConnectionError(f"connection to {self._address[0]} lost: {err}") from err
            except http.client.HTTPException as err:  # a malformed answer (not an OSError)
                self._drop()
                raise ConnectionError(f"bad HTTP answer from {self._address[0]}: {err!r}") from err
            except OSError:
                self._drop()
                raise
            if response.will_close:
                self._drop()
            if not 200 <= response.status < 300:
                raise ConnectionError(f"HTTP {response.status} {response.reason} from {self._address[0]}")
            return body
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            host, port = self._address
            if self._https:
                context = ssl.create_default_context(cafile=_ca_bundle() or certifi.where())
                conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=context)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _ca_bundle() -> str | None:
    # The CA bundle settings requests honours.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


@dataclass(frozen=True)
class Header:
    """The fields of a block Verinfer uses."""

    number: int
    hash: bytes
    timestamp: int
    base_fee: int | None


def headers(w3: Web3, blocks: Sequence[int | str]) -> list[Header | None]:
    """Headers of ``blocks`` (numbers or tags such as "latest"; None where the node has no
    such block), in one round trip where the provider batches."""
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


def block_number(w3: Web3) -> int:
    """The head's number (web3's ``eth.block_number`` walks its formatters and cache)."""
    return _quantity(w3.manager.request_blocking("eth_blockNumber", []))


def block_hash(w3: Web3, number: int) -> bytes | None:
    """The hash of block ``number``, or None while the chain is shorter."""
    header = headers(w3, [number])[0]
    return None if header is None else header.hash


def mined_receipt(w3: Web3, tx_hash: bytes, logs: bool = True) -> dict[str, Any] | None:
    """The receipt of a mined transaction (None while it is not); without ``logs`` (a
    batch's receipt holds one per job), only its block, status and gas."""
    answer = w3.manager.request_blocking("eth_getTransactionReceipt", ["0x" + bytes(tx_hash).hex()])
    if answer is None or answer.get("blockNumber") is None:
        return None
    receipt = _formatted(answer, _RECEIPT)
    if logs:
        receipt["logs"] = [_formatted(log, _LOG) for log in answer["logs"]]
    return receipt


def get_logs(w3: Web3, from_block: int, to_block: int, addresses: Sequence[str],
             topics: list[Any]) -> list[dict[str, Any]]:
    """eth_getLogs of ``[from_block, to_block]``, its logs formatted as ``mined_receipt``'s."""
    answer = w3.manager.request_blocking("eth_getLogs", [{
        "fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses),
        "topics": topics,
    }])
    return [_formatted(log, _LOG) for log in answer]


def nonce(w3: Web3, address: str, block: str = "latest") -> int:
    """The account's transaction count at ``block`` ("latest" or "pending")."""
    return _quantity(w3.manager.request_blocking("eth_getTransactionCount", [address, block]))


def estimate_gas(w3: Web3, sender: str, to: str, data: bytes, value: int = 0) -> int:
    """eth_estimateGas of a call, its calldata sent as is: web3's request formatters walk
    every field, which costs more than the node's estimate for a batch's 50 kB of calldata.
    A revert is the node's error answer, raised as web3's ``Web3RPCError``."""
    return _quantity(w3.manager.request_blocking("eth_estimateGas", [{
        "from": sender, "to": to, "data": "0x" + bytes(data).hex(), "value": hex(value)}]))


def send_raw(w3: Web3, raw: bytes) -> None:
    """eth_sendRawTransaction; a refusal is the node's error answer (``Web3RPCError``)."""
    w3.manager.request_blocking("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])


def known_tx(w3: Web3, tx_hash: bytes) -> bool:
    """Whether the node knows the transaction (in its pool or mined)."""
    return w3.manager.request_blocking("eth_getTransactionByHash", ["0x" + bytes(tx_hash).hex()]) is not None


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
