"""The explorer's picture of the marketplace, folded from its events: jobs and the path
each took, providers (stake, earnings, slashes, models), the model registry, totals.

``ExplorerState.fork`` copies only the top-level maps and rows are frozen (an update
replaces the row), so a fork costs a few dict copies and the older state stays as it
was: ``gateway.explorer_sync`` keeps recent states as checkpoints to rewind to when
the chain reorganizes.

Three inputs, in this order per synced range: ``apply`` the range's events (chain
order), ``apply_views`` the job views read at its last block (the escrow a job holds
and an r = 1 delivery's challenge deadline: no event carries them), ``apply_time`` its
last block's timestamp (an r = 1 delivery becomes final when its challenge window ends,
with no transaction and no event).

>>> from client.events import LogMeta, ModelRegistered
>>> meta = LogMeta(1, b"h" * 32, b"t" * 32, 0, "0x" + "11" * 20)
>>> state = ExplorerState().fork()
>>> touched = state.apply([ModelRegistered(meta=meta, model_id=b"m" * 32, index=0, name="<b>x</b>",
...                                        weights_digest=b"w" * 32, format_version=1)])
>>> state.models[b"m" * 32].name
'<b>x</b>'
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from client.events import (Event, JobChallenged, JobClaimed, JobFinalized, JobPosted, ModelRegistered,
                           ModelStatusChanged, PayoutsReleased, ProviderRegistered, ProviderSlashed, ProviderUpdated,
                           ResultRevealed, SealCommitted, SeatDrawn, Staked, StakeWithdrawn, UnbondRequested,
                           WeightChanged)
from client.protocol import Fault, JobStatus
from client.records import JobInfo

NOBODY = "0x" + "00" * 20  # SeatDrawn's provider when no provider of the model has draw weight


@dataclass(frozen=True)
class Step:
    """One step of a job's path: ``kind`` is posted, drawn, claimed, sealed, revealed,
    delivered, challenged, slashed, or the end (finalized, unresolved, cancelled)."""

    kind: str
    block: int
    provider: str | None = None
    seat: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class JobRow:
    job_id: int
    client: str
    model_id: bytes
    r: int
    reward: int
    posted_block: int
    status: JobStatus = JobStatus.OPEN
    steps: tuple[Step, ...] = ()
    price: int | None = None  # escrow at post (r x (reward + fee)), from the job's view
    challenge_end: int | None = None  # r = 1 delivered: its challenge window's end (view)
    reveals: tuple[tuple[int, str, bytes], ...] = ()  # (seat, provider, digest) of every round
    challenged: bool = False
    slashed: int = 0
    provider_pay: int = 0


@dataclass(frozen=True)
class ProviderRow:
    address: str
    registered: bool = False
    price: int = 0
    model_ids: tuple[bytes, ...] = ()
    stake: int = 0  # held by the contract: free + locked + unbonding
    unbonding: int = 0
    weight: int = 0  # draw weight
    earnings: int = 0  # pay credited: r >= 2 and re-execution seats at settlement, r = 1 at release
    slashes: int = 0
    slashed: int = 0
    results: int = 0  # results revealed or delivered (seats)


@dataclass(frozen=True)
class ModelRow:
    model_id: bytes
    index: int
    name: str  # chosen by whoever registered it: escape it wherever it is shown
    weights_digest: bytes
    format_version: int
    active: bool = True


@dataclass
class ExplorerState:
    """Everything the explorer shows, as of block ``block``."""

    block: int = -1
    timestamp: int = 0
    jobs: dict[int, JobRow] = field(default_factory=dict)  # in posting order
    providers: dict[str, ProviderRow] = field(default_factory=dict)
    models: dict[bytes, ModelRow] = field(default_factory=dict)
    by_status: dict[JobStatus, int] = field(default_factory=lambda: dict.fromkeys(JobStatus, 0))
    escrow: int = 0  # held for jobs not settled (their price)
    slashed: int = 0
    awaiting_window: dict[int, None] = field(default_factory=dict)  # r = 1 delivered, window running

    def fork(self) -> ExplorerState:
        """A copy to apply more to, leaving this one as it is."""
        return dataclasses.replace(self, jobs=dict(self.jobs), providers=dict(self.providers),
                                   models=dict(self.models), by_status=dict(self.by_status),
                                   awaiting_window=dict(self.awaiting_window))

    @property
    def stake(self) -> int:
        return sum(p.stake for p in self.providers.values())

    def recent_jobs(self, limit: int) -> list[JobRow]:
        """The last ``limit`` jobs posted, newest first."""
        out = []
        for job_id in reversed(self.jobs):
            if len(out) == limit:
                break
            out.append(self.jobs[job_id])
        return out

    # ------------------------------------------------------------ events

    def apply(self, events: Iterable[Event]) -> set[int]:
        """Fold events (in chain order) in; the ids of the jobs they touched."""
        touched = set()
        for event in events:
            handler = _HANDLERS.get(type(event))
            if handler is None:  # money moves, parameters, owner: not on the page
                continue
            job_id = getattr(event, "job_id", None)
            if job_id is not None and not isinstance(event, JobPosted) and job_id not in self.jobs:
                continue  # a job posted before the indexed range
            handler(self, event)
            if job_id is not None:
                touched.add(job_id)
        return touched

    def _provider(self, address: str) -> ProviderRow:
        return self.providers.get(address) or ProviderRow(address)

    def _provider_set(self, address: str, **values) -> None:
        self.providers[address] = dataclasses.replace(self._provider(address), **values)

    def _provider_add(self, address: str, **deltas: int) -> None:
        row = self._provider(address)
        self.providers[address] = dataclasses.replace(row, **{k: getattr(row, k) + v for k, v in deltas.items()})

    def _step(self, event: Event, kind: str, *, provider: str | None = None, seat: int | None = None,
              detail: str = "", **changes) -> None:
        row = self.jobs[event.job_id]
        step = Step(kind, event.meta.block_number, provider, seat, detail)
        self.jobs[event.job_id] = dataclasses.replace(row, steps=row.steps + (step,), **changes)

    def _set_status(self, job_id: int, status: JobStatus) -> None:
        row = self.jobs[job_id]
        if row.status == status:
            return
        self.by_status[row.status] -= 1
        self.by_status[status] += 1
        if status.settled and not row.status.settled and row.price is not None:
            self.escrow -= row.price
        self.awaiting_window.pop(job_id, None)
        if status == JobStatus.DELIVERED:
            self.awaiting_window[job_id] = None
        self.jobs[job_id] = dataclasses.replace(row, status=status)

    def _posted(self, e: JobPosted) -> None:
        self.jobs[e.job_id] = JobRow(e.job_id, e.client, e.model_id, e.r, e.reward, e.meta.block_number,
                                     steps=(Step("posted", e.meta.block_number, detail=f"r={e.r}"),))
        self.by_status[JobStatus.OPEN] += 1

    def _drawn(self, e: SeatDrawn) -> None:
        self._step(e, "drawn", provider=None if e.provider == NOBODY else e.provider, seat=e.seat,
                   detail="nobody to draw" if e.provider == NOBODY else "")

    def _claimed(self, e: JobClaimed) -> None:
        self._step(e, "claimed", provider=e.provider, seat=e.seat)

    def _sealed(self, e: SealCommitted) -> None:
        self._step(e, "sealed", provider=e.provider, seat=e.seat)

    def _revealed(self, e: ResultRevealed) -> None:
        row = self.jobs[e.job_id]
        delivery = row.r == 1 and e.seat == 0
        self._step(e, "delivered" if delivery else "revealed", provider=e.provider, seat=e.seat,
                   detail="0x" + e.digest.hex()[:12], reveals=row.reveals + ((e.seat, e.provider, e.digest),))
        self._provider_add(e.provider, results=1)
        if delivery:
            self._set_status(e.job_id, JobStatus.DELIVERED)

    def _challenged(self, e: JobChallenged) -> None:
        self._step(e, "challenged", provider=e.challenger, challenged=True)
        self._set_status(e.job_id, JobStatus.CHALLENGED)

    def _slashed(self, e: ProviderSlashed) -> None:
        row = self.jobs[e.job_id]
        self._step(e, "slashed", provider=e.provider, seat=e.seat, detail=e.reason.name.lower(),
                   slashed=row.slashed + e.amount)
        self._provider_add(e.provider, stake=-e.amount, slashes=1, slashed=e.amount)
        self.slashed += e.amount

    def _finalized(self, e: JobFinalized) -> None:
        self._step(e, e.status.name.lower(), provider_pay=e.provider_pay)
        self._set_status(e.job_id, e.status)
        if e.status == JobStatus.FINALIZED:
            self._credit_pay(self.jobs[e.job_id], e)

    def _credit_pay(self, row: JobRow, e: JobFinalized) -> None:
        """Each seat of the deciding round that revealed the standing digest earned the
        reward; a delivery that survived its challenge earned the rest (2 x reward)."""
        deciding = [(seat, p) for seat, p, digest in row.reveals
                    if digest == e.result_digest and (seat >= 1 if row.challenged else seat < row.r)]
        for _, provider in deciding:
            self._provider_add(provider, earnings=row.reward)
        if row.challenged:
            convicted = any(s.kind == "slashed" and s.detail == Fault.LOST_CHALLENGE.name.lower() for s in row.steps)
            delivered = next((p for seat, p, _ in row.reveals if seat == 0), None)
            rest = e.provider_pay - row.reward * len(deciding)
            if not convicted and delivered is not None and rest > 0:
                self._provider_add(delivered, earnings=rest)

    def _released(self, e: PayoutsReleased) -> None:
        self._provider_add(e.provider, earnings=e.pay)

    def _registered(self, e: ProviderRegistered | ProviderUpdated) -> None:
        self._provider_set(e.provider, registered=True, price=e.price, model_ids=e.model_ids)

    def _staked(self, e: Staked) -> None:
        self._provider_add(e.provider, stake=e.amount)

    def _unbond(self, e: UnbondRequested) -> None:
        self._provider_set(e.provider, unbonding=e.amount)  # the event carries the unbonding total

    def _withdrawn(self, e: StakeWithdrawn) -> None:
        self._provider_add(e.provider, stake=-e.amount)
        self._provider_set(e.provider, unbonding=0)  # a withdrawal takes the whole unbonding total

    def _weight(self, e: WeightChanged) -> None:
        self._provider_set(e.provider, weight=e.weight)

    def _model(self, e: ModelRegistered) -> None:
        self.models[e.model_id] = ModelRow(e.model_id, e.index, e.name, e.weights_digest, e.format_version)

    def _model_status(self, e: ModelStatusChanged) -> None:
        if e.model_id in self.models:
            self.models[e.model_id] = dataclasses.replace(self.models[e.model_id], active=e.active)

    # ------------------------------------------------------------ views and time

    def apply_views(self, infos: Iterable[JobInfo]) -> None:
        """What only the job views say: the escrow a job was posted with, an r = 1
        delivery's challenge deadline."""
        for info in infos:
            row = self.jobs.get(info.job_id)
            if row is None:
                continue
            if row.price is None and not row.status.settled:
                self.escrow += info.price
            end = info.challenge_end if row.status == JobStatus.DELIVERED else row.challenge_end
            self.jobs[info.job_id] = dataclasses.replace(row, price=info.price, challenge_end=end)

    def apply_time(self, block: int, timestamp: int) -> None:
        """The state as of ``block`` (mined at ``timestamp``): r = 1 deliveries whose
        challenge window ended are final (the contract reads them so, with no event)."""
        self.block, self.timestamp = block, timestamp
        for job_id in list(self.awaiting_window):
            row = self.jobs[job_id]
            if row.challenge_end is not None and timestamp > row.challenge_end:
                self.jobs[job_id] = dataclasses.replace(
                    row, steps=row.steps + (Step("finalized", block, detail="challenge window over"),))
                self._set_status(job_id, JobStatus.FINALIZED)


_HANDLERS = {
    JobPosted: ExplorerState._posted, SeatDrawn: ExplorerState._drawn, JobClaimed: ExplorerState._claimed,
    SealCommitted: ExplorerState._sealed, ResultRevealed: ExplorerState._revealed,
    JobChallenged: ExplorerState._challenged, ProviderSlashed: ExplorerState._slashed,
    JobFinalized: ExplorerState._finalized, PayoutsReleased: ExplorerState._released,
    ProviderRegistered: ExplorerState._registered, ProviderUpdated: ExplorerState._registered,
    Staked: ExplorerState._staked, UnbondRequested: ExplorerState._unbond, StakeWithdrawn: ExplorerState._withdrawn,
    WeightChanged: ExplorerState._weight, ModelRegistered: ExplorerState._model,
    ModelStatusChanged: ExplorerState._model_status,
}
