"""The marketplace explorer page, served by the gateway at ``/``.

``GET /`` is a server-rendered page (Jinja2, every value autoescaped: model names and
other chain strings are chosen by whoever sent the transaction); its small inline
script polls ``GET /explorer/sections`` (the same sections, re-rendered on the server;
``304`` while nothing changed) and swaps them in, so jobs and providers appear without
a reload. ``GET /explorer/state`` answers the same picture as JSON (amounts in base
units, as strings). No asset comes from elsewhere, and a Content-Security-Policy lets
only the page's own script (by nonce) run.

The explorer shows only public chain data, so it needs no API key, also when the API
needs one; ``verinfer serve --no-explorer`` leaves it out. A background task follows
the chain (``gateway.explorer_sync``) every ``explorer_interval`` seconds.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader

from client import Client
from client.errors import VerinferError
from client.marketplace import Token
from client.protocol import JobStatus
from gateway.explorer_index import ExplorerState, JobRow, ProviderRow
from gateway.explorer_sync import ExplorerSync

log = logging.getLogger("verinfer.gateway.explorer")

RECENT_JOBS = 50  # jobs on the page and in /explorer/state


@dataclass(frozen=True)
class TokenInfo:
    address: str
    symbol: str
    decimals: int

    def format(self, amount: int) -> str:
        """Base units as whole tokens with the symbol: ``1.5 VPAY``."""
        value = Decimal(amount) / Decimal(10) ** self.decimals
        return f"{value.quantize(Decimal('0.0001')).normalize():f} {self.symbol}"

    @classmethod
    def read(cls, token: Token) -> TokenInfo:
        return cls(token.address, token.symbol(), token.decimals())


class Explorer:
    """The chain follower and what the page shows of it."""

    def __init__(self, client: Client, interval: float = 1.0):
        self.client, self.interval = client, interval
        self.sync = ExplorerSync(client.marketplace, client.start_block)
        self.version = 0  # bumped on every change: the sections' ETag
        self.error: str | None = None  # why the last sync failed, shown on the page
        self.pay: TokenInfo | None = None
        self.stake: TokenInfo | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="gateway-explorer")
        self._task: asyncio.Task | None = None
        self._env = Environment(loader=PackageLoader("gateway", "explorer_templates"), autoescape=True,
                                trim_blocks=True, lstrip_blocks=True)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="gateway-explorer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await loop.run_in_executor(self._thread, self._step):
                    self.version += 1
                if self.error is not None:
                    self.error = None
                    self.version += 1
            except Exception as exc:  # the node is down or refused (or a bug): say so, keep trying
                error = f"{type(exc).__name__}: {exc}" if isinstance(exc, VerinferError) else type(exc).__name__
                if self.error != error:  # once per kind of failure, not once a second
                    log.warning("explorer sync failed: %s", error, exc_info=not isinstance(exc, VerinferError))
                    self.error = error
                    self.version += 1
            await asyncio.sleep(self.interval)

    def _step(self) -> bool:
        if self.pay is None:
            self.pay = TokenInfo.read(self.client.pay_token())
            self.stake = TokenInfo.read(Token(self.client.w3, self.client.marketplace.stake_token()))
        return self.sync.sync()

    # ------------------------------------------------------------ what is shown

    def snapshot(self) -> dict:
        """The state as JSON: totals, the recent jobs with their paths, providers, models."""
        state = self.sync.state
        return {
            "marketplace": self.client.marketplace.address, "block": state.block, "timestamp": state.timestamp,
            "version": self.version, "error": self.error,
            "tokens": {"pay": self.pay and vars(self.pay), "stake": self.stake and vars(self.stake)},
            "totals": {"jobs": len(state.jobs), "by_status": {s.name.lower(): n for s, n in state.by_status.items()},
                       "escrow": str(state.escrow), "stake": str(state.stake), "slashed": str(state.slashed),
                       "providers": len(state.providers), "models": len(state.models)},
            "jobs": [_job_json(state, job) for job in state.recent_jobs(RECENT_JOBS)],
            "providers": [_provider_json(p) for p in _providers(state)],
            "models": [{"model_id": "0x" + m.model_id.hex(), "index": m.index, "name": m.name, "active": m.active,
                        "format_version": m.format_version, "weights_digest": "0x" + m.weights_digest.hex()}
                       for m in state.models.values()],
        }

    def render(self, template: str, **extra) -> str:
        state = self.sync.state
        return self._env.get_template(template).render(
            state=state, jobs=state.recent_jobs(RECENT_JOBS), providers=_providers(state), statuses=list(JobStatus),
            model_name=lambda model_id: _model_name(state, model_id), pay=self.pay, stake=self.stake,
            error=self.error, marketplace=self.client.marketplace.address, short=_short, **extra)

    def etag(self) -> str:
        return f'"{self.version}"'


def _providers(state: ExplorerState) -> list[ProviderRow]:
    return sorted(state.providers.values(), key=lambda p: (-p.stake, p.address))


def _model_name(state: ExplorerState, model_id: bytes) -> str:
    model = state.models.get(model_id)
    return model.name if model is not None else "0x" + model_id.hex()[:12]


def _short(address: str | None) -> str:
    return "" if not address else f"{address[:6]}…{address[-4:]}"


def _job_json(state: ExplorerState, job: JobRow) -> dict:
    return {"job_id": job.job_id, "client": job.client, "model_id": "0x" + job.model_id.hex(),
            "model": _model_name(state, job.model_id), "r": job.r, "reward": str(job.reward),
            "status": job.status.name.lower(), "price": None if job.price is None else str(job.price),
            "posted_block": job.posted_block, "slashed": str(job.slashed), "provider_pay": str(job.provider_pay),
            "steps": [{"kind": s.kind, "block": s.block, "provider": s.provider, "seat": s.seat, "detail": s.detail}
                      for s in job.steps]}


def _provider_json(p: ProviderRow) -> dict:
    return {"address": p.address, "registered": p.registered, "price": str(p.price), "stake": str(p.stake),
            "unbonding": str(p.unbonding), "weight": str(p.weight), "earnings": str(p.earnings),
            "slashes": p.slashes, "slashed": str(p.slashed), "results": p.results,
            "model_ids": ["0x" + m.hex() for m in p.model_ids]}


def mount_explorer(app: FastAPI, explorer: Explorer) -> None:
    """The explorer's routes (no API key: public chain data only)."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        # Only the page's own script runs, and nothing is fetched from elsewhere: a
        # chain string that escaped its escaping still could not run.
        policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                  "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
                  "frame-ancestors 'none'")
        page = explorer.render("page.html", nonce=nonce, etag=explorer.etag(),
                               poll_ms=max(250, int(explorer.interval * 1000)))
        return HTMLResponse(page,
                            headers={"Content-Security-Policy": policy, "ETag": explorer.etag(),
                                     "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @app.get("/explorer/sections", response_class=HTMLResponse, include_in_schema=False)
    async def sections(request: Request) -> Response:
        headers = {"ETag": explorer.etag(), "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == explorer.etag():
            return Response(status_code=304, headers=headers)
        return HTMLResponse(explorer.render("sections.html"), headers=headers)

    @app.get("/explorer/state")
    async def state() -> JSONResponse:
        return JSONResponse(explorer.snapshot(), headers={"Cache-Control": "no-store"})
