"""The gateway's parts that need no chain: hashed API keys and spending limits, the
keys commands, the loopback rule, log redaction, how requests are packed into posts."""

import asyncio
import json
import logging
import stat
import subprocess
import sys

import pytest
from pydantic import ValidationError

from client.protocol import MAX_BATCH
from gateway.config import GatewayConfig
from gateway.keys import KeyPolicy, KeyStore, OverLimit, hash_secret
from gateway.server import RedactingFormatter, redactor
from gateway.service import Order, Terms, _chunks
from tests.e2e.cluster import python_env


def test_keys_are_stored_hashed_and_limits_hold_across_restarts(tmp_path):
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    record, secret = store.create("app", spend_limit=100, policy=KeyPolicy(r=3))
    text = path.read_text()
    assert secret not in text and hash_secret(secret) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.authenticate(secret).id == record.id
    assert store.authenticate(secret + "x") is None and store.authenticate("") is None

    store.reserve(record.id, 60)
    with pytest.raises(OverLimit):
        store.reserve(record.id, 41)
    store.release(record.id, 10)
    store.reserve(record.id, 50)

    again = KeyStore(path)  # a restarted gateway
    [loaded] = again.records()
    assert (loaded.spent, loaded.spend_limit, loaded.policy.r) == (100, 100, 3)
    with pytest.raises(OverLimit):
        again.reserve(record.id, 1)
    again.revoke(record.id)
    assert KeyStore(path).authenticate(secret) is None and len(KeyStore(path)) == 0


def gateway_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=python_env(), capture_output=True,
                          text=True, timeout=60)


def test_keys_commands(tmp_path):
    path = str(tmp_path / "keys.json")
    added = gateway_command("keys", "add", "--file", path, "--name", "app", "--limit", "1.5", "--r", "3",
                            "--until", "settled")
    assert added.returncode == 0, added.stderr
    key_id, secret = added.stdout.split()
    assert secret.startswith("vk-") and secret not in (tmp_path / "keys.json").read_text()
    listed = gateway_command("keys", "list", "--file", path)
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert record["id"] == key_id and record["spend_limit"] == 15 * 10**17
    assert record["policy"] == {"r": 3, "reward": None, "until": "settled"} and secret not in listed.stdout
    assert gateway_command("keys", "revoke", "--file", path, key_id).returncode == 0
    assert KeyStore(tmp_path / "keys.json").authenticate(secret) is None


def test_beyond_loopback_only_with_keys(tmp_path):
    assert GatewayConfig(reward=1).loopback and GatewayConfig(host="::1", reward=1).loopback
    assert GatewayConfig(host="localhost", reward=1).loopback
    with pytest.raises(ValidationError, match="needs API keys"):
        GatewayConfig(host="0.0.0.0", reward=1)
    assert not GatewayConfig(host="0.0.0.0", reward=1, keys_path=tmp_path / "k.json").loopback
    # Refused before connecting to anything.
    refused = gateway_command("serve", "--host", "0.0.0.0", "--reward", "0.01", "--rpc", "http://127.0.0.1:1")
    assert refused.returncode != 0 and "needs API keys" in refused.stderr


def test_logs_never_show_the_private_key():
    key = "0x" + "5a" * 32
    formatter = RedactingFormatter("%(message)s", redactor([key]))
    try:
        raise ValueError(f"bad key {key.upper()[2:]}")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "signing with %s", (key,), sys.exc_info())
    text = formatter.format(record)
    assert "5a5a" not in text.lower() and text.count("[redacted]") == 2


def test_requests_are_packed_into_posts_by_terms():
    loop = asyncio.new_event_loop()
    try:
        one, three = Terms(b"m" * 32, 1, 10, "result"), Terms(b"m" * 32, 3, 10, "result")

        def order(terms, n):
            return Order(terms, [b"x"] * n, loop.create_future())

        orders = [order(one, 20), order(three, 1), order(one, 12), order(one, 1), order(one, MAX_BATCH)]
        packed = [(terms.r, [len(o.inputs) for o in chunk]) for terms, chunk in _chunks(orders)]
        assert packed == [(1, [20, 12]), (1, [1]), (1, [MAX_BATCH]), (3, [1])]
    finally:
        loop.close()
