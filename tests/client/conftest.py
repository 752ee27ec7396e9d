"""SDK fixtures: the real marketplace deployed by scripts/deploy.py on ape's embedded
chain, funded clients and staked providers, all driven through the SDK itself.

Providers act through the agent-facing layer (``Marketplace.build_*`` + ``Signer``),
clients through ``Client``. Session-scoped setup + ape's per-test snapshots keep it fast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from eth_utils import keccak

from client import Client
from client.encoding import encode_embedding
from client.marketplace import Call, Marketplace, Token
from client.protocol import new_salt, seal_result
from client.records import Deadlines
from client.transport import Signer, ape_local_account
from scripts.deploy import ModelEntry, deploy

MODEL = ModelEntry(keccak(text="verinfer-sdk-test-model"), "sdk-test-model", keccak(text="sdk-weights"), 1)
REWARD = 10**15
PRICE = 2 * 10**15  # providers' asking price
STAKE = 10**21
FUNDS = 10**21
WINDOWS = Deadlines(claim=600, commit=600, reveal=600)


def embedding_bytes(seed: int) -> bytes:
    """A valid version-1 embedding result (what an honest engine would emit for `seed`)."""
    v = np.random.default_rng(seed).integers(-127, 128, 384).astype(np.int8)
    v[0] = 127
    return encode_embedding(v)


@dataclass
class ProviderBot:
    """A provider acting through the SDK's agent-facing layer."""

    signer: Signer
    market: Marketplace

    @property
    def address(self) -> str:
        return self.signer.address

    def send(self, call: Call):
        return self.signer.send(call.tx)

    def run(self, job_id: int, result: bytes) -> bytes:
        """Claim and commit `result`; the salt for the reveal."""
        salt = new_salt()
        self.send(self.market.build_claim(job_id))
        self.send(self.market.build_commit(job_id, seal_result(job_id, self.address, result, salt)))
        return salt

    def reveal(self, job_id: int, result: bytes, salt: bytes):
        return self.send(self.market.build_reveal(job_id, result, salt))


def advance(chain, seconds: int) -> None:
    """Move chain time forward (the next block is `seconds` later)."""
    chain.pending_timestamp += seconds
    chain.mine()


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
def sdk_market(web3, market_address) -> Marketplace:
    return Marketplace(web3, market_address)


@pytest.fixture(scope="session")
def token(web3, sdk_market) -> Token:
    return Token(web3, sdk_market.pay_token())


@pytest.fixture(scope="session")
def bots(web3, sdk_market, token, providers) -> list[ProviderBot]:
    """Four registered providers serving MODEL, each with STAKE staked."""
    out = []
    for account in providers[:4]:
        bot = ProviderBot(Signer(web3, ape_local_account(account)), sdk_market)
        bot.send(token.build_mint(bot.address, STAKE))
        bot.send(token.build_approve(sdk_market.address, STAKE))
        bot.send(sdk_market.build_register([MODEL.model_id], PRICE))
        bot.send(sdk_market.build_stake(STAKE))
        out.append(bot)
    return out


@pytest.fixture(scope="session")
def funded_clients(web3, token, clients, bots) -> list[str]:
    """Both client accounts hold FUNDS payment tokens (not approved: the SDK approves)."""
    for account in clients:
        Signer(web3, ape_local_account(account)).send(token.build_mint(account.address, FUNDS).tx)
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
