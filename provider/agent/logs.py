"""Structured logs with stdlib logging: `key=value` lines or one JSON object per line.

Fields are passed the stdlib way, `log.info("tx sent", extra={"tx_id": 3, "nonce": 7})`;
every attribute of a record that stdlib logging does not define itself is a field.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Literal, TextIO

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = "0x" + value.hex()
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=info logger=verinfer.agent.tx msg="tx sent" tx_id=3 nonce=7`."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        line = " ".join(f"{k}={_text(v)}" for k, v in parts.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=lambda v: "0x" + v.hex() if isinstance(v, bytes) else str(v))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is *now*, so rich's Live dashboard, which redirects
    stderr while it runs, shows log lines above itself instead of being torn by them."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(
    level: str = "INFO", fmt: Literal["kv", "json"] = "kv", stream: TextIO | None = None
) -> logging.Handler:
    """Send the `verinfer` loggers to `stream` (default stderr) in the chosen format."""
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger("verinfer")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
