"""Real-chain helpers for the agent tests: anvil processes, a fault-injecting RPC relay,
and a tiny Vyper contract that emits events."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from client.marketplace import Marketplace, Token

from provider.agent.rpc import connect

REPO = Path(__file__).resolve().parents[2]
ANVIL = shutil.which("anvil", path=str(REPO / "node_modules" / ".bin")) or shutil.which("anvil")

# Keys of anvil's (and ape's) default test mnemonic.
ANVIL_KEYS = {
    1: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    9: "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
}

PING_SOURCE = """# pragma version ~=0.4.3
event Ping:
    sender: indexed(address)
    n: uint256
    note: Bytes[64]

@external
def ping(n: uint256, note: Bytes[64]):
    log Ping(sender=msg.sender, n=n, note=note)

@external
def fail():
    raise "ping: always fails"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict[str, str]:
    """Environment for helper scripts: the repo importable, no stray VERINFER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERINFER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@dataclass
class Anvil:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def w3(self) -> Web3:
        return connect(self.url, timeout=5)

    def rpc(self, method: str, *params):
        response = self.w3().provider.make_request(method, list(params))
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_anvil(*args: str) -> Anvil:
    """An anvil on a free port, answering RPC; the caller must stop() it."""
    if ANVIL is None:
        raise RuntimeError("anvil not found: run ./verinfer.sh setup (npm install)")
    port = free_port()
    node = Anvil(subprocess.Popen([ANVIL, "--port", str(port), "--silent", *args]), port)
    give_up = time.monotonic() + 20
    while True:
        try:
            node.rpc("eth_blockNumber")
            return node
        except OSError:
            if node.proc.poll() is not None or time.monotonic() > give_up:
                node.stop()
                raise RuntimeError(f"anvil did not start (exit {node.proc.poll()})") from None
            time.sleep(0.05)


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


class Ping:
    """The deployed Ping contract; with automine each ping() is one block with one event."""

    def __init__(self, w3: Web3, account: LocalAccount, artifacts: dict):
        self.w3, self.account, self.abi = w3, account, artifacts["abi"]
        receipt = send_signed(w3, account, {"data": artifacts["bytecode"]})
        self.address = receipt["contractAddress"]
        self.deploy_block = receipt["blockNumber"]
        self.contract = w3.eth.contract(address=self.address, abi=self.abi)

    def calldata(self, fn: str = "ping", *args) -> bytes:
        return bytes.fromhex(self.contract.encode_abi(fn, list(args))[2:])

    def ping(self, n: int, note: bytes = b"") -> dict:
        return send_signed(self.w3, self.account,
                           {"to": self.address, "data": self.calldata("ping", n, note)})

    def logged(self) -> list[tuple[int, int]]:
        """(block, n) of every Ping on the current canonical chain."""
        logs = self.contract.events.Ping().get_logs(from_block=0, to_block="latest")
        return [(log["blockNumber"], log["args"]["n"]) for log in logs]


class RpcProxy:
    """An HTTP JSON-RPC relay in front of a node, for outages and refused methods.

    `down()` closes the listening socket (clients get 'connection refused', a real
    outage); `up()` listens on the same port again. Methods in `fail` are answered
    with HTTP 503 instead of being forwarded; with `log_range_limit` set, eth_getLogs
    over more blocks than that gets a JSON-RPC error, as public RPC providers answer.
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
                body = self.rfile.read(int(self.headers["Content-Length"]))
                call = json.loads(body)
                if call.get("method") in relay.fail:
                    self.send_error(503)
                    return
                if call.get("method") == "eth_getLogs" and relay.log_range_limit is not None:
                    query = call["params"][0]
                    span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
                    if span > relay.log_range_limit:
                        self.reply(json.dumps({"jsonrpc": "2.0", "id": call["id"], "error": {
                            "code": -32005, "message": "block range too large"}}).encode())
                        return
                request = urllib.request.Request(
                    relay.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=10) as upstream:
                    self.reply(upstream.read())

            def reply(self, answer: bytes) -> None:
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

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def funded_account(index: int) -> LocalAccount:
    """ape's (= anvil's) funded test account `index`."""
    import ape
    from eth_account import Account

    return Account.from_key(ape.accounts.test_accounts[index].private_key)


def deploy(w3: Web3, account: LocalAccount, contract: str, *args) -> str:
    """Deploy a contract of this project (compiled by ape) with constructor `args`."""
    from ape import project
    from eth_abi import encode

    contract_type = getattr(project, contract).contract_type
    ctor = next((i for i in contract_type.abi if i.type == "constructor"), None)
    types = [p.canonical_type for p in ctor.inputs] if ctor else []
    data = contract_type.deployment_bytecode.to_bytes() + encode(types, list(args))
    receipt = send_signed(w3, account, {"data": data, "gas": 15_000_000})
    assert receipt["status"] == 1, f"deploying {contract} failed"
    return receipt["contractAddress"]


def transact(w3: Web3, account: LocalAccount, call) -> dict:
    """Send an SDK `Call` from `account`; the receipt, which must succeed."""
    receipt = send_signed(w3, account, {"to": call.to, "data": call.data, "gas": 5_000_000})
    assert receipt["status"] == 1, f"{call.function} reverted"
    return receipt


def deploy_market(w3: Web3, owner: LocalAccount, model_id: bytes,
                  challenge_window: int) -> tuple[int, Marketplace, Token]:
    """Token + Marketplace with the engine's model registered: (start block, market, token)."""
    token = deploy(w3, owner, "TestToken", "Verinfer Test", "VIT")
    address = deploy(w3, owner, "Marketplace", token, token, owner.address)
    start_block = w3.eth.block_number
    market, token_ = Marketplace(w3, address), Token(w3, token)
    transact(w3, owner, market.build(
        "register_model", model_id, "all-MiniLM-L6-v2", keccak(b"weights"), 1))
    transact(w3, owner, market.build("set_challenge_window", challenge_window))
    return start_block, market, token_
