"""Typed errors of the provider agent: one root; subclasses also inherit the matching builtin."""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(AgentError, ValueError):
    """The agent configuration file or environment is invalid."""


class PreflightError(AgentError, RuntimeError):
    """A start-up check failed (no gas funds, no stake, wrong chain, ...): one line each."""


class AccountError(AgentError, ValueError):
    """The signing account cannot be loaded (unknown alias, missing passphrase, bad keyfile)."""


class StoreError(AgentError, RuntimeError):
    """The agent database is unusable (written by a newer agent, corrupt)."""


class RpcUnavailable(AgentError, ConnectionError):
    """The RPC endpoint stayed unreachable for every retry."""


class TxError(AgentError, RuntimeError):
    """A transaction could not be prepared, sent or confirmed."""


class TxWouldRevert(TxError):
    """Gas estimation says the transaction reverts; it was not recorded or sent."""


class TxTimeout(TxError, TimeoutError):
    """A transaction was not confirmed within the time asked for."""


class ReorgTooDeep(AgentError, RuntimeError):
    """A reorg reaches below the oldest block hash the watcher remembers."""
