"""Agent configuration: a TOML file, overridden by `VERINFER_...` environment variables
and by the command line's `--network`, `--rpc-url`, `--account`, `--no-dashboard`.

Nested keys use `__` in the environment: `VERINFER_TX__MAX_FEE_GWEI=50` overrides
`[tx] max_fee_gwei`. Token amounts are integers in base units; TOML integers stop at
2**63, so they may also be written as strings ("5_000_000_000_000_000_000_000").
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from client.errors import ConfigError

SAMPLE_CONFIG = Path(__file__).with_name("sample-config.toml")

_MODEL_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_NETWORK = re.compile(r"^[\w-]+:[\w-]+(:[\w-]+)?$")


def _amount(value: Any) -> Any:
    """Accept uint256 amounts as ints or digit strings (underscores allowed)."""
    if isinstance(value, str) and re.fullmatch(r"\d[\d_]*", value.strip()):
        return int(value.strip().replace("_", ""))
    return value


Amount = Annotated[int, BeforeValidator(_amount), Field(ge=0, lt=2**256)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Section):
    """Which jobs the agent takes."""

    # The smallest reward per seat the agent takes (payment token units), declared on chain
    # at registration so that clients see it (Client.providers, Client.estimate).
    price: Amount = 0
    stake: Amount = 0  # bonded stake to top up to on start (stake token units)
    max_stake_at_risk: Amount = Field(default=10**21, gt=0)  # collateral locked at once
    capacity: int = Field(default=64, ge=1)  # jobs in progress (claimed, not yet revealed)
    # Seconds an r = 1 job's claim, or a due finalize, is left to the provider it hashes
    # to (provider/agent/partition.py) before the next in line acts; 0: every agent races.
    takeover_grace: float = Field(default=0.0, ge=0, le=3600)


    @model_validator(mode="before")
    @classmethod
    def _no_min_price(cls, data: Any) -> Any:
        if isinstance(data, dict) and "min_price" in data:
            raise ValueError("min_price is gone: price is both the price clients see on chain "
                             "and the smallest reward the agent takes")
        return data


class BatchConfig(_Section):
    """A dynamic batch closes at max_size items or max_wait seconds after its first item."""

    max_size: int = Field(default=32, ge=1, le=1024)
    max_wait: float = Field(default=0.5, gt=0, le=60)


class WatcherConfig(_Section):
    confirmations: int = Field(default=0, ge=0, le=1000)  # blocks to trail the head by
    max_range: int = Field(default=500, ge=1, le=100_000)  # blocks per eth_getLogs
    poll_interval: float = Field(default=1.0, gt=0, le=300)
    reorg_window: int = Field(default=64, ge=1)  # checkpoints remembered for reorg checks
    start_block: int | None = Field(default=None, ge=0)  # None: the marketplace's deploy block


class TxConfig(_Section):
    confirmations: int = Field(default=1, ge=0, le=1000)  # blocks before a receipt is final
    poll_interval: float = Field(default=0.5, gt=0, le=300)
    stuck_blocks: int = Field(default=3, ge=1)  # replace a tx unmined after this many blocks
    stuck_seconds: float = Field(default=30.0, gt=0)  # ... or this many seconds
    fee_bump_percent: int = Field(default=15, ge=10, le=1000)  # EIP-1559 replacement needs >= 10
    max_fee_gwei: float = Field(default=200.0, gt=0)  # hard cap on maxFeePerGas
    priority_fee_gwei: float = Field(default=1.0, ge=0)
    gas_multiplier: float = Field(default=1.2, ge=1.0, le=10.0)  # headroom over eth_estimateGas
    send_deadline: float = Field(default=60.0, gt=0)  # give up preparing a tx after this long

    @property
    def max_fee_wei(self) -> int:
        return int(self.max_fee_gwei * 10**9)

    @property
    def priority_fee_wei(self) -> int:
        return int(self.priority_fee_gwei * 10**9)

    @model_validator(mode="after")
    def _priority_within_cap(self) -> TxConfig:
        if self.priority_fee_gwei > self.max_fee_gwei:
            raise ValueError("priority_fee_gwei must not exceed max_fee_gwei")
        return self


class MetricsConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)  # 0 picks a free port


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["kv", "json"] = "kv"


class AgentConfig(BaseSettings):
    """Everything a provider agent needs to run; see sample-config.toml."""

    model_config = SettingsConfigDict(
        env_prefix="VERINFER_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    network: str = "ethereum:local:test"  # ape network choice
    rpc_url: str | None = None  # talk to this endpoint instead of the network's default
    chain_id: int | None = Field(default=None, ge=1)  # the chain expected (checked at start)
    account: str = "TEST::0"  # ape account alias; TEST::n only on local networks
    marketplace: str | None = None  # None: the address the SDK recorded for the network
    db_path: Path = Path(".verinfer/agent.db")
    models: list[str] = Field(min_length=1)  # model ids served (0x + 32 bytes hex)
    policy: PolicyConfig = PolicyConfig()
    engine_batch: BatchConfig = BatchConfig()
    claim_batch: BatchConfig = BatchConfig(max_size=16, max_wait=1.0)
    watcher: WatcherConfig = WatcherConfig()
    tx: TxConfig = TxConfig()
    metrics: MetricsConfig = MetricsConfig()
    dashboard: bool = True
    log: LogConfig = LogConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init kwargs; the environment overrides them.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _check(self) -> AgentConfig:
        if not _NETWORK.match(self.network):
            raise ValueError(f"network {self.network!r} is not ecosystem:network[:provider]")
        if self.rpc_url is not None and not re.match(r"^(https?|wss?)://", self.rpc_url):
            raise ValueError("rpc_url must start with http://, https://, ws:// or wss://")
        if self.marketplace is not None and not is_address(self.marketplace):
            raise ValueError(f"marketplace {self.marketplace!r} is not an address")
        bad = [m for m in self.models if not _MODEL_ID.match(m)]
        if bad:
            raise ValueError(f"models must be 0x-prefixed 32-byte hex ids, got {bad}")
        if len({m.lower() for m in self.models}) != len(self.models):
            raise ValueError("models lists a model id twice")
        if self.account.upper().startswith("TEST::") and not self.is_local:
            raise ValueError("test accounts (TEST::n) may only be used on local networks")
        if self.claim_batch.max_size > self.policy.capacity:
            raise ValueError("claim_batch.max_size must not exceed policy.capacity")
        if self.tx.confirmations > self.watcher.reorg_window:
            raise ValueError("tx.confirmations must not exceed watcher.reorg_window")
        return self

    @property
    def is_local(self) -> bool:
        return self.network.split(":")[1] == "local"

    @property
    def marketplace_address(self) -> str | None:
        return None if self.marketplace is None else to_checksum_address(self.marketplace)

    @property
    def model_ids(self) -> list[bytes]:
        return [bytes.fromhex(m[2:]) for m in self.models]


def load_config(path: str | Path | None = None, **overrides: Any) -> AgentConfig:
    """Load and validate the config file at `path` (or only the environment if None),
    with `overrides` (the command line's; None: not given) over the file's fields.

    Raises ConfigError naming every invalid field.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config {path} is not valid TOML: {err}") from err
    given = {name: value for name, value in overrides.items() if value is not None}
    # The environment overrides the file's values (they arrive as init kwargs, as these
    # do): a setting given both ways would silently lose its command-line value.
    environment = {key.upper() for key in os.environ}
    for name in given:
        if f"VERINFER_{name.upper()}" in environment:
            raise ConfigError(f"`{name}` is given both on the command line and as "
                              f"VERINFER_{name.upper()}: drop one")
    data |= given
    try:
        return AgentConfig(**data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in err.errors()
        )
        source = path or "environment"
        raise ConfigError(f"invalid agent config ({source}): {problems}") from err

