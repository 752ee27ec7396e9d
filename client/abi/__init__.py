"""The contracts' ABIs, shipped with the package so the SDK works without the sources.

Generated from ape's compiled artifacts by ``python -m client.abi --refresh`` (run it
from the repository root after changing contracts/); ``--check`` exits 1 when the
shipped files differ from a fresh compile, and a test does the same.

>>> any(item.get("name") == "post_jobs" for item in load_abi("Marketplace"))
True
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

ABI_DIR = Path(__file__).parent
# Contract name in contracts/ -> shipped file (TestToken's ABI doubles as the ERC-20 ABI).
CONTRACTS = ("Marketplace", "TestToken")


@cache
def load_abi(name: str) -> list[dict]:
    """The shipped ABI of contract ``name`` (one of ``CONTRACTS``).

    >>> load_abi("TestToken")[0]["type"] in ("function", "event", "constructor")
    True
    """
    if name not in CONTRACTS:
        raise ValueError(f"no shipped ABI for {name!r}; known: {', '.join(CONTRACTS)}")
    return json.loads((ABI_DIR / f"{name}.json").read_text())
