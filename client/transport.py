"""Getting a Web3 and a signing account, and sending transactions.

Two ways in: an ape network choice (``ethereum:local:test``, ``ethereum:local:foundry``,
...) using the connected ape provider's ``web3`` and an ape account, or a plain RPC URL
plus a private key. Either way transactions are signed locally with eth_account and
sent raw: much faster than going through ape for every transaction.

>>> isinstance(fee_fields({"baseFeePerGas": 10}, priority=1), dict)
True
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ProviderConnectionError, TransactionNotFound

from client.chain import http_web3
from client.errors import (ConfigError, ContractError, RpcUnavailable, TransactionTimeout,
                           UnknownRevert, error_for_revert, revert_reason)

DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei when the node can't suggest one


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn web3 / eth-tester / HTTP failures into ``VerinferError``s.

    Reverts become the named ``ContractError`` for their reason; a node that can't be
    reached becomes ``RpcUnavailable``.

    >>> with translate_errors():
    ...     pass
    """
    try:
        yield
    except ContractError:
        raise
    except (OSError, ProviderConnectionError) as exc:
        raise RpcUnavailable(f"RPC endpoint unreachable: {exc}") from exc
    except Exception as exc:
        reason = revert_reason(exc)
        if reason is None and "revert" not in str(exc).lower():
            raise
        raise error_for_revert(reason) from exc


@dataclass
class Connection:
    """A Web3 on some network, optionally with the account that signs for the caller.

    ``close()`` leaves an ape network this connection entered.
    """

    w3: Web3
    network: str
    account: LocalAccount | None = None
    gas_limit: int | None = None  # fixed limit instead of estimation (see ``Signer``)
    _ape_context: Any = field(default=None, repr=False)

    def close(self) -> None:
        if self._ape_context is not None:
            self._ape_context.__exit__(None, None, None)
            self._ape_context = None


def connect_rpc(url: str, private_key: str | None = None, *, timeout: float = 30.0) -> Connection:
    """A connection to an HTTP(S) JSON-RPC endpoint, signing with ``private_key`` if given.

    >>> conn = connect_rpc("http://127.0.0.1:1")  # no request is made yet
    >>> conn.network
    'http://127.0.0.1:1'
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"RPC URL must be http(s)://..., got {url!r}")
    return Connection(http_web3(url, timeout), url, account_from_key(private_key) if private_key else None)


def connect_ape(network: str | None = None, account: Any = None) -> Connection:
    """A connection through ape: ``network`` is an ape network choice (None: the connected
    or default one), ``account`` an ape account, an alias or ``"TEST::<n>"``.

    Inside ``ape test`` / ``ape run`` the already connected provider is reused.

    >>> conn = connect_ape("ethereum:local:test", "TEST::0")  # doctest: +SKIP
    """
    from ape import networks
    from ape.exceptions import ApeException

    context = None
    provider = networks.active_provider
    if provider is None or (network and not _same_network(provider.network_choice, network)):
        try:
            context = networks.parse_network_choice(network)
            provider = context.__enter__()
        except ApeException as exc:
            raise ConfigError(f"cannot connect to ape network {network!r}: {exc}") from exc
    local = ape_local_account(account) if account is not None else None
    # ape's embedded chain (eth-tester) estimates gas by bisection: use the block limit.
    gas_limit = provider.web3.eth.get_block("latest")["gasLimit"] if provider.name == "test" else None
    return Connection(provider.web3, provider.network_choice, local, gas_limit, context)


def _same_network(active: str, wanted: str) -> bool:
    # "ethereum:local" matches "ethereum:local:test"; a given provider must match too.
    return active.split(":")[: len(wanted.split(":"))] == wanted.split(":")


def account_from_key(private_key: str) -> LocalAccount:
    """An eth_account signer from a hex private key.

    >>> account_from_key("0x" + "01" * 32).address[:6]
    '0x1a64'
    """
    try:
        return Account.from_key(private_key)
    except Exception as exc:  # eth_account raises several types for malformed keys
        raise ConfigError(f"invalid private key: {exc}") from None


def ape_local_account(account: Any) -> LocalAccount:
    """An eth_account signer for an ape account (object, alias or ``"TEST::<n>"``).

    Test accounts expose their keys; keyfile accounts are decrypted with the passphrase
    in ``APE_ACCOUNTS_<alias>_PASSPHRASE``.

    >>> ape_local_account("TEST::0").address  # doctest: +SKIP
    '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'
    """
    from ape import accounts

    if isinstance(account, str):
        if account.upper().startswith("TEST::"):
            try:
                account = accounts.test_accounts[int(account.split("::", 1)[1])]
            except (ValueError, IndexError) as exc:
                raise ConfigError(f"no ape test account {account!r}") from exc
        else:
            try:
                account = accounts.load(account)
            except Exception as exc:  # ape raises its own AccountsError for unknown aliases
                raise ConfigError(f"no ape account with alias {account!r}") from exc
    key = getattr(account, "private_key", None)
    if key:
        return account_from_key(key)
    keyfile = getattr(account, "keyfile_path", None)
    if keyfile is None:
        raise ConfigError(f"ape account {account} exposes no key (hardware or remote signer?)")
    alias = getattr(account, "alias", "")
    passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
    if passphrase is None:
        raise ConfigError(f"set APE_ACCOUNTS_{alias}_PASSPHRASE to unlock ape account {alias!r}")
    try:
        return Account.from_key(Account.decrypt(json.loads(keyfile.read_text()), passphrase))
    except ValueError as exc:
        raise ConfigError(f"cannot decrypt ape account {alias!r}: {exc}") from None


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

    >>> signer = Signer(connect_rpc("http://127.0.0.1:1").w3, account_from_key("0x" + "01" * 32))
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
