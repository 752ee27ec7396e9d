"""Read the marketplace's whole state in one call (contracts/mocks/MarketLens.vy)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SeatState:
    provider: int  # address as an integer: the drawn provider (r = 1: the claimant)
    committed: bool
    revealed: bool
    word: bytes
    claimed: bool  # the provider took the seat


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
    draw_weight: int


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
    stakes = {p: ProviderState(*(next(it) for _ in range(9))) for p in providers}
    job_states = {}
    for job_id in job_ids:
        head = [next(it) for _ in range(11)]
        seats = {}
        for s in sorted(jobs[job_id]):
            provider, flags, w = next(it), next(it), next(it)
            seats[s] = SeatState(provider, bool(flags & 1), bool(flags & 2), word(w), bool(flags & 4))
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


# ---------------------------------------------------------------- sortition trees (raw storage)

CAP = 4096  # slots per model tree (sortition.vy)
_MASK108 = 2**108 - 1


def storage_layout(root, source="contracts/Marketplace.vy") -> dict:
    """Storage slot of every variable of the compiled contract, by dotted name
    (e.g. "sortition._nodes"), from the compiler's own layout output."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "vyper", "-f", "layout", "-p", str(root), source],
        cwd=str(root), check=True, capture_output=True, text=True,
    ).stdout
    slots = {}

    def walk(node, path):
        if isinstance(node, dict) and "slot" in node and "type" in node:
            slots[".".join(path)] = node["slot"]
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, key])

    walk(json.loads(out)["storage_layout"], [])
    return slots


class Trees:
    """Reads the sortition module's Fenwick trees straight from the marketplace's storage:
    node values (as of now, not as of the block's start), slots and slot owners."""

    def __init__(self, chain, market, layout: dict):
        self.chain = chain
        self.address = market.address

        def base(name):
            (slot,) = [v for k, v in layout.items() if k.endswith("sortition." + name)]
            return slot

        self.nodes, self.slot_of, self.slots = base("_nodes"), base("_slot_of"), base("_slots")

    def _read(self, base: int, key: int) -> int:
        from eth_abi import encode
        from eth_utils import keccak

        slot = int.from_bytes(keccak(encode(["uint256", "uint256"], [base, key])), "big")
        value = self.chain.provider.get_storage(self.address, slot)
        return int.from_bytes(bytes(value), "big") if not isinstance(value, int) else value

    def node(self, model_index: int, i: int) -> int:
        return self._read(self.nodes, (model_index << 16) | i) & _MASK108

    def total(self, model_index: int) -> int:
        """The root: the model's total draw weight."""
        return self.node(model_index, CAP)

    def leaves(self, model_index: int, accounts: list) -> tuple[dict, int]:
        """({account: (slot, leaf weight)} for `accounts`, sum of every leaf handed out)."""
        handed_out = self._read(self.slots, model_index) & 0xFFFF
        nodes = [0] + [self.node(model_index, i) for i in range(1, handed_out + 1)]

        def prefix(i):
            total = 0
            while i > 0:
                total += nodes[i]
                i -= i & -i
            return total

        out = {}
        for a in accounts:
            slot = self._read(self.slot_of, (model_index << 160) | int(a, 16))
            out[a] = (slot, prefix(slot) - prefix(slot - 1) if slot else 0)
        return out, prefix(handed_out)
