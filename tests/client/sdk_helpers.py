"""Helpers of the SDK tests: constants, a provider acting through the SDK's agent-facing
layer (``Marketplace.build_*`` + ``Signer``), chain time travel, valid results."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from eth_utils import keccak

from client.encoding import encode_embedding
from client.marketplace import Call, Marketplace
from client.protocol import new_salt, seal_result
from client.records import Deadlines
from client.transport import Signer
from scripts.deploy import ModelEntry

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
