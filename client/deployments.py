"""Where the marketplace is deployed on each chain.

Recorded by the deploy script in ``$VERINFER_HOME/deployments.json`` (default
``<repo>/.verinfer/``), keyed by chain id, so that both ape network choices and plain
RPC URLs find it.

>>> Deployment(chain_id=1337, marketplace="0x" + "ab" * 20).marketplace[:6]
'0xABaB'
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_utils import to_checksum_address

from client.errors import DeploymentNotFound


@dataclass(frozen=True)
class Deployment:
    """One marketplace deployment: its address, the block it was deployed in (where log
    scans start) and the ape network it was deployed through."""

    chain_id: int
    marketplace: str
    block: int = 0
    network: str = ""
    model_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "marketplace", to_checksum_address(self.marketplace))
        object.__setattr__(self, "model_ids", tuple(self.model_ids))


def deployments_path() -> Path:
    """``$VERINFER_HOME/deployments.json``; VERINFER_HOME defaults to ``<repo>/.verinfer``.

    >>> deployments_path().name
    'deployments.json'
    """
    home = os.environ.get("VERINFER_HOME") or Path(__file__).resolve().parents[1] / ".verinfer"
    return Path(home) / "deployments.json"


def load_deployment(chain_id: int) -> Deployment:
    """The deployment recorded for ``chain_id`` (``DeploymentNotFound`` if none).

    >>> load_deployment(-1)
    Traceback (most recent call last):
    ...
    client.errors.DeploymentNotFound: no marketplace recorded for chain -1 in ...
    """
    path = deployments_path()
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        records = {}
    except json.JSONDecodeError as exc:
        raise DeploymentNotFound(f"{path} is not valid JSON: {exc}") from None
    record = records.get(str(chain_id))
    if record is None:
        raise DeploymentNotFound(f"no marketplace recorded for chain {chain_id} in {path}; "
                                 "deploy first (ape run deploy) or pass the address")
    return Deployment(**record)


def record_deployment(deployment: Deployment) -> Path:
    """Add or replace the record for ``deployment.chain_id``; the file written.

    >>> record_deployment(Deployment(1, "0x" + "00" * 20))  # doctest: +SKIP
    """
    path = deployments_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    records = json.loads(path.read_text()) if path.exists() else {}
    records[str(deployment.chain_id)] = asdict(deployment) | {"model_ids": list(deployment.model_ids)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
