"""A tiny Vyper contract that emits events, for the watcher and tx-manager tests."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests.support.anvil import send_signed

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
