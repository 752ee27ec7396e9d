"""Fixtures for the agent tests; every anvil, relay and helper process is stopped at teardown."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import vyper
from agent_chain import PING_SOURCE, Ping
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.support.anvil import ANVIL_KEYS, REPO, Anvil, RpcProxy, start_anvil, subprocess_env


@pytest.fixture
def anvil_factory() -> Iterator:
    """start(*anvil_args) -> Anvil on a free port."""
    started: list[Anvil] = []

    def start(*args: str) -> Anvil:
        node = start_anvil(*args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def anvil(anvil_factory) -> Anvil:
    return anvil_factory()


@pytest.fixture
def signer() -> LocalAccount:
    """The account the tx manager owns (test account 1)."""
    return Account.from_key(ANVIL_KEYS[1])


@pytest.fixture
def other() -> LocalAccount:
    """Another funded account, for deploying and emitting events (test account 9)."""
    return Account.from_key(ANVIL_KEYS[9])


@pytest.fixture(scope="session")
def ping_artifacts() -> dict:
    return vyper.compile_code(PING_SOURCE, output_formats=["abi", "bytecode"])


@pytest.fixture
def ping(anvil, other, ping_artifacts) -> Ping:
    return Ping(anvil.w3(), other, ping_artifacts)


@pytest.fixture
def proxy(anvil) -> Iterator[RpcProxy]:
    relay = RpcProxy(anvil.url)
    yield relay
    relay.down()


@pytest.fixture
def python_script() -> Iterator:
    """run(script, *args, **popen_kwargs) -> Popen of a helper script in tests/agent."""
    procs: list[subprocess.Popen] = []

    def run(script: str, *args: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name(script)), *args],
            env=subprocess_env(), cwd=REPO, **kwargs,
        )
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
