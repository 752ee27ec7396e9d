"""Operator metrics in the Prometheus text format, served over HTTP by a stdlib server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from provider.agent.service import Service
from provider.agent.store import JobState, Store, TxStatus

log = logging.getLogger("verinfer.agent.metrics")

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Family:
    """One metric name with any number of labelled values."""

    def __init__(self, name: str, kind: Literal["counter", "gauge"], help_text: str, lock):
        self.name, self.kind, self.help = name, kind, help_text
        self._lock = lock
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        if self.kind == "counter" and amount < 0:
            raise ValueError(f"counter {self.name} cannot decrease")
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def set(self, value: float, **labels: str) -> None:
        if self.kind != "gauge":
            raise TypeError(f"{self.name} is a counter; use inc()")
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value

    def replace(self, values: dict[str, float], label: str) -> None:
        """Set a gauge to exactly these label -> value pairs, dropping others."""
        with self._lock:
            self._values = {((label, k),): v for k, v in values.items()}

    def get(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            tag = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels)
            lines.append(f"{self.name}{{{tag}}} {_number(value)}" if tag else
                         f"{self.name} {_number(value)}")
        return lines


class Metrics:
    """A registry; collectors run before each render to refresh gauges from live state."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._families: dict[str, Family] = {}
        self._collectors: list[Callable[[], None]] = []

    def _family(self, name: str, kind: Literal["counter", "gauge"], help_text: str) -> Family:
        with self._lock:
            family = self._families.get(name)
            if family is None:
                family = self._families[name] = Family(name, kind, help_text, self._lock)
            elif family.kind != kind:
                raise ValueError(f"metric {name} already registered as a {family.kind}")
            return family

    def counter(self, name: str, help_text: str) -> Family:
        return self._family(name, "counter", help_text)

    def gauge(self, name: str, help_text: str) -> Family:
        return self._family(name, "gauge", help_text)

    def add_collector(self, collect: Callable[[], None]) -> None:
        self._collectors.append(collect)

    def render(self) -> str:
        for collect in self._collectors:
            try:
                collect()
            except Exception:  # a broken collector must not take the endpoint down
                log.exception("metrics collector failed")
        with self._lock:
            families = [self._families[n] for n in sorted(self._families)]
        return "\n".join(line for f in families for line in f.render()) + "\n"


def watch_store(metrics: Metrics, store: Store) -> None:
    """Export the store's jobs by state, money at stake, earnings, gas and tx counts."""
    jobs = metrics.gauge("verinfer_jobs", "Jobs held, by state")
    txs = metrics.gauge("verinfer_txs", "Transaction intents, by status")
    at_risk = metrics.gauge("verinfer_stake_at_risk", "Collateral locked by held jobs")
    earned = metrics.gauge("verinfer_earnings", "Rewards of jobs paid to us")
    gas = metrics.gauge("verinfer_gas_spent_wei", "Wei paid for gas by mined transactions")

    def collect() -> None:
        counts = store.job_counts()
        jobs.replace({s.value: counts.get(s, 0) for s in JobState}, label="state")
        tx_counts = store.tx_counts()
        txs.replace({s.value: tx_counts.get(s, 0) for s in TxStatus}, label="status")
        at_risk.set(store.stake_at_risk())
        earned.set(store.earnings())
        gas.set(store.gas_spent())

    metrics.add_collector(collect)


class MetricsServer(Service):
    """Serves GET /metrics (Prometheus text) and GET /healthz on host:port."""

    name = "metrics"

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 9464):
        super().__init__()
        self.metrics, self.host, self.requested_port = metrics, host, port
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("metrics server not set up")
        return self._server.server_address[1]

    def setup(self) -> None:
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/metrics":
                    body, ctype = metrics.render().encode(), "text/plain; version=0.0.4"
                elif self.path == "/healthz":
                    body, ctype = b"ok\n", "text/plain"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:  # scrapes are not worth a log line
                pass

        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        log.info("metrics endpoint", extra={"url": f"http://{self.host}:{self.port}/metrics"})

    def run_forever(self) -> None:
        assert self._server is not None
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            # shutdown() blocks until serve_forever returns, so never call it from that thread.
            threading.Thread(target=self._server.shutdown, daemon=True).start()

    def cleanup(self) -> None:
        if self._server is not None:
            self._server.server_close()
