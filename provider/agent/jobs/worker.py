"""The job worker: a service whose tick runs the phases in order: events (the watcher,
into the job book), then small objects over the shared `JobSteps`: reconcile (our
mined transactions and reorgs), take (claim), seal (compute, then deliver or commit),
settle (reveal, finalize).

Its thread is the only one that writes job rows: the job book writes them from the
events phase, the other phases through `JobSteps`; the tx manager's thread writes
transaction rows alone. So a phase reads a job and writes it back with no other
writer in between."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from web3 import Web3

from client.chain import headers
from client.errors import ContractError
from client.marketplace import Marketplace, Token
from client.transport import TRANSIENT_ERRORS, Backoff, retry
from provider.agent.config import BatchConfig, PolicyConfig
from provider.agent.errors import ReorgTooDeep
from provider.agent.jobs.reconcile import Reconciler
from provider.agent.jobs.runner import JobRunner
from provider.agent.jobs.seal import Sealer
from provider.agent.jobs.settle import Settler
from provider.agent.jobs.steps import JobSteps
from provider.agent.jobs.take import Taker
from provider.agent.metrics import Metrics
from provider.agent.partition import ProviderDirectory
from provider.agent.service import Service
from provider.agent.store import Store
from provider.agent.txmanager import TxManager
from provider.agent.watcher import Watcher

log = logging.getLogger("verinfer.agent.jobs")

BOOTSTRAP = ("register", "update_provider", "approve", "stake")  # kinds of ensure_registered
# Log ranges (of watcher.max_range blocks each) the events phase reads per tick. An agent
# far behind (a first start on a long-lived marketplace, a long outage) thus still runs
# the other phases between ranges: reveals and finalizes have deadlines that do not
# wait for the catch-up. While behind, the next tick follows at once.
RANGES_PER_TICK = 8


class JobWorker(Service):
    """Moves held jobs forward: claim, compute, commit or deliver, reveal, finalize."""

    name = "jobs"

    def __init__(
        self,
        *,
        w3: Web3,
        store: Store,
        txm: TxManager,
        market: Marketplace,
        watcher: Watcher,
        engines: Mapping[bytes, JobRunner],
        policy: PolicyConfig,
        claim_batch: BatchConfig,
        engine_batch: BatchConfig,
        poll_interval: float = 0.25,
        metrics: Metrics | None = None,
        result_hook: Callable[[int, bytes], bytes] | None = None,
        start_block: int = 0,
        reorg_window: int = 64,
    ):
        """`watcher`: delivers the marketplace's events to the job book, run as the
        tick's first phase. `engines`: one per model served, keyed by model id.
        `result_hook(job_id, result) -> result` replaces results before they are sealed:
        only for demos and fault tests of a dishonest provider. `start_block`: where to
        look for provider registrations (the marketplace's deploy block). `reorg_window`:
        how many blocks a settlement stays open to a reorg (the watcher's)."""
        super().__init__()
        self.w3, self.store, self.txm, self.market, self.watcher = w3, store, txm, market, watcher
        self._watch_delays = Backoff().delays()
        self._watch_after = 0.0  # monotonic time before which a failed range isn't retried
        self.engines, self.poll_interval = dict(engines), poll_interval
        metrics = metrics or Metrics()
        self.steps = JobSteps(store=store, txm=txm, market=market, policy=policy,
                              sent=metrics.counter("verinfer_job_steps_total", "Job transitions sent"))
        self.reconcile = Reconciler(self.steps, w3, reorg_window)
        self.seal = Sealer(self.steps, self.engines, engine_batch, metrics, result_hook)
        self.take = Taker(self.steps, self.engines, claim_batch,
                          ProviderDirectory(market, start_block=start_block), self.seal.queue)
        self.settle = Settler(self.steps, poll_interval)

    @property
    def head_block(self) -> int | None:
        """The chain head the events phase last saw (for the dashboard)."""
        return self.watcher.head_block

    @property
    def stake_free(self) -> int | None:
        """Our free stake as last read from the contract (for the dashboard)."""
        return self.take.stake_free

    # ---- lifecycle -------------------------------------------------------------------

    def setup(self) -> None:
        # Waits out an unreachable endpoint (ensure_registered is idempotent).
        retry(self.ensure_registered, what="provider registration", stop=self.stop_event)

    def run_forever(self) -> None:
        delays = Backoff().delays()
        while not self.stop_event.is_set():
            try:
                again = self.tick()
                delays = Backoff().delays()
                delay = 0.0 if again else self.poll_interval
            except ReorgTooDeep:  # our records may hold what the chain lost: stop the agent
                raise
            except ContractError:  # a view reverted: a job-level surprise, not an outage
                delay = next(delays)
                log.exception("job step failed")
            except TRANSIENT_ERRORS as err:
                delay = next(delays)
                log.warning("jobs: rpc unavailable",
                            extra={"error": type(err).__name__, "retry_in": round(delay, 2)})
            except Exception:  # a failing job never kills the agent
                delay = next(delays)
                log.exception("job step failed")
            if delay:
                self.stop_event.wait(delay)

    def ensure_registered(self) -> None:
        """Register, declare models and top up stake to `policy.stake` when needed."""
        models, policy = sorted(self.engines), self.steps.policy
        for tx in self.store.open_txs():  # a restart mid-bootstrap: let those land first
            if tx.kind in BOOTSTRAP:
                self.txm.wait(tx.id, timeout=300)
        me = self.txm.address
        info = self.market.provider(me)
        if not info.registered:
            log.info("registering provider", extra={"models": len(models), "price": policy.price})
            self.steps.send_and_wait(self.market.build_register(models, policy.price), "register")
        elif set(info.model_ids) != set(models) or info.price != policy.price:
            self.steps.send_and_wait(self.market.build_update_provider(models, policy.price),
                                     "update_provider")
        self.take.stake_free = info.free
        bonded = info.free + info.locked
        if policy.stake > bonded:
            need = policy.stake - bonded
            token = Token(self.w3, self.market.stake_token())
            if token.allowance(me, self.market.address) < need:
                self.steps.send_and_wait(token.build_approve(self.market.address, need), "approve")
            self.steps.send_and_wait(self.market.build_stake(need), "stake")
            log.info("stake topped up", extra={"added": need, "stake": policy.stake})

    # ---- one tick --------------------------------------------------------------------

    def tick(self) -> bool:
        """Run every phase once. Returns True while the events phase is behind the safe
        head or the engine has a backlog (it computes one batch a tick): the caller
        ticks again at once."""
        behind = self._watch()
        self.steps.head = head = headers(self.w3, ["latest"])[0]
        now = head.timestamp
        self.reconcile.run(now)
        self.take.run(now)
        computed = self.seal.run()
        self.settle.reveal(now)
        self.settle.finalize(now)
        return behind or computed

    def _watch(self) -> bool:
        """The events phase: up to RANGES_PER_TICK ranges into the job book. Returns
        True if it stopped short of the safe head. An unreachable node and a reorg
        deeper than remembered end the tick (`run_forever` backs off, or stops); any
        other failure of a range (nothing of it was checkpointed) is logged and retried
        after a backoff while the other phases go on."""
        if time.monotonic() < self._watch_after:
            return False
        try:
            caught_up = self.watcher.catch_up(RANGES_PER_TICK)
        except (ReorgTooDeep, *TRANSIENT_ERRORS):
            raise
        except Exception:
            delay = next(self._watch_delays)
            self._watch_after = time.monotonic() + delay
            log.exception("watcher: range failed; retrying", extra={"retry_in": round(delay, 2)})
            return False
        self._watch_delays = Backoff().delays()
        return not caught_up
