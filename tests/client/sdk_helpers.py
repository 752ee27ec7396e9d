"""Helpers of the SDK tests: constants, a provider acting through the SDK's agent-facing
layer (``Marketplace.build_*`` + ``Signer``), seat draws pinned on the embedded chain,
chain time travel, valid results."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from eth_utils import keccak

from client.abi_codec import Call
from client.encoding import encode_embedding
from client.marketplace import Marketplace
from client.protocol import new_salt, seal_result
from client.records import Deadlines
from client.signer import Signer
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

    def run(self, job_id: int, result: bytes, *, claim: bool = True) -> bytes:
        """Take the seats drawn to us (all of them; unless taken already), commit `result`;
        the salt for the reveal."""
        salt = new_salt()
        if claim:
            self.send(self.market.build_claim(job_id))
        self.send(self.market.build_commit(job_id, seal_result(job_id, self.address, result, salt)))
        return salt

    def reveal(self, job_id: int, result: bytes, salt: bytes):
        return self.send(self.market.build_reveal(job_id, result, salt))

    def deliver(self, job_ids: Sequence[int], results: Sequence[bytes]):
        """r = 1: claim the jobs, then deliver from the next block (eth-tester mines one per
        transaction); the delivery's receipt."""
        self.send(self.market.build_claim_many(list(job_ids)))
        return self.send(self.market.build_deliver_many(list(job_ids), list(results)))


def distinct(providers: Sequence[str]) -> bool:
    """Every seat drawn to a provider of its own."""
    return len(set(providers)) == len(providers)


def draw(chain, market: Marketplace, job_id: int, keeper: Signer,
         accept: Callable[[list[str]], bool] = distinct, tries: int = 300, receipts: list | None = None) -> list[str]:
    """Draw the seats of the job's current round (a ``claim_many`` by ``keeper``, who is no
    provider) and keep the first draw whose providers by seat ``accept`` takes; any other
    is undone (chain snapshot) and drawn again in a later block. The providers by seat
    (the kept draw's receipt is appended to ``receipts``)."""
    [drawn] = draw_together(chain, market, [job_id], keeper, lambda d: accept(d[0]), tries, receipts)
    return drawn


def draw_together(chain, market: Marketplace, job_ids: Sequence[int], keeper: Signer,
                  accept: Callable[[list[list[str]]], bool], tries: int = 300,
                  receipts: list | None = None) -> list[list[str]]:
    """``draw`` for several jobs in one transaction, so that all the kept draws are of one
    block: drawing them one after another lets chain time pass the redraw delay of the
    first while the next is retried. ``accept`` sees the providers by seat of each job."""
    for _ in range(tries):
        snapshot = chain.snapshot()
        receipt = keeper.send(market.build_claim_many(list(job_ids)).tx)
        drawn = [[seat.provider for seat in market.round_seats(j).values()] for j in job_ids]
        if accept(drawn):
            if receipts is not None:
                receipts.append(receipt)
            return drawn
        chain.restore(snapshot)
        advance(chain, 1)
    raise AssertionError(f"no acceptable draw for jobs {list(job_ids)} in {tries} blocks")


def seated(bots: Sequence[ProviderBot], drawn: Sequence[str]) -> list[ProviderBot]:
    """The bots holding the drawn seats, by seat."""
    by_address = {bot.address: bot for bot in bots}
    return [by_address[address] for address in drawn]


def advance(chain, seconds: int) -> None:
    """Move chain time forward (the next block is `seconds` later)."""
    chain.pending_timestamp += seconds
    chain.mine()
