"""How requests reach a node, how failures are retried and translated, and connecting.

- ``http_web3``: a Web3 for an HTTP(S) JSON-RPC endpoint over a kept-alive connection
  per thread (``KeepAlive``);
- ``retry`` with ``Backoff``: call again while the node is unreachable
  (``TRANSIENT_ERRORS``); the provider agent rides out outages with it;
- ``translate_errors``: web3 / eth-tester / HTTP failures as ``VerinferError``s;
- ``connect_rpc`` / ``connect_ape``: a ``Connection`` (a Web3 and the account that signs,
  from ``client.accounts.load_account``) through a plain RPC URL or an ape network choice.

Raw chain reads are in ``client.chain``, sending transactions in ``client.signer``.

>>> from itertools import islice
>>> list(islice(Backoff(base=0.5, cap=3).delays(), 5))
[0.5, 1.0, 2.0, 3, 3]
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import certifi
import requests
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.exceptions import ProviderConnectionError

from client.accounts import load_account
from client.errors import ConfigError, ContractError, RpcUnavailable, error_for_revert, revert_reason

log = logging.getLogger("verinfer.transport")

T = TypeVar("T")

# requests' ConnectionError / Timeout / HTTPError and KeepAlive's failures are OSErrors;
# JSON-RPC error *answers* (web3's Web3RPCError, a ValueError) are not transient and are
# never retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, ProviderConnectionError)


def http_web3(url: str, timeout: float = 10.0) -> Web3:
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

    Connections are closed, not left to the garbage collector: a thread's once the
    thread has ended (when another thread opens one), all of them by ``close()`` or when
    the KeepAlive itself is collected.
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
        # thread ident -> (that thread, its connection); written under the lock
        self._conns: dict[int, tuple[threading.Thread, http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._conns, self._lock)

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

    def close(self) -> None:
        """Close every thread's connection (a later request opens a new one)."""
        _close_all(self._conns, self._lock)

    def _connection(self) -> http.client.HTTPConnection:
        me = threading.current_thread()
        held = self._conns.get(me.ident)
        if held is not None and held[0] is me:
            return held[1]
        host, port = self._address
        if self._https:
            context = ssl.create_default_context(cafile=_ca_bundle() or certifi.where())
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        with self._lock:  # ended threads' connections (an ident may be a new thread's now)
            for ident, (thread, old) in list(self._conns.items()):
                if not thread.is_alive() or ident == me.ident:
                    old.close()
                    del self._conns[ident]
            self._conns[me.ident] = (me, conn)
        return conn

    def _drop(self) -> None:
        with self._lock:
            held = self._conns.pop(threading.get_ident(), None)
        if held is not None:
            held[1].close()


def _close_all(conns: dict[int, tuple[threading.Thread, http.client.HTTPConnection]],
               lock: threading.Lock) -> None:
    with lock:
        for _, conn in conns.values():
            conn.close()
        conns.clear()


def _ca_bundle() -> str | None:
    # The CA bundle settings requests honours.
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


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


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn web3 / eth-tester / HTTP failures into ``VerinferError``s.

    Reverts become the named ``ContractError`` for their reason; a node that can't be
    reached becomes ``RpcUnavailable``.

    >>> with translate_errors():
    ...     pass
    """
    try:
        yield
    except ContractError:
        raise
    except TRANSIENT_ERRORS as exc:
        raise RpcUnavailable(f"RPC endpoint unreachable: {exc}") from exc
    except Exception as exc:
        reason = revert_reason(exc)
        if reason is None and "revert" not in str(exc).lower():
            raise
        raise error_for_revert(reason) from exc


@dataclass
class Connection:
    """A Web3 on some network, optionally with the account that signs for the caller.

    ``close()`` leaves an ape network this connection entered.
    """

    w3: Web3
    network: str
    account: LocalAccount | None = None
    gas_limit: int | None = None  # fixed limit instead of estimation (see ``Signer``)
    _ape_context: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._ape_context is not None:
            self._ape_context.__exit__(None, None, None)
            self._ape_context = None


def connect_rpc(url: str, account: Any = None, *, timeout: float = 30.0) -> Connection:
    """A connection to an HTTP(S) JSON-RPC endpoint, signing (if ``account`` is given)
    with the account it names (``client.accounts.load_account``: a private key, an ape
    alias, ``"TEST::<n>"``, an ape account).

    >>> conn = connect_rpc("http://127.0.0.1:1")  # no request is made yet
    >>> conn.network
    'http://127.0.0.1:1'
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"RPC URL must be http(s)://..., got {url!r}")
    return Connection(http_web3(url, timeout), url, None if account is None else load_account(account))


def connect_ape(network: str | None = None, account: Any = None) -> Connection:
    """A connection through ape: ``network`` is an ape network choice (None: the connected
    or default one), ``account`` as ``connect_rpc``'s.

    Inside ``ape test`` / ``ape run`` the already connected provider is reused.

    >>> conn = connect_ape("ethereum:local:test", "TEST::0")  # doctest: +SKIP
    """
    from ape import networks
    from ape.exceptions import ApeException

    local = None if account is None else load_account(account)  # before entering a network it would leave open
    context = None
    provider = networks.active_provider
    if provider is None or (network and not _same_network(provider.network_choice, network)):
        try:
            context = networks.parse_network_choice(network)
            provider = context.__enter__()
        except ApeException as exc:
            raise ConfigError(f"cannot connect to ape network {network!r}: {exc}") from exc
    # ape's embedded chain (eth-tester) estimates gas by bisection: use the block limit.
    gas_limit = provider.web3.eth.get_block("latest")["gasLimit"] if provider.name == "test" else None
    return Connection(provider.web3, provider.network_choice, local, gas_limit, context)


def _same_network(active: str, wanted: str) -> bool:
    # "ethereum:local" matches "ethereum:local:test"; a given provider must match too.
    return active.split(":")[: len(wanted.split(":"))] == wanted.split(":")
