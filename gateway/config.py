"""The gateway's settings: where it listens, what a request may be, its default policy.

>>> GatewayConfig(reward=10**16).loopback
True
>>> GatewayConfig(host="0.0.0.0", reward=1, keys_path=Path("keys.json")).loopback
False
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from client.deployments import deployments_path
from client.protocol import MAX_BATCH, MAX_INPUT, MAX_REDUNDANCY, MAX_REWARD
from client.records import Deadlines

Until = Literal["result", "settled"]


class Policy(BaseModel):
    """How one request's jobs are posted and awaited: replication ``r``, ``reward`` per
    seat (payment-token base units), and whether the answer waits for a standing result
    (``result``: r = 1 delivered and still challengeable, r >= 2 finalized by majority)
    or for settlement (``settled``: r = 1 past its challenge window)."""

    r: int = Field(default=1, ge=1, le=MAX_REDUNDANCY)
    reward: int = Field(ge=1, le=MAX_REWARD)
    until: Until = "result"
    # Share of this request's r = 1 answers the gateway re-executes and challenges on a
    # mismatch (gateway.audit); only answers awaited until "result" can still be challenged.
    audit: float = Field(default=0.1, ge=0, le=1)


def default_data_dir() -> Path:
    """``$VERINFER_HOME/gateway``: beside the recorded deployments."""
    return deployments_path().parent / "gateway"


class GatewayConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    keys_path: Path | None = None  # API keys file; required to listen beyond loopback
    r: int = Field(default=1, ge=1, le=MAX_REDUNDANCY)
    reward: int = Field(ge=1, le=MAX_REWARD)  # base units per seat
    until: Until = "result"
    deadlines: Deadlines = Deadlines()
    # Requests arriving within this many seconds of the first waiting one share a post.
    batch_window: float = Field(default=0.05, ge=0, le=10)
    # Inputs per request: at most one post_jobs transaction's, so a request is posted
    # all or nothing (the SDK splits larger posts into several transactions).
    max_inputs: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH)
    wait_timeout: float = Field(default=300, gt=0)  # seconds a request waits for its results
    models_ttl: float = Field(default=10, ge=0)  # seconds the model registry is cached
    explorer: bool = True  # the explorer page at / (public chain data, no API key)
    explorer_interval: float = Field(default=1.0, gt=0, le=60)  # seconds between its chain reads
    data_dir: Path = Field(default_factory=default_data_dir)  # the audit log (gateway.audit_log)
    audit_fraction: float = Field(default=0.1, ge=0, le=1)  # default share of r = 1 answers audited
    # A mismatch found with less than this many seconds of its challenge window left is
    # not challenged: the challenge could be mined after the window and revert.
    audit_margin: float = Field(default=15, ge=0)
    audit_backend: str = "auto"  # the audit engine's backend (provider.engine.Engine.load)

    model_config = {"arbitrary_types_allowed": True}

    @model_validator(mode="after")
    def _keys_beyond_loopback(self) -> GatewayConfig:
        if not self.loopback and self.keys_path is None:
            raise ValueError(f"listening on {self.host} (not loopback) needs API keys: give a keys file")
        return self

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the gateway."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: assume it is reachable from elsewhere
            return False

    @property
    def max_body(self) -> int:
        """Bytes a request body may have: ``max_inputs`` inputs of MAX_INPUT bytes, each
        JSON-escaped at worst six bytes per byte (``\\u0001``), plus room for the rest."""
        return self.max_inputs * MAX_INPUT * 6 + 16_384

    def default_policy(self) -> Policy:
        return Policy(r=self.r, reward=self.reward, until=self.until, audit=self.audit_fraction)
