"""Running the gateway: uvicorn on the app, logs that never show the account's key.

>>> redactor(["0x" + "ab" * 32])("key=" + "ab" * 32)
'key=[redacted]'
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable

import uvicorn

from client import Client
from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.keys import KeyStore

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function blanking every secret (hex keys with or without 0x, any case) in a text."""
    needles = set()
    for secret in secrets:
        bare = secret.removeprefix("0x").removeprefix("0X")
        if len(bare) >= 16:  # nothing short enough to blank ordinary text
            needles |= {bare.lower(), bare.upper(), bare}

    def redact(text: str) -> str:
        for needle in needles:
            text = text.replace(needle, "[redacted]")
        return text.replace("0x[redacted]", "[redacted]")

    return redact


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message, traceback and all), then blanks the secrets."""

    def __init__(self, fmt: str, redact: Callable[[str], str]):
        super().__init__(fmt)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def account_secrets(client: Client) -> list[str]:
    """The private key the client signs with, as logs could spell it."""
    account = client.connection.account
    return [] if account is None else [bytes(account.key).hex()]


def configure_logging(secrets: Iterable[str], level: int = logging.INFO) -> None:
    """Every log line (ours, uvicorn's, the SDK's) through one redacting handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, redactor(secrets)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]):
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()


def url_of(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


def serve(client: Client, config: GatewayConfig, keys: KeyStore | None = None, *,
          announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (SIGINT / SIGTERM). ``announce`` gets the base URL once
    the gateway answers (with the port the system chose if ``config.port`` is 0)."""
    configure_logging(account_secrets(client))
    if keys is not None and len(keys) == 0:
        logging.getLogger("verinfer.gateway").warning("the keys file %s has no key: every request will get 401",
                                                      keys.path)
    app = create_app(client, config, keys)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    url = url_of(config.host, sock.getsockname()[1])
    uv = uvicorn.Config(app, log_config=None, access_log=True, lifespan="on", timeout_graceful_shutdown=5)
    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then raises the signal again
    # for the handler it found: make that a clean exit rather than death by signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    try:
        _Server(uv, lambda: (announce or _print)(url)).run(sockets=[sock])
    finally:
        if app.state.auditor.busy:
            _exit_without_the_audit_engine(sys.exc_info()[1])


def _exit_cleanly(_signum, _frame) -> None:
    raise SystemExit(0)


def _exit_without_the_audit_engine(error: BaseException | None) -> None:
    """Exit now, everything else stopped, while the audit engine's thread still loads or
    re-executes: a normal exit would join it (minutes for the LLM) and a daemon thread
    would abort inside torch's teardown. Its audits are pending in the log, resumed at
    the next start. The exit status is the one ``error`` (what ended the server) gives."""
    log = logging.getLogger("verinfer.gateway")
    log.warning("the audit engine is still working: exiting without it (its audits resume at the next start)")
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else int(error.code is not None)
    else:
        code = int(error is not None)
        if error is not None:
            log.error("the gateway stopped on an error", exc_info=error)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _print(url: str) -> None:
    print(f"Verinfer gateway (OpenAI API) on {url}", flush=True)
