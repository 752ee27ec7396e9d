"""The local dev chain, for the tests and the benches alike: an anvil node on a free
port, its JSON-RPC, and stopping it.

>>> node = start_anvil()            # doctest: +SKIP
>>> node.rpc("eth_blockNumber")     # doctest: +SKIP
'0x0'
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from client.transport import http_web3

REPO = Path(__file__).resolve().parents[1]
ANVIL = shutil.which("anvil", path=str(REPO / "node_modules" / ".bin")) or shutil.which("anvil")
# A node outlives a test or bench killed with SIGKILL unless the kernel stops it: started
# through util-linux's setpriv, it gets SIGTERM when the thread that started it ends
# (npm's launcher passes that on to anvil). Where setpriv is missing, stop() alone.
_DIES_WITH_US = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def w3(self) -> Web3:
        return http_web3(self.url, timeout=5)

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


def start_anvil(*args: str, log: Path | None = None, timeout: float = 30) -> Anvil:
    """An anvil on a free port with ``args``, answering RPC; the caller must stop() it
    (it stops by itself once the calling thread ends, where setpriv exists: call from a
    thread that outlives it). Its output goes to ``log`` (default: none, ``--silent``).
    ``RuntimeError`` if it cannot start."""
    if ANVIL is None:
        raise RuntimeError("anvil not found: run ./verinfer.sh setup (npm install)")
    port = free_port()
    command = [*_DIES_WITH_US, ANVIL, "--port", str(port), *args]
    if log is None:
        node = Anvil(subprocess.Popen([*command, "--silent"]), port)
    else:
        with log.open("w") as out:
            node = Anvil(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), port)
    give_up = time.monotonic() + timeout
    while True:
        try:
            node.rpc("eth_blockNumber")
            return node
        except OSError:
            if node.proc.poll() is not None or time.monotonic() > give_up:
                node.stop()
                raise RuntimeError(f"anvil did not start (exit {node.proc.poll()})") from None
            time.sleep(0.05)
