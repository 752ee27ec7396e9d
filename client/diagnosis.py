"""Why nobody takes a job: what the chain says about it, read as the providers' agents
read it.

A provider's agent refuses a job whose input its engine cannot answer, whose reward is
below the price the provider declared on chain, or whose collateral its free stake
cannot cover; seats of r >= 2 jobs go only to providers with a draw weight. All of that
is public: the input is in the job's ``JobPosted`` event, prices, stakes and weights are
views. So a client (``Client.why``, ``verinfer why JOB``) learns the reasons from the
chain alone, with no provider having to spend gas to say them, and for the job as it was
posted, including by a client that did not check its input first.
"""
from __future__ import annotations

from dataclasses import dataclass

from client.errors import InvalidInput
from client.events import JobPosted
from client.inputs import job_payload
from client.protocol import JobStatus
from client.records import JobInfo, ProviderInfo


@dataclass(frozen=True)
class Takers:
    """The providers of a model split by whether they would take a seat at a reward."""

    serving: list[ProviderInfo]
    priced_out: list[ProviderInfo]  # asking price above the reward
    short_of_stake: list[ProviderInfo]  # free stake below the seat's collateral
    undrawable: list[ProviderInfo]  # r >= 2: no draw weight (stake below min_draw_stake)
    takers: list[ProviderInfo]
    taker_share: float  # r >= 2: the takers' share of the model's draw weight; r = 1: 1 or 0


def takers(serving: list[ProviderInfo], weights: dict[str, int], reward: int, collateral: int, r: int) -> Takers:
    """Who of ``serving`` takes a seat of an r-seat job at ``reward`` (a seat locks
    ``collateral``): the rule every agent applies, and the contract's for draws."""
    priced_out = [p for p in serving if p.price > reward]
    short = [p for p in serving if p.price <= reward and p.free < collateral]
    willing = [p for p in serving if p.price <= reward and p.free >= collateral]
    if r < 2:
        return Takers(serving, priced_out, short, [], willing, 1.0 if willing else 0.0)
    undrawable = [p for p in willing if weights.get(p.address, 0) == 0]
    drawn = [p for p in willing if weights.get(p.address, 0) > 0]
    total = sum(weights.values())
    share = sum(weights[p.address] for p in drawn) / total if total else 0.0
    return Takers(serving, priced_out, short, undrawable, drawn, share)


@dataclass(frozen=True)
class Diagnosis:
    """A job's state and, while it waits for providers, every reason the chain shows."""

    job: JobInfo
    seats: int  # of the current round
    takers: int
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        if not self.reasons:
            return (f"job {self.job.job_id} ({self.job.status.name}): nothing on chain keeps providers away "
                    f"({self.takers} would take its {self.seats} seat(s))")
        return f"job {self.job.job_id} ({self.job.status.name}): " + "; ".join(self.reasons)


def diagnose(client, job_id: int) -> Diagnosis:
    """The reasons of ``Diagnosis`` for one job (``client``: a ``client.Client``)."""
    info = client.job(job_id)
    seats = info.round_seats
    model = client.model(info.model_id)
    reasons: list[str] = []
    [posted] = [e for e in client.history(job_id) if isinstance(e, JobPosted)]
    try:
        job_payload(model.format_version, posted.input)
    except InvalidInput as exc:
        reasons.append(f"no honest provider can answer its input ({exc})")
    if not model.active:
        reasons.append(f"model {model.name} is retired: no new seats are taken")
    serving = client.providers(info.model_id)
    found = takers(serving, client.marketplace.draw_weights([p.address for p in serving]), info.reward,
                   info.collateral_per_seat, seats)
    if not serving:
        reasons.append(f"no registered provider serves model {model.name}")
    if found.priced_out:
        reasons.append(f"{len(found.priced_out)} of {len(serving)} provider(s) ask more than the reward "
                       f"{info.reward} (lowest asking price {min(p.price for p in found.priced_out)})")
    if found.short_of_stake:
        reasons.append(f"{len(found.short_of_stake)} provider(s) lack the free stake for the collateral "
                       f"{info.collateral_per_seat}")
    if found.undrawable:
        reasons.append(f"{len(found.undrawable)} provider(s) have no draw weight (stake below the draw minimum)")
    if serving and len(found.takers) < seats:
        reasons.append(f"{len(found.takers)} provider(s) would take a seat; the job needs {seats}")
    waiting = info.status in (JobStatus.OPEN, JobStatus.CHALLENGED) and info.nclaimed < seats
    if waiting and client.w3.eth.get_block("latest")["timestamp"] > info.claim_deadline:
        reasons.append("its claim deadline passed: finalize refunds the untaken seats")
    return Diagnosis(info, seats, len(found.takers), tuple(reasons))
