"""A job as the agent holds it: its state, its step in flight and a typed record.

`JobRecord` is what every part of the agent reads; `job_row` / `job_record` are the one
place that turns it into the store's row and back. The row keeps what the store
queries in columns (`state`, `collateral`, the pending step, the seats, the quiet time) and the rest in
a JSON object; reading is tolerant (a key an older agent wrote and this one no longer
knows is ignored, a missing one takes its default), so the store needs no migration
when a field is added.

Amounts (uint256) are written as decimal strings: sqlite's JSON reads larger integers
as floats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from client.protocol import JobStatus


class JobState(StrEnum):
    """Where a job stands from this provider's point of view."""

    SEEN = "seen"  # posted for a model we serve; not yet decided
    CLAIMING = "claiming"  # claim transaction intended
    UNDRAWN = "undrawn"  # no seat of the round drawn to us: claimed again once it may be redrawn
    CLAIMED = "claimed"  # seats taken (`seats`); collateral locked
    COMMITTED = "committed"  # seal on-chain; result + salt stored
    REVEALED = "revealed"  # result revealed; waiting for finalize
    PAID = "paid"  # finalized in our favour
    SLASHED = "slashed"  # finalized against us
    LOST = "lost"  # claimed by others first, or every seat taken by those drawn
    RELEASED = "released"  # settled without pay or slash (no majority)
    REFUSED = "refused"  # policy or input rejected it; we never claimed
    CANCELLED = "cancelled"  # cancelled / refunded before we finished
    FAILED = "failed"  # we gave up on it (a transaction kept failing)

    @property
    def holds_stake(self) -> bool:
        """True while the job (may) lock our collateral (an UNDRAWN job: our challenged
        delivery's, if any)."""
        return self in (JobState.CLAIMING, JobState.UNDRAWN, JobState.CLAIMED, JobState.COMMITTED,
                        JobState.REVEALED)

    @property
    def final(self) -> bool:
        """Nothing left to do for the job; a settlement within the reorg window may
        still re-open it (jobs/reconcile.py)."""
        return self in (JobState.PAID, JobState.SLASHED, JobState.LOST, JobState.RELEASED,
                        JobState.REFUSED, JobState.CANCELLED, JobState.FAILED)

    @property
    def settled(self) -> bool:
        """Outcomes the chain's own events decided: no reorg of our steps changes them."""
        return self in (JobState.PAID, JobState.SLASHED, JobState.RELEASED, JobState.CANCELLED,
                        JobState.REFUSED)


class Step(StrEnum):
    """The transaction a job waits for (its `pending` step)."""

    CLAIM = "claim"
    DELIVER = "deliver"
    COMMIT = "commit"
    REVEAL = "reveal"
    FINALIZE = "finalize"
    # Not a transaction of its own: re-derive the job from the contract once the
    # transaction it names is mined (again, after a reorg took it).
    RESYNC = "resync"

    @property
    def moves_seats(self) -> bool:
        """Steps whose transaction changes what we hold of the job (kept as `last_tx`)."""
        return self in (Step.CLAIM, Step.DELIVER, Step.COMMIT, Step.REVEAL)


@dataclass(frozen=True)
class Pending:
    """The one transaction in flight for a job: its step and tx manager intent id."""

    step: Step
    tx: int


@dataclass(frozen=True)
class Terms:
    """What the job's JobPosted event said (the deadlines are the round's: `Round`)."""

    r: int
    client: str
    input: bytes
    block: int  # where it was posted: a post in an orphaned block is forgotten


@dataclass(frozen=True)
class Round:
    """Deadlines of the job's current round: the post's, or a challenge's re-execution."""

    claim_deadline: int
    commit_deadline: int
    reveal_deadline: int


@dataclass(frozen=True)
class Settlement:
    """How the chain settled the job: its status and standing digest, and the block that
    showed it (a reorg of that block re-opens the job; 0: from before blocks were kept)."""

    status: JobStatus
    digest: bytes
    block: int = 0
    block_hash: bytes = b""


@dataclass(frozen=True)
class JobRecord:
    job_id: int
    model_id: bytes
    state: JobState
    reward: int = 0
    collateral: int = 0
    terms: Terms | None = None
    round: Round | None = None
    challenge: bool = False  # a re-execution round is open (or was) for this r = 1 job
    pending: Pending | None = None
    last_tx: int | None = None  # the last seat-moving transaction applied to the job
    seats: tuple[int, ...] = ()  # seats we hold (an r = 1 job's delivery: seat 0)
    seat_collateral: int = 0
    failures: int = 0
    reason: str | None = None  # why we refused, gave up or were not drawn
    redraw_at: int | None = None  # UNDRAWN: chain time its untaken seats may be redrawn
    # REVEALED: chain time until which it needs no view (our delivery's challenge window).
    # A column, so the settle phase reads only the jobs awake, however many wait; any
    # change of state resets it (Store.update_jobs).
    quiet_until: int = 0
    settled: Settlement | None = None
    slashed: Mapping[int, int] = field(default_factory=dict)  # seat -> amount
    faults: Mapping[int, int] = field(default_factory=dict)  # seat -> Fault reason
    updated_at: float = 0.0

    @property
    def single(self) -> bool:
        """An r = 1 job outside a challenge round: claimed, then delivered."""
        return self.terms is not None and self.terms.r == 1 and not self.challenge

    @property
    def step(self) -> Step | None:
        return None if self.pending is None else self.pending.step

    @property
    def round_seats(self) -> int:
        """How many seats of the current round we hold: what one commit or reveal covers
        (a challenged job's seat 0 is its delivery, outside the round)."""
        return max(1, len([s for s in self.seats if s > 0]) if self.challenge else len(self.seats))


# ---- the store's row ------------------------------------------------------------------

COLUMNS = ("job_id", "model_id", "state", "reward", "collateral", "pending_step", "pending_tx",
           "seats", "settled_block", "quiet_until", "updated_at")  # the rest is JSON in `data`
_FIELDS = {f.name for f in fields(JobRecord)}
_KEYED = {"job_id", "model_id", "updated_at"}  # set once, by the store


def job_columns(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record fields -> (column values, JSON keys) for the store. TypeError on a name
    that is no field of `JobRecord`."""
    unknown = set(values) - (_FIELDS - _KEYED)
    if unknown:
        raise TypeError(f"not fields of a job record: {sorted(unknown)}")
    columns: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for name, value in values.items():
        if name == "state":
            columns["state"] = JobState(value).value
        elif name in ("reward", "collateral"):
            columns[name] = str(int(value))
        elif name == "pending":
            columns["pending_step"] = None if value is None else Step(value.step).value
            columns["pending_tx"] = None if value is None else value.tx
        elif name == "seats":
            columns["seats"] = json.dumps(sorted({int(s) for s in value}))
        elif name == "quiet_until":
            columns["quiet_until"] = int(value)
        elif name == "terms":
            data |= ({} if value is None else {"r": value.r, "client": value.client,
                                               "input": value.input.hex(), "block": value.block})
        elif name == "round":
            data |= ({} if value is None else {"claim_deadline": value.claim_deadline,
                                               "commit_deadline": value.commit_deadline,
                                               "reveal_deadline": value.reveal_deadline})
        elif name == "settled":
            columns["settled_block"] = value.block if value is not None and value.block else None
            data["settled"] = None if value is None else {
                "status": int(value.status), "digest": value.digest.hex(), "block": value.block,
                "block_hash": value.block_hash.hex()}
        elif name in ("slashed", "faults"):
            data[name] = {str(seat): str(amount) for seat, amount in value.items()}
        elif name == "seat_collateral":
            data[name] = str(int(value))
        else:  # challenge, last_tx, failures, reason, redraw_at: JSON as they are
            data[name] = value
    return columns, data


def job_record(row: Mapping[str, Any]) -> JobRecord:
    """The store's row (COLUMNS and `data`) -> the record."""
    data = json.loads(row["data"])
    pending = None if row["pending_tx"] is None else Pending(Step(row["pending_step"]), row["pending_tx"])
    settled = data.get("settled")
    return JobRecord(
        job_id=int(row["job_id"]),
        model_id=bytes(row["model_id"]),
        state=JobState(row["state"]),
        reward=int(row["reward"]),
        collateral=int(row["collateral"]),
        terms=Terms(data["r"], data["client"], bytes.fromhex(data["input"]), data.get("block", 0))
        if "r" in data else None,
        round=Round(data["claim_deadline"], data["commit_deadline"], data["reveal_deadline"])
        if "claim_deadline" in data else None,
        challenge=bool(data.get("challenge")),
        pending=pending,
        last_tx=data.get("last_tx"),
        seats=tuple(json.loads(row["seats"])),
        seat_collateral=int(data.get("seat_collateral") or 0),
        failures=data.get("failures") or 0,
        reason=data.get("reason"),
        redraw_at=data.get("redraw_at"),
        quiet_until=row["quiet_until"],
        settled=None if not settled else Settlement(
            JobStatus(settled["status"]), bytes.fromhex(settled["digest"]), settled.get("block", 0),
            bytes.fromhex(settled.get("block_hash", ""))),
        slashed={int(s): int(a) for s, a in (data.get("slashed") or {}).items()},
        faults={int(s): int(f) for s, f in (data.get("faults") or {}).items()},
        updated_at=row["updated_at"],
    )
