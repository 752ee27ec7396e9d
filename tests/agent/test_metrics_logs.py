"""Prometheus text metrics over real HTTP, and structured key=value / JSON logs."""

import io
import json
import logging
import threading
import urllib.error
import urllib.request

import pytest

from provider.agent.logs import configure_logging
from provider.agent.metrics import Metrics, MetricsServer, watch_store
from provider.agent.store import JobState, Store


def test_prometheus_text_format():
    metrics = Metrics()
    sent = metrics.counter("verinfer_tx_broadcasts_total", "Signed transactions sent")
    sent.inc(kind="claim")
    sent.inc(2, kind="commit")
    gauge = metrics.gauge("verinfer_jobs", "Jobs by state")
    gauge.replace({"claimed": 3, "paid": 1.5}, label="state")
    metrics.gauge("verinfer_note", "escaping").set(1, text='a"b\\c\nd')
    text = metrics.render()
    assert text.splitlines() == [
        "# HELP verinfer_jobs Jobs by state",
        "# TYPE verinfer_jobs gauge",
        'verinfer_jobs{state="claimed"} 3',
        'verinfer_jobs{state="paid"} 1.5',
        "# HELP verinfer_note escaping",
        "# TYPE verinfer_note gauge",
        'verinfer_note{text="a\\"b\\\\c\\nd"} 1',
        "# HELP verinfer_tx_broadcasts_total Signed transactions sent",
        "# TYPE verinfer_tx_broadcasts_total counter",
        'verinfer_tx_broadcasts_total{kind="claim"} 1',
        'verinfer_tx_broadcasts_total{kind="commit"} 2',
    ]
    with pytest.raises(ValueError):
        sent.inc(-1)
    with pytest.raises(TypeError):
        sent.set(5)
    with pytest.raises(ValueError):
        metrics.gauge("verinfer_tx_broadcasts_total", "same name, other kind")


def test_collectors_refresh_and_a_broken_one_is_contained():
    metrics = Metrics()
    head = metrics.gauge("verinfer_head_block", "Chain head")
    calls = []
    metrics.add_collector(lambda: (calls.append(1), head.set(42)))
    metrics.add_collector(lambda: 1 / 0)
    assert "verinfer_head_block 42" in metrics.render()
    assert calls == [1]


def test_store_gauges_follow_the_store(tmp_path):
    store = Store(tmp_path / "agent.db")
    metrics = Metrics()
    watch_store(metrics, store)
    assert 'verinfer_jobs{state="claimed"} 0' in metrics.render()
    store.add_job(1, b"m" * 32, state=JobState.CLAIMED, collateral=7)
    store.add_job(2, b"m" * 32, state=JobState.PAID, reward=3)
    text = metrics.render()
    assert 'verinfer_jobs{state="claimed"} 1' in text and 'verinfer_jobs{state="paid"} 1' in text
    assert "verinfer_stake_at_risk 7" in text and "verinfer_earnings 3" in text
    assert 'verinfer_txs{status="pending"} 0' in text and "verinfer_gas_spent_wei 0" in text


def test_http_endpoint_serves_metrics_and_health():
    metrics = Metrics()
    metrics.counter("verinfer_events_total", "Events delivered").inc(7)
    server = MetricsServer(metrics, port=0)
    server.setup()
    thread = threading.Thread(target=server.run_forever)
    thread.start()
    base = f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(base + "/metrics", timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        assert "verinfer_events_total 7" in answer.read().decode()
    with urllib.request.urlopen(base + "/healthz", timeout=5) as answer:
        assert answer.read() == b"ok\n"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(base + "/nope", timeout=5)
    assert missing.value.code == 404
    server.stop()
    thread.join(10)
    assert not thread.is_alive()
    server.cleanup()
    with pytest.raises(OSError):  # the socket is closed after cleanup
        urllib.request.urlopen(base + "/healthz", timeout=2)


@pytest.fixture
def logged():
    stream = io.StringIO()

    def setup(fmt):
        configure_logging("DEBUG", fmt, stream=stream)
        return stream

    yield setup
    configure_logging("INFO", "kv")


def test_key_value_logs(logged):
    stream = logged("kv")
    logging.getLogger("verinfer.agent.tx").info(
        "tx sent", extra={"tx_id": 3, "hash": b"\xab\xcd", "note": "two words"})
    line = stream.getvalue().strip()
    assert " level=info logger=verinfer.agent.tx " in line
    assert line.endswith('msg="tx sent" tx_id=3 hash=0xabcd note="two words"')


def test_default_handler_follows_stderr_redirection(logged, monkeypatch):
    # rich's Live dashboard swaps sys.stderr while it runs; log lines must go there.
    configure_logging("INFO", "kv")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    logging.getLogger("verinfer.agent.jobs").info("job seen", extra={"job_id": 1})
    assert 'msg="job seen" job_id=1' in swapped.getvalue()


def test_json_logs_with_exception(logged):
    stream = logged("json")
    try:
        raise ValueError("bad job")
    except ValueError:
        logging.getLogger("verinfer.agent.jobs").exception("job failed", extra={"job_id": 9})
    doc = json.loads(stream.getvalue())
    assert doc["msg"] == "job failed" and doc["job_id"] == 9 and doc["level"] == "error"
    assert "ValueError: bad job" in doc["exc"]
