"""The gateway's work, under the HTTP layer: the chain through the SDK (``Market``), and
the batching of concurrent requests into shared posts (``Batcher``).

Everything that sends a transaction runs on one thread (the SDK's signer takes the
account's next nonce from the node, so two concurrent sends would collide); waits,
reads and verification run on a pool beside it. A request's inputs always travel in
one ``post_jobs`` transaction (at most MAX_BATCH of them), shared with the requests
that arrived within the batch window on the same terms, so a request is posted all or
nothing, and many small requests cost one transaction.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from client import Client
from client.errors import ResultUnavailable, RpcUnavailable, TransactionTimeout, VerinferError, WaitTimeout
from client.events import JobPosted, ResultRevealed
from client.protocol import MAX_BATCH
from client.records import JobInfo, ModelInfo, VerifiedResult
from client.transport import translate_errors
from gateway.config import GatewayConfig, Policy, Until
from gateway.errors import APIError, error_for, unknown_model

log = logging.getLogger("verinfer.gateway")

WAITERS = 256  # requests waiting for their jobs at once; more queue for a thread


@dataclass(frozen=True)
class Terms:
    """What jobs posted together share."""

    model_id: bytes
    r: int
    reward: int
    until: Until


@dataclass(frozen=True)
class Posted:
    """Jobs of one post and the first block their events may be in."""

    job_ids: tuple[int, ...]
    from_block: int


@dataclass(frozen=True)
class Answer:
    """One job's result, verified against the chain's digest, and where it came from."""

    job_id: int
    r: int
    verified: VerifiedResult
    post_tx: bytes
    result_tx: bytes
    audit: bool = False  # chosen for re-execution by the gateway (gateway.audit)


class Market:
    """The SDK calls the gateway makes (blocking: run them off the event loop)."""

    def __init__(self, client: Client, config: GatewayConfig):
        self.client, self.config = client, config
        self._models: list[ModelInfo] = []
        self._models_at = float("-inf")
        self._quotes: dict[tuple, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def models(self) -> list[ModelInfo]:
        """The registered models, re-read at most every ``models_ttl`` seconds."""
        with self._lock:
            if time.monotonic() - self._models_at > self.config.models_ttl:
                self._models = self.client.models()
                self._models_at = time.monotonic()
            return list(self._models)

    def resolve(self, model: str) -> ModelInfo:
        """A model by its name or its 0x id (``APIError`` 404 if none)."""
        found = [m for m in self.models() if model in (m.name, "0x" + m.model_id.hex())]
        if len(found) != 1:
            raise unknown_model(model) if not found else APIError(
                400, f"{len(found)} models are named '{model}': ask by 0x id", param="model", code="ambiguous_model")
        return found[0]

    def model_key(self, model: ModelInfo) -> str:
        """The id a model is listed under: its name when no other model has it."""
        named = sum(m.name == model.name for m in self.models())
        return model.name if named == 1 else "0x" + model.model_id.hex()

    def price(self, policy: Policy, count: int) -> int:
        """The escrow of ``count`` jobs on ``policy``'s terms."""
        return self.client.marketplace.job_price(policy.r, policy.reward, count)

    def quote(self, model: ModelInfo, policy: Policy) -> dict:
        """What one input costs on ``policy``'s terms, and who would serve it (cached for
        ``models_ttl`` seconds: counting providers reads their registrations' logs)."""
        key = (model.model_id, policy.r, policy.reward)
        with self._lock:
            cached = self._quotes.get(key)
        if cached is not None and time.monotonic() - cached[0] <= self.config.models_ttl:
            return cached[1]
        quote = self._quote(model, policy)
        with self._lock:
            self._quotes[key] = (time.monotonic(), quote)
        return quote

    def _quote(self, model: ModelInfo, policy: Policy) -> dict:
        estimate = self.client.estimate(reward=policy.reward, r=policy.r, model_id=model.model_id)
        token = self.client.pay_token()
        return {"r": policy.r, "reward": str(policy.reward), "per_input": str(estimate.per_job),
                "fee_per_seat": str(estimate.fee_per_seat), "providers": estimate.providers,
                "enough_providers": estimate.enough_providers, "taker_share": estimate.taker_share,
                "token": {"address": token.address, "symbol": token.symbol(), "decimals": token.decimals()}}

    def post(self, terms: Terms, inputs: Sequence[bytes]) -> Posted:
        """Post one job per input: one transaction (at most MAX_BATCH inputs)."""
        assert 1 <= len(inputs) <= MAX_BATCH
        with translate_errors():
            head = self.client.w3.eth.block_number
        ids = self.client.post_many(list(inputs), reward=terms.reward, r=terms.r, model_id=terms.model_id,
                                    deadlines=self.config.deadlines)
        return Posted(tuple(ids), head + 1)

    def wait(self, posted: Posted, until: Until) -> tuple[dict[int, JobInfo], bool]:
        """The jobs' last views once all reached ``until``, or when the wait timed out
        (then True)."""
        try:
            return self.client.wait(posted.job_ids, timeout=self.config.wait_timeout, until=until), False
        except WaitTimeout as exc:
            return exc.jobs, True

    def answers(self, posted: Posted, job_ids: Sequence[int], r: int) -> dict[int, Answer]:
        """The verified results of ``job_ids`` (of ``posted``): one log query for the
        posts and reveals, whose bytes ``Client.results`` checks against the digests the
        chain holds (``ResultUnavailable`` if a job has no matching reveal)."""
        events = self.client.marketplace.job_events(job_ids, posted.from_block,
                                                    events=["JobPosted", "ResultRevealed"])
        posts = {e.job_id: e.meta.tx_hash for e in events if isinstance(e, JobPosted)}
        reveals = [e for e in events if isinstance(e, ResultRevealed)]
        verified = self.client.results(job_ids, from_block=posted.from_block, reveals=reveals)
        out = {}
        for job_id, result in verified.items():
            result_tx = next((e.meta.tx_hash for e in reveals if e.job_id == job_id and e.result == result.result),
                             b"")
            out[job_id] = Answer(job_id, r, result, posts.get(job_id, b""), result_tx)
        return out


@dataclass
class Order:
    """One request's inputs waiting to be posted, and where its answers go."""

    terms: Terms
    inputs: list[bytes]
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)
    audit: float = 0.0  # share of its r = 1 answers to audit
    key: str | None = None  # the API key it came with


class Batcher:
    """Collects concurrent requests into shared posts, then waits for and verifies them.

    >>> answers = await batcher.submit(terms, [b"some text"])  # doctest: +SKIP
    """

    def __init__(self, market: Market, config: GatewayConfig, *, readers: int = 16):
        self.market, self.config = market, config
        self._queue: asyncio.Queue[Order] = asyncio.Queue()
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="gateway-send")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="gateway-read")
        # A thread per request waiting for its jobs (each polls the chain): apart from
        # the readers, so that a crowd of waits never holds up a quick read.
        self._waiters = ThreadPoolExecutor(WAITERS, thread_name_prefix="gateway-wait")
        self._task: asyncio.Task | None = None
        self._waits: set[asyncio.Task] = set()
        self.posts = 0  # post transactions sent (a metric, and for tests)
        self.auditor = None  # gateway.audit.Auditor, given the answers before their callers

    async def read(self, fn, *args):
        """Run a blocking SDK read on the reader pool."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    async def send(self, fn, *args):
        """Run a blocking SDK call that sends transactions on the sender thread (the
        account's one nonce sequence)."""
        return await asyncio.get_running_loop().run_in_executor(self._sender, fn, *args)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gateway-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, *self._waits, return_exceptions=True)
        self._sender.shutdown(wait=False, cancel_futures=True)
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._waiters.shutdown(wait=False, cancel_futures=True)

    async def submit(self, terms: Terms, inputs: list[bytes], *, audit: float = 0.0,
                     key: str | None = None) -> list[Answer]:
        """Post ``inputs`` (at most MAX_BATCH) on ``terms`` with whatever else arrives in
        the window; their verified answers in order (``APIError`` otherwise). ``audit``:
        the share of r = 1 answers the auditor re-executes; ``key``: the API key's id."""
        order = Order(terms, inputs, asyncio.get_running_loop().create_future(), audit=audit, key=key)
        await self._queue.put(order)
        return await order.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            orders = [await self._queue.get()]
            close = orders[0].arrived + self.config.batch_window
            while (wait := close - time.monotonic()) > 0:
                try:
                    orders.append(await asyncio.wait_for(self._queue.get(), wait))
                except TimeoutError:
                    break
            while not self._queue.empty():  # arrived while the last post was in flight
                orders.append(self._queue.get_nowait())
            for terms, chunk in _chunks(orders):
                inputs = [x for order in chunk for x in order.inputs]
                try:
                    posted = await loop.run_in_executor(self._sender, self.market.post, terms, inputs)
                except VerinferError as exc:
                    # A revert (caught before sending, or mined and undone) or a refused
                    # input escrowed nothing; a lost node or receipt may hide a mined post.
                    _fail(chunk, error_for(exc), posted=isinstance(exc, (RpcUnavailable, TransactionTimeout)))
                    continue
                except Exception as exc:  # never leave a request hanging
                    log.exception("post failed")
                    _fail(chunk, APIError(500, f"post failed: {type(exc).__name__}", type="api_error",
                                          code="internal_error"))
                    continue
                self.posts += 1
                log.info("posted %d jobs for %d requests (r=%d, reward=%d)", len(inputs), len(chunk),
                         terms.r, terms.reward)
                task = loop.create_task(self._finish(terms, chunk, posted))
                self._waits.add(task)
                task.add_done_callback(self._waits.discard)

    async def _finish(self, terms: Terms, chunk: list[Order], posted: Posted) -> None:
        """Each order of the post answered as soon as its own jobs are done: a request
        does not wait for the slowest job of the requests it shared the post with."""
        waits, start = [], 0
        for order in chunk:
            ids = posted.job_ids[start:start + len(order.inputs)]
            start += len(order.inputs)
            waits.append(self._finish_order(terms, order, Posted(ids, posted.from_block)))
        await asyncio.gather(*waits)

    async def _finish_order(self, terms: Terms, order: Order, posted: Posted) -> None:
        ids = list(posted.job_ids)
        try:
            infos, timed_out = await asyncio.get_running_loop().run_in_executor(
                self._waiters, self.market.wait, posted, terms.until)
            outcome = await self._answers(terms, posted, ids, infos, timed_out)
            if self.auditor is not None and not isinstance(outcome, APIError):
                # Also when the caller went away: the jobs are paid for all the same.
                outcome = self.auditor.schedule(outcome, order.inputs, fraction=order.audit, until=terms.until,
                                                key=order.key, from_block=posted.from_block)
            if order.future.done():  # the caller went away
                return
            if isinstance(outcome, APIError):
                order.future.set_exception(outcome)
            else:
                order.future.set_result(outcome)
        except APIError as exc:
            _fail([order], exc)
        except VerinferError as exc:
            _fail([order], error_for(exc, jobs=ids))
        except Exception as exc:
            log.exception("waiting for jobs %s failed", ids)
            _fail([order], APIError(500, f"waiting failed: {type(exc).__name__}", type="api_error",
                                    code="internal_error", extra={"jobs": ids}))

    async def _answers(self, terms: Terms, posted: Posted, ids: list[int], infos: dict[int, JobInfo],
                       timed_out: bool) -> list[Answer] | APIError:
        statuses = {j: infos[j].status.name for j in ids}
        reached = [j for j in ids if infos[j].status.settled or (terms.until == "result"
                                                                   and infos[j].status.has_result)]
        if len(reached) < len(ids) and timed_out:
            return APIError(504, f"jobs not {'settled' if terms.until == 'settled' else 'done'} after "
                                 f"{self.config.wait_timeout:.0f}s; look them up later by id",
                            type="api_error", code="timeout", extra={"jobs": statuses})
        without = {j: s for j, s in statuses.items() if not infos[j].status.has_result}
        if without:
            return APIError(502, f"jobs ended without a result: {without} (the escrow was refunded to the "
                                 f"gateway's account)", type="api_error", code="no_result", extra={"jobs": statuses})
        try:
            answers = await self.read(self.market.answers, posted, ids, terms.r)
        except ResultUnavailable as exc:
            return error_for(exc, jobs=statuses)
        return [answers[j] for j in ids]


def _chunks(orders: list[Order]) -> list[tuple[Terms, list[Order]]]:
    """Orders on the same terms packed, in arrival order, into posts of at most MAX_BATCH inputs."""
    by_terms: dict[Terms, list[list[Order]]] = {}
    for order in orders:
        chunks = by_terms.setdefault(order.terms, [[]])
        if sum(len(o.inputs) for o in chunks[-1]) + len(order.inputs) > MAX_BATCH:
            chunks.append([])
        chunks[-1].append(order)
    return [(terms, chunk) for terms, chunks in by_terms.items() for chunk in chunks if chunk]


def _fail(orders: list[Order], error: APIError, *, posted: bool = True) -> None:
    error.posted = posted
    for order in orders:
        if not order.future.done():
            order.future.set_exception(error)
