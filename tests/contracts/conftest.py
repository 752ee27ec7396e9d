"""Contract-test fixtures on top of the shared chain fixtures in tests/conftest.py."""

import pytest


@pytest.fixture(scope="session")
def everyone(owner, treasury, clients, providers, outsider):
    """Every account that can hold a balance or stake in these tests."""
    return [owner, treasury, *clients, *providers, outsider]


@pytest.fixture(scope="session")
def client(clients):
    return clients[0]
