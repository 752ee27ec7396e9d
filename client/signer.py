"""Sending transactions: sign locally with eth_account, send raw, wait for the receipt,
map reverts to named errors. Much faster than going through ape for every transaction.

>>> isinstance(fee_fields({"baseFeePerGas": 10}, priority=1), dict)
True
"""
from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound

from client.errors import ContractError, TransactionTimeout, UnknownRevert
from client.transport import translate_errors

DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei when the node can't suggest one


def fee_fields(latest_block: dict, priority: int) -> dict:
    """Fee fields for a new transaction: EIP-1559 where the chain has a base fee.

    The max fee allows the base fee to double before the transaction is stuck.

    >>> fee_fields({"baseFeePerGas": 100}, priority=1)
    {'maxFeePerGas': 201, 'maxPriorityFeePerGas': 1}
    """
    base = latest_block.get("baseFeePerGas")
    if base is None:
        return {}
    return {"maxFeePerGas": 2 * base + priority, "maxPriorityFeePerGas": priority}


class Signer:
    """Signs with a local account, sends raw, waits for the receipt, maps reverts.

    A reverting transaction is caught before sending, at gas estimation or, with a
    fixed ``gas_limit``, by a dry run (``eth_call``): the revert string becomes a named
    error. One that reverts once mined is replayed to learn why. A fixed limit suits
    ape's embedded chain, whose gas estimation re-executes a transaction a dozen times
    (EIP-1559 charges the gas used, not the limit).

    >>> from client.accounts import load_account
    >>> from client.transport import http_web3
    >>> signer = Signer(http_web3("http://127.0.0.1:1"), load_account("0x" + "01" * 32))
    >>> signer.address[:6]
    '0x1a64'
    """

    def __init__(self, w3: Web3, account: LocalAccount, *, gas_limit: int | None = None,
                 gas_margin: float = 1.25, receipt_timeout: float = 120.0, poll_interval: float = 0.05):
        self.w3, self.account = w3, account
        self.gas_limit, self.gas_margin = gas_limit, gas_margin
        self.receipt_timeout, self.poll_interval = receipt_timeout, poll_interval
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return self.account.address

    def send(self, tx: dict, *, gas: int | None = None, wait: bool = True) -> Any:
        """Sign and send ``tx`` (``to``, ``data``, optional ``value``); the receipt, or the
        transaction hash when ``wait`` is False.

        >>> signer.send({"to": signer.address, "data": "0x"})  # doctest: +SKIP
        """
        with translate_errors():
            if self._chain_id is None:
                self._chain_id = self.w3.eth.chain_id
            request = {"from": self.address, "value": 0, **tx}
            # Estimated (or dry-run) in the pending block, where the transaction will land:
            # a claim right after a post draws the seats there, but not in the post's own
            # block (nodes simulate "latest" in its block: "jobs: draw not ready", ~5x less gas).
            if gas is None and self.gas_limit is None:
                gas = int(self.w3.eth.estimate_gas(request, "pending") * self.gas_margin)
            elif gas is None:
                self.w3.eth.call(request, "pending")
                gas = self.gas_limit
            full = {
                **request,
                "gas": gas,
                "chainId": self._chain_id,
                "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
                **self._fees(),
            }
            full.pop("from")
            tx_hash = self.w3.eth.send_raw_transaction(self.account.sign_transaction(full).raw_transaction)
        if not wait:
            return tx_hash
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            raise self._why_reverted(request, receipt)
        return receipt

    def wait(self, tx_hash: bytes) -> Any:
        """The receipt of ``tx_hash`` once mined; ``TransactionTimeout`` after ``receipt_timeout``."""
        give_up = time.monotonic() + self.receipt_timeout
        while True:
            with translate_errors():
                try:
                    return self.w3.eth.get_transaction_receipt(tx_hash)
                except TransactionNotFound:
                    pass
            if time.monotonic() > give_up:
                raise TransactionTimeout(f"transaction 0x{bytes(tx_hash).hex()} not mined after "
                                         f"{self.receipt_timeout:.0f}s", "0x" + bytes(tx_hash).hex())
            time.sleep(self.poll_interval)

    def _fees(self) -> dict:
        latest = self.w3.eth.get_block("latest")
        if latest.get("baseFeePerGas") is None:
            return {"gasPrice": self.w3.eth.gas_price}
        try:
            priority = self.w3.eth.max_priority_fee
        except Exception:  # nodes without eth_maxPriorityFeePerGas
            priority = DEFAULT_PRIORITY_FEE
        return fee_fields(latest, priority)

    def _why_reverted(self, request: dict, receipt: Any) -> ContractError:
        # The state moved between estimation and inclusion: replay on the parent block.
        try:
            with translate_errors():
                self.w3.eth.call(request, receipt["blockNumber"] - 1)
        except ContractError as exc:
            return exc
        return UnknownRevert("", f"transaction 0x{bytes(receipt['transactionHash']).hex()} reverted")
