"""Splitting r = 1 jobs among providers without talking to each other.

An r = 1 job's only seat goes to the first claim, and an agent computes the result
while its claim is in flight (it may deliver only from a later block), so agents that
race for a job all pay a claim and an engine run, and all but one claim is skipped.
Instead each agent ranks the providers serving the job's model by blake2b(job id,
provider) (rendezvous hashing): the same ranking everywhere, from public data alone.
The provider ranked first claims the job at once; the provider at rank k waits
k x grace, so the share of a dead or slow provider is still served, by one backup at a
time. A provider joining or leaving moves only the jobs it ranks first (about 1/n of
them), and an agent whose view of the providers is stale or wrong only wastes work,
never a job. (The seats of r >= 2 jobs are drawn by the contract: nothing to split.)

Finalizing uses the same ranking, among the providers holding the job's seats (drawn:
often not every provider serving the model): every holder finds the job due at once,
and one `finalize` settles it, so the holder ranked first sends it at once and rank k
only if the job is still unsettled k x grace later.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from hashlib import blake2b

from eth_utils import to_canonical_address, to_checksum_address

from client.marketplace import Marketplace


def ranking(job_id: int, providers: Iterable[str]) -> list[str]:
    """The providers (checksummed) in the job's preference order, highest weight first.
    Any hash all agents share spreads jobs evenly; blake2b is hashlib's fastest (every
    agent ranks every job it sees)."""
    key = job_id.to_bytes(32, "big")
    unique = dict(map(_forms, providers))  # checksummed -> 20 bytes
    return sorted(unique, key=lambda p: blake2b(key + unique[p], digest_size=16).digest(), reverse=True)


@functools.cache  # a handful of providers, ranked for every job: checksumming costs a keccak
def _forms(address: str) -> tuple[str, bytes]:
    return to_checksum_address(address), to_canonical_address(address)


def claim_delay(job_id: int, me: str, providers: Iterable[str], grace: float) -> float:
    """Seconds after a job appears (or is due) before `me` may act: 0 for the provider
    the job ranks first, k x grace at rank k. `me` always counts as a provider (its own
    registration may not be in `providers` yet).

    >>> claim_delay(7, "0x" + "11" * 20, [], grace=30.0)
    0.0
    """
    if grace < 0:
        raise ValueError(f"need grace >= 0, got {grace}")
    me = _forms(me)[0]
    return ranking(job_id, [*providers, me]).index(me) * grace


class ProviderDirectory:
    """Who serves each model: registered providers with bonded stake, from the chain.

    New registrations are read incrementally from the events; every provider's state
    (models, stake) is re-read in one batched view at most every `refresh` seconds.
    """

    def __init__(self, market: Marketplace, *, start_block: int = 0, refresh: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.market, self.refresh, self._clock = market, refresh, clock
        self._next_block = start_block
        self._accounts: set[str] = set()
        self._serving: dict[bytes, list[str]] = {}
        self._read_at: float | None = None

    def serving(self, model_id: bytes) -> list[str]:
        """Providers serving `model_id` with stake bonded, as of the last refresh."""
        if self._read_at is None or self._clock() - self._read_at >= self.refresh:
            self._read()
        return self._serving.get(model_id, [])

    def _read(self) -> None:
        head = self.market.w3.eth.block_number
        if head >= self._next_block:
            self._accounts |= self.market.provider_accounts(self._next_block, head)
            self._next_block = head + 1
        serving: dict[bytes, list[str]] = {}
        for info in self.market.providers(sorted(self._accounts), block=head):
            if info.registered and info.free + info.locked > 0:  # unbonding all: leaving
                for model_id in info.model_ids:
                    serving.setdefault(model_id, []).append(info.address)
        self._serving, self._read_at = serving, self._clock()
