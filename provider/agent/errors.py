"""Typed errors of the provider agent, under the SDK's root (``client.errors.VerinferError``):
one ``except VerinferError`` catches the agent's and the SDK's alike. Bad settings, an
unusable account and an unreachable node are the SDK's ``ConfigError``, ``AccountError``
and ``RpcUnavailable``. Each subclass also inherits the matching builtin."""

from __future__ import annotations

from client.errors import VerinferError


class AgentError(VerinferError):
    """Root of every error the agent raises on purpose, other than the SDK's."""


class PreflightError(AgentError, RuntimeError):
    """A start-up check failed (no gas funds, no stake, wrong chain, ...): one line each."""


class StoreError(AgentError, RuntimeError):
    """The agent database is unusable (written by a newer agent, corrupt)."""


class TxError(AgentError, RuntimeError):
    """A transaction could not be prepared, sent or confirmed."""


class TxWouldRevert(TxError):
    """Gas estimation says the transaction reverts; it was not recorded or sent."""


class TxTimeout(TxError, TimeoutError):
    """A transaction was not confirmed within the time asked for."""


class ReorgTooDeep(AgentError, RuntimeError):
    """A reorg reaches below the oldest block hash the watcher remembers."""
