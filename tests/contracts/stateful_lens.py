"""Read the marketplace's whole state in one call (contracts/mocks/MarketLens.vy)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SeatState:
    provider: int  # address as an integer
    committed: bool
    revealed: bool
    word: bytes


@dataclass(frozen=True)
class JobState:
    status: int
    nclaimed: int
    ncommitted: int
    nrevealed: int
    result_digest: bytes
    challenger: int
    deadlines: tuple
    challenge_end: int
    escrow: int
    seats: dict  # seat index -> SeatState, for the seats asked for


@dataclass(frozen=True)
class ProviderState:
    free: int
    locked: int
    unbonding: int
    ready_at: int
    pending_pay: int
    pending_fees: int
    pending_collateral: int
    matures_at: int


@dataclass(frozen=True)
class State:
    time: int
    token_balance: int
    balances: dict
    credits: dict
    providers: dict
    jobs: dict

    def internal_total(self) -> int:
        """What the contract's own books say it holds for everyone."""
        return (
            sum(self.balances.values())
            + sum(self.credits.values())
            + sum(j.escrow for j in self.jobs.values())
            + sum(p.free + p.locked + p.unbonding + p.pending_pay + p.pending_fees for p in self.providers.values())
        )


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def read_state(lens, market, token, accounts: list, providers: list, jobs: dict) -> State:
    """`jobs` maps job ids to the seat indexes to read."""
    job_ids = sorted(jobs)
    masks = [sum(1 << s for s in jobs[j]) for j in job_ids]
    words = lens.read(market, token, accounts, providers, job_ids, masks)
    it = iter(words)
    time, token_balance = next(it), next(it)
    balances, credits = {}, {}
    for a in accounts:
        balances[a] = next(it)
        credits[a] = next(it)
    stakes = {p: ProviderState(*(next(it) for _ in range(8))) for p in providers}
    job_states = {}
    for job_id in job_ids:
        head = [next(it) for _ in range(11)]
        seats = {}
        for s in sorted(jobs[job_id]):
            provider, flags, w = next(it), next(it), next(it)
            seats[s] = SeatState(provider, bool(flags & 1), bool(flags & 2), word(w))
        job_states[job_id] = JobState(
            status=head[0],
            nclaimed=head[1],
            ncommitted=head[2],
            nrevealed=head[3],
            result_digest=word(head[4]),
            challenger=head[5],
            deadlines=tuple(head[6:9]),
            challenge_end=head[9],
            escrow=head[10],
            seats=seats,
        )
    assert next(it, None) is None, "lens layout mismatch"
    return State(time, token_balance, balances, credits, stakes, job_states)
