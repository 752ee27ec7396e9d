"""SDK fixtures: the real marketplace deployed by scripts/deploy.py on ape's embedded
chain, funded clients and staked providers, all driven through the SDK itself.

Session-scoped setup + ape's per-test snapshots keep it fast.
"""
from __future__ import annotations

import pytest
from sdk_helpers import FUNDS, MODEL, PRICE, STAKE, ProviderBot

from client import Client
from client.marketplace import Marketplace, Token
from client.accounts import load_account
from client.signer import Signer
from scripts.deploy import deploy
from tests.support.anvil import start_anvil


@pytest.fixture(scope="module")
def node():
    """An anvil node of its own for each module that talks JSON-RPC."""
    anvil = start_anvil()
    yield anvil
    anvil.stop()


@pytest.fixture(scope="session")
def deployed(owner):
    return deploy(owner, [MODEL], record=False)


@pytest.fixture(scope="session")
def market_address(deployed) -> str:
    return deployed.marketplace.address


@pytest.fixture(scope="session")
def web3(deployed, networks):
    return networks.provider.web3


@pytest.fixture(scope="session")
def signer_for(web3):
    """signer_for(ape_account) -> Signer with the fixed gas limit the Client uses on this chain."""
    gas_limit = web3.eth.get_block("latest")["gasLimit"]
    return lambda account: Signer(web3, load_account(account), gas_limit=gas_limit)


@pytest.fixture(scope="session")
def sdk_market(web3, market_address) -> Marketplace:
    return Marketplace(web3, market_address)


@pytest.fixture(scope="session")
def token(web3, sdk_market) -> Token:
    return Token(web3, sdk_market.pay_token())


@pytest.fixture(scope="session")
def bots(signer_for, sdk_market, token, providers) -> list[ProviderBot]:
    """Four registered providers serving MODEL, each with STAKE staked."""
    out = []
    for account in providers[:4]:
        bot = ProviderBot(signer_for(account), sdk_market)
        bot.send(token.build_mint(bot.address, STAKE))
        bot.send(token.build_approve(sdk_market.address, STAKE))
        bot.send(sdk_market.build_register([MODEL.model_id], PRICE))
        bot.send(sdk_market.build_stake(STAKE))
        out.append(bot)
    return out


@pytest.fixture(scope="session")
def funded_clients(signer_for, token, clients, bots) -> list[str]:
    """Both client accounts hold FUNDS payment tokens (not approved: the SDK approves)."""
    for account in clients:
        signer_for(account).send(token.build_mint(account.address, FUNDS).tx)
    return [a.address for a in clients]


@pytest.fixture
def client(funded_clients, clients, market_address) -> Client:
    """A Client for clients[0] on the embedded chain (fast polling for tests)."""
    with Client.connect(account=clients[0], marketplace=market_address, poll_interval=0.01) as c:
        yield c


@pytest.fixture
def other_client(funded_clients, clients, market_address) -> Client:
    with Client.connect(account=clients[1], marketplace=market_address, poll_interval=0.01) as c:
        yield c
