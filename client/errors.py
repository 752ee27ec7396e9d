"""Every error the SDK raises, and the table mapping contract revert strings to them.

One root, ``VerinferError``; each subclass also inherits the builtin it resembles, so
``except LookupError`` catches an unknown job as naturally as ``except JobNotFound``.
Contract reverts are ``ContractError`` subclasses chosen by the exact revert string
(``REVERTS``); a test parses every ``"area: reason"`` string out of contracts/ and fails
when one is missing here.

>>> err = error_for_revert("jobs: unknown job")
>>> isinstance(err, JobNotFound) and isinstance(err, LookupError), err.reason
(True, 'jobs: unknown job')
"""
from __future__ import annotations

import re


class VerinferError(Exception):
    """Root of every error raised by the Verinfer SDK."""


# ---------------------------------------------------------------- client side


class ConfigError(VerinferError, ValueError):
    """Bad settings: unknown network, missing account or key, an invalid config file
    (the provider agent's, the gateway's)."""


class AccountError(ConfigError):
    """The signing account cannot be loaded (``client.accounts``): a malformed key, an
    unknown alias or test account, a missing or wrong passphrase."""


class DeploymentNotFound(VerinferError, LookupError):
    """No marketplace recorded (or no code at the recorded address) for this chain."""


class InvalidInput(VerinferError, ValueError):
    """An argument the contract would reject, caught before sending anything."""


class RpcUnavailable(VerinferError, ConnectionError):
    """The RPC endpoint did not answer (the provider agent: for every retry)."""


class TransactionTimeout(VerinferError, TimeoutError):
    """A sent transaction was not mined in time; ``tx_hash`` says which."""

    def __init__(self, message: str, tx_hash: str):
        super().__init__(message)
        self.tx_hash = tx_hash


class WaitTimeout(VerinferError, TimeoutError):
    """Jobs did not reach the awaited state in time; ``jobs`` holds their last view."""

    def __init__(self, message: str, jobs: dict):
        super().__init__(message)
        self.jobs = jobs


class ResultUnavailable(VerinferError, LookupError):
    """The job has no standing result (still running, cancelled or without majority)."""


class ResultMismatch(VerinferError, ValueError):
    """Result bytes whose digest differs from the one the chain settled on."""


class EncodingError(VerinferError, ValueError):
    """Bytes that are not a valid result in a known format (``client.encoding``, ``client.chat``)."""


# ---------------------------------------------------------------- contract reverts


class ContractError(VerinferError):
    """A transaction or call the marketplace (or its token) reverted.

    ``reason`` is the contract's revert string, e.g. ``"jobs: bad window"``.
    """

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message or reason)
        self.reason = reason


class UnknownRevert(ContractError, RuntimeError):
    """A revert without a reason string, or one this SDK version does not know."""


class InvalidArgument(ContractError, ValueError):
    """The contract rejected an argument (zero amount, bad window, length mismatch...)."""


class InsufficientFunds(ContractError, ValueError):
    """Not enough token balance, allowance or internal balance for the payment."""


class InsufficientStake(InsufficientFunds):
    """Not enough free stake to lock the collateral (or to unbond)."""


class Unauthorized(ContractError, PermissionError):
    """The sender may not do this (not the owner, not the job's client, not drawn for a
    seat, not the seat's holder)."""


class JobNotFound(ContractError, LookupError):
    """No job with this id."""


class ModelNotFound(ContractError, LookupError):
    """No registered model with this id."""


class ModelInactive(ContractError, ValueError):
    """The model is registered but takes no new jobs."""


class ModelNotServed(ContractError, ValueError):
    """The provider does not declare the job's model."""


class MarketplacePaused(ContractError, RuntimeError):
    """The owner paused new posts, claims and deliveries."""


class DeadlinePassed(ContractError, TimeoutError):
    """The window for this action is closed."""


class TooEarly(ContractError, RuntimeError):
    """The action is not open yet (seat draw, r = 1 delivery after its claim's block,
    reveal phase, finalization, unbond delay)."""


class InvalidJobState(ContractError, RuntimeError):
    """The job (or seat, or provider) is not in a state that allows this action."""


class SealMismatch(ContractError, ValueError):
    """A reveal whose (result, salt) does not reproduce the committed seal."""


class TransferFailed(ContractError, RuntimeError):
    """A token transfer returned false."""


REVERTS: dict[str, type[ContractError]] = {
    # params
    "params: zero treasury": InvalidArgument,
    "params: too many treasuries": InvalidArgument,
    "params: fee too high": InvalidArgument,
    "params: collateral out of bounds": InvalidArgument,
    "params: split exceeds 100%": InvalidArgument,
    "params: window out of bounds": InvalidArgument,
    "params: delay out of bounds": InvalidArgument,
    "params: stake out of bounds": InvalidArgument,
    "params: paused": MarketplacePaused,
    # models
    "models: zero id": InvalidArgument,
    "models: already registered": InvalidJobState,
    "models: registry full": InvalidJobState,
    "models: unknown model": ModelNotFound,
    "models: inactive": ModelInactive,
    # accounting
    "accounting: zero token": InvalidArgument,
    "accounting: zero amount": InvalidArgument,
    "accounting: nothing to withdraw": InsufficientFunds,
    "accounting: transfer failed": TransferFailed,
    # staking
    "staking: already registered": InvalidJobState,
    "staking: not registered": Unauthorized,
    "staking: zero amount": InvalidArgument,
    "staking: insufficient free stake": InsufficientStake,
    "staking: nothing unbonding": InvalidJobState,
    "staking: unbond delay not passed": TooEarly,
    "staking: price too large": InvalidArgument,
    "staking: amount too large": InvalidArgument,
    "staking: model not served": ModelNotServed,
    # sortition
    "sortition: model full": InvalidJobState,
    # jobs
    "jobs: unknown job": JobNotFound,
    "jobs: empty batch": InvalidArgument,
    "jobs: bad redundancy": InvalidArgument,
    "jobs: bad reward": InvalidArgument,
    "jobs: bad window": InvalidArgument,
    "jobs: window too short": InvalidArgument,
    "jobs: empty input": InvalidArgument,
    "jobs: empty result": InvalidArgument,
    "jobs: empty seal": InvalidArgument,
    "jobs: bad seat": InvalidArgument,
    "jobs: length mismatch": InvalidArgument,
    "jobs: use deliver": InvalidJobState,
    "jobs: not single-provider": InvalidJobState,
    "jobs: not claimable": InvalidJobState,
    "jobs: not open": InvalidJobState,
    "jobs: draw not ready": TooEarly,
    "jobs: not drawn": Unauthorized,
    "jobs: not your seat": Unauthorized,
    "jobs: claimed in this block": TooEarly,
    "jobs: not active": InvalidJobState,
    "jobs: not assigned": Unauthorized,
    "jobs: not client": Unauthorized,
    "jobs: already committed": InvalidJobState,
    "jobs: not committed": InvalidJobState,
    "jobs: already revealed": InvalidJobState,
    "jobs: already claimed": InvalidJobState,
    "jobs: already settled": InvalidJobState,
    "jobs: not challengeable": InvalidJobState,
    "jobs: claim deadline passed": DeadlinePassed,
    "jobs: commit deadline passed": DeadlinePassed,
    "jobs: reveal deadline passed": DeadlinePassed,
    "jobs: challenge window closed": DeadlinePassed,
    "jobs: reveal not open": TooEarly,
    "jobs: not finalizable yet": TooEarly,
    "jobs: challenge window open": TooEarly,
    "jobs: seal mismatch": SealMismatch,
    # snekmate modules compiled into the marketplace and the test token; token
    # reverts bubble up through the marketplace's transferFrom.
    "ownable: caller is not the owner": Unauthorized,
    "ownable: new owner is the zero address": InvalidArgument,
    "ownable_2step: caller is not the new owner": Unauthorized,
    "erc20: insufficient allowance": InsufficientFunds,
    "erc20: transfer amount exceeds balance": InsufficientFunds,
    "erc20: burn amount exceeds balance": InsufficientFunds,
    "erc20: transfer from the zero address": InvalidArgument,
    "erc20: transfer to the zero address": InvalidArgument,
    "erc20: approve from the zero address": InvalidArgument,
    "erc20: approve to the zero address": InvalidArgument,
    "erc20: mint to the zero address": InvalidArgument,
    "erc20: burn from the zero address": InvalidArgument,
    "erc20: access is denied": Unauthorized,
    "erc20: expired deadline": DeadlinePassed,
    "erc20: invalid signature": Unauthorized,
    "erc20: minter is owner address": InvalidArgument,
    "erc20: minter is the zero address": InvalidArgument,
    "erc20: new owner is the zero address": InvalidArgument,
    "ecdsa: invalid signature": Unauthorized,
    "ecdsa: invalid signature `s` value": Unauthorized,
}

# Error(string): the ABI wrapper of a revert reason.
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_REASON_IN_TEXT = re.compile(r"execution reverted:?\s*(.*)", re.S)


def error_for_revert(reason: str | None) -> ContractError:
    """The named error for a revert string (``UnknownRevert`` when unmapped or empty).

    >>> type(error_for_revert("jobs: bad window")).__name__
    'InvalidArgument'
    """
    if not reason:
        return UnknownRevert("", "reverted without a reason")
    return REVERTS.get(reason, UnknownRevert)(reason)


def revert_reason(exc: BaseException) -> str | None:
    """The revert string carried by a web3 / eth-tester exception, or None if it isn't a revert.

    Nodes put the ABI-encoded ``Error(string)`` in the error data; eth-tester only
    says ``execution reverted: <reason>``. Both are understood.

    >>> revert_reason(RuntimeError("execution reverted: jobs: bad reward"))
    'jobs: bad reward'
    """
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, (str, bytes)):
        reason = _decode_error_data(data)
        if reason is not None:
            return reason
    for arg in (getattr(exc, "message", None), *exc.args):
        if isinstance(arg, dict):
            arg = arg.get("message", "")
        match = _REASON_IN_TEXT.search(str(arg))
        if match:
            return match.group(1).strip().strip("'\"")
    return None


def _decode_error_data(data: str | bytes) -> str | None:
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
    if raw[:4] != _ERROR_SELECTOR:
        return None
    # Imported here: the engine raises these errors too, and a GPU box running
    # only the engine must not load the chain stack (tests/engine/test_engine.py).
    from eth_abi import decode as abi_decode

    try:
        return abi_decode(["string"], raw[4:])[0]
    except Exception:  # malformed revert data: fall back to the message text
        return None
