"""Shared fixtures: accounts, the test token, a deployed marketplace with one model, and
the real engine.

Subsystem fixtures live in their own subfolder conftests; helpers shared across folders
in tests/support. Session-scoped deploys + ape's per-test snapshot isolation keep tests fast.
"""

import pytest
from eth_utils import keccak

TEST_MODEL_ID = keccak(text="verinfer-test-model")
TOKEN_SUPPLY = 10**30


@pytest.fixture(scope="session")
def engine():
    """The real integer MiniLM engine on its CPU path (loaded once: a few seconds)."""
    from provider.engine import Engine

    return Engine.load("cpu")


@pytest.fixture(scope="session")
def llm():
    """The integer LLM on its CPU path, self-tested (loaded once: about 20 s)."""
    from provider.llm import LLMEngine

    return LLMEngine.load(backend="cpu")


@pytest.fixture(scope="session")
def chat_runner(llm):
    """The LLM behind the chat job format (what agents serving the chat model run)."""
    from provider.llm.chat_jobs import ChatRunner

    return ChatRunner(llm)


@pytest.fixture(scope="session")
def model_id():
    """The model registered by the `market` fixture."""
    return TEST_MODEL_ID


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def treasury(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def clients(accounts):
    return accounts[2:4]


@pytest.fixture(scope="session")
def providers(accounts):
    return accounts[4:10]


@pytest.fixture(scope="session")
def outsider(accounts):
    """An account with no role: challenger, keeper, attacker."""
    return accounts[10]


@pytest.fixture(scope="session")
def token(project, owner):
    return owner.deploy(project.TestToken, "Verinfer Test", "VIT")


@pytest.fixture(scope="session")
def market(project, owner, treasury, token):
    """Marketplace paying and staking in the same token, with TEST_MODEL_ID registered."""
    m = owner.deploy(project.Marketplace, token, token, treasury)
    m.register_model(TEST_MODEL_ID, "test-model", keccak(text="weights"), 1, sender=owner)
    return m


@pytest.fixture(scope="session")
def funded(market, token, clients, providers, outsider):
    """Every client, provider and the outsider hold tokens and approved the market."""
    for acct in [*clients, *providers, outsider]:
        token.mint(acct, TOKEN_SUPPLY, sender=acct)
        token.approve(market, 2**256 - 1, sender=acct)
    return market


@pytest.fixture(scope="session")
def staked(funded, providers):
    """Every provider is registered for TEST_MODEL_ID with 10**24 stake."""
    for p in providers:
        funded.register([TEST_MODEL_ID], 10**15, sender=p)
        funded.stake(10**24, sender=p)
    return funded
