"""Fixtures of the end-to-end tests: the real engine, and (for the anvil tests) the
helpers of tests/agent/agent_chain.py (anvil processes, the RPC relay)."""

import sys
from pathlib import Path

import pytest

# agent_chain.py lives beside the agent tests; a `tests` package in site-packages
# shadows `tests.agent`, so put its folder on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
pytest.register_assert_rewrite("cluster")  # its checks report like the tests' own


@pytest.fixture(scope="session")
def engine():
    """The real integer MiniLM engine on its CPU path (loaded once: a few seconds)."""
    from provider.engine import Engine

    return Engine.load("cpu")
