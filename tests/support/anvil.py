"""anvil nodes for tests (started by bench.devchain, the launcher the benches use too):
relay one through a proxy that can go down; anvil's funded test accounts and plain
signed sends."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eth_account.signers.local import LocalAccount
from web3 import Web3

from bench.devchain import REPO, Anvil, free_port, start_anvil  # noqa: F401 (the tests' names for them)
from client.accounts import load_account

# Keys of anvil's (and ape's) default test mnemonic.
ANVIL_KEYS = {
    1: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    9: "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
}

def subprocess_env() -> dict[str, str]:
    """Environment for helper scripts: the repo importable, no stray VERINFER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERINFER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def send_signed(w3: Web3, account: LocalAccount, tx: dict, *, wait: bool = True):
    """Sign and send from `account` with a fresh nonce and fees; the receipt (or hash)."""
    block = w3.eth.get_block("latest")
    full = {
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "maxFeePerGas": 2 * block["baseFeePerGas"] + 10**9,
        "maxPriorityFeePerGas": 10**9,
        "gas": 500_000,
        "value": 0,
        **tx,
    }
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(full).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30) if wait else tx_hash


class RpcProxy:
    """An HTTP JSON-RPC relay in front of a node, for outages and refused methods.

    `down()` closes the listening socket (clients get 'connection refused', a real
    outage); `up()` listens on the same port again. Requests calling a method in
    `fail` are answered with HTTP 503 instead of being forwarded; with
    `log_range_limit` set, eth_getLogs over more blocks than that gets a JSON-RPC
    error, as public RPC providers answer. JSON-RPC batches are relayed call by call's
    rules, as a node answers them.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.port = free_port()
        self.fail: set[str] = set()
        self.log_range_limit: int | None = None
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls = payload if isinstance(payload, list) else [payload]
                if any(call.get("method") in relay.fail for call in calls):
                    self.send_error(503)
                    return
                refused = {call["id"]: error for call in calls if (error := relay.refusal(call))}
                if not isinstance(payload, list):
                    self.reply(refused.get(payload["id"]) or self.upstream(payload))
                    return
                forward = [call for call in calls if call["id"] not in refused]
                answers = self.upstream(forward) if forward else []
                if not isinstance(answers, list):  # the node refused the batch as a whole
                    self.reply(answers)
                    return
                by_id = {answer["id"]: answer for answer in answers} | refused
                self.reply([by_id[call["id"]] for call in calls])

            def upstream(self, payload: dict | list) -> dict | list:
                request = urllib.request.Request(
                    relay.upstream, data=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as upstream:
                    return json.loads(upstream.read())

            def reply(self, answer: dict | list) -> None:
                answer = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def refusal(self, call: dict) -> dict | None:
        """The error a public node answers `call` with, or None to forward it."""
        if call.get("method") != "eth_getLogs" or self.log_range_limit is None:
            return None
        query = call["params"][0]
        if int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1 <= self.log_range_limit:
            return None
        return {"jsonrpc": "2.0", "id": call["id"],
                "error": {"code": -32005, "message": "block range too large"}}

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def funded_account(index: int) -> LocalAccount:
    """ape's (= anvil's) funded test account `index`."""
    return load_account(f"TEST::{index}")
