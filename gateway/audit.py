"""Automatic auditing of r = 1 answers: the gateway re-executes a share of them on its
own engine after answering and challenges every mismatch inside its window.

An r = 1 answer is one provider's word, final unless someone challenges it before
its challenge window ends. The gateway holds the same engine every honest provider
runs (``provider.engine.Engine``: integer arithmetic, the same bytes on any host), so
it can check a delivery itself, without trusting anyone. For each answered request a
share of its r = 1 results (``Policy.audit``, the gateway's ``audit_fraction`` unless
the request says otherwise) is chosen by a keyed hash of the job id with a key drawn
at start, so no provider can tell which of its deliveries will be checked. Then, in
the background:

1. re-execute (the engine loads once, lazily, on its own thread; queued audits run
   as one batch);
2. equal bytes: ``match``. Different: challenge with the bond (``Client.challenge``)
   unless the window closes within ``audit_margin`` seconds, the bond is not
   affordable, or someone else already challenged (then follow theirs);
3. follow the challenge round to settlement, finalizing it once due, so the client
   refund and the slash share are credited to the gateway's account (``withdraw``
   collects them); ``won`` if the chain settled on the gateway's bytes.

Every step is written to the audit log (``gateway.audit_log``) before the next, and
unfinished audits resume when the gateway starts again. Transactions go through the
batcher's one sender thread (one account, one nonce sequence).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from client import Client
from client.errors import InsufficientFunds, VerinferError
from client.events import BondReturned, JobFinalized, JobPosted, SlashShareCredited
from client.protocol import MAX_BATCH, JobStatus, result_digest
from client.records import JobInfo
from gateway.audit_log import AuditLog, AuditRecord, log_path
from gateway.config import GatewayConfig, Until

log = logging.getLogger("verinfer.gateway.audit")

FOLLOW_INTERVAL = 2.0  # seconds between looks at a challenge round being followed


@dataclass(frozen=True)
class Delivery:
    """What an audit re-executes and compares: a job's input and the delivered digest."""

    job_id: int
    model_id: bytes
    input: bytes
    digest: bytes


def chosen(key: bytes, job_id: int, fraction: float) -> bool:
    """Whether ``job_id`` is audited at ``fraction``: HMAC-SHA256 of the id under the
    gateway's secret ``key``, read as a number in [0, 1).

    >>> chosen(b"k", 256, 1.0), chosen(b"k", 256, 0.0)
    (True, False)
    """
    mac = hmac.new(key, job_id.to_bytes(32, "big"), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") / 2**64 < fraction


class Auditor:
    """Chooses, re-executes, challenges and follows; ``log`` holds what it did.

    ``batcher`` (``gateway.service.Batcher``) lends its reader pool and its sender
    thread; ``engine``: an engine already loaded in this process (else each model's
    is loaded on first use: ``provider.runners``, MiniLM or the chat LLM).
    """

    def __init__(self, client: Client, batcher, config: GatewayConfig, *, engine=None):
        self.client, self.batcher, self.config = client, batcher, config
        self.account = client.address
        self.log = AuditLog(log_path(config.data_dir, client.w3.eth.chain_id, client.marketplace.address))
        self._key = secrets.token_bytes(32)
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._engine_thread = ThreadPoolExecutor(1, thread_name_prefix="gateway-audit")
        self._engines = {} if engine is None else {engine.model_id: engine}
        self._engine_lock = threading.Lock()
        self._reexecuting: Future | None = None  # the engine thread's batch
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._spawn(self._run())
        # Those of the previous run only: audits scheduled from now on are queued already.
        self._spawn(self._resume(self.log.unfinished()))

    async def stop(self) -> None:
        """Unfinished audits stay in the log, resumed at the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._engine_thread.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> bool:
        """Whether the engine thread is loading or re-executing; after ``stop`` too (a
        thread cannot be interrupted), then ``gateway.server`` exits without it."""
        return self._reexecuting is not None and not self._reexecuting.done()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ choosing

    def schedule(self, answers: list, inputs: list[bytes], *, fraction: float, until: Until, key: str | None,
                 from_block: int) -> list:
        """The answers of one request, those chosen for an audit marked (``Answer.audit``)
        and queued. Only r = 1 results still in their challenge window qualify."""
        out = []
        for answer, data in zip(answers, inputs, strict=True):
            if (answer.r == 1 and until == "result" and answer.verified.status == JobStatus.DELIVERED
                    and chosen(self._key, answer.job_id, fraction) and self.log.get(answer.job_id) is None):
                self.log.put(AuditRecord(job_id=answer.job_id, key=key, delivered="0x" + answer.verified.digest.hex(),
                                         from_block=from_block))
                self._queue.put_nowait(Delivery(answer.job_id, answer.verified.model_id, data,
                                                answer.verified.digest))
                answer = replace(answer, audit=True)
            out.append(answer)
        return out

    async def _resume(self, unfinished: list[AuditRecord]) -> None:
        """Pick up the audits a previous run left: re-execute the pending ones (their
        inputs read back from the chain), follow the challenged ones."""
        if not unfinished:
            return
        log.info("resuming %d unfinished audits", len(unfinished))
        for record in unfinished:
            try:
                if record.state == "challenged":
                    self._spawn(self._follow(record))
                    continue
                events = await self.batcher.read(lambda r=record: self.client.marketplace.job_events(
                    [r.job_id], r.from_block, events=["JobPosted"]))
                [posted] = [e for e in events if isinstance(e, JobPosted)]
                self._queue.put_nowait(Delivery(record.job_id, posted.model_id, posted.input,
                                                bytes.fromhex(record.delivered.removeprefix("0x"))))
            except (VerinferError, ValueError) as exc:
                self._put(record, state="done", outcome="error", reason=f"resuming: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ re-executing

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                self._reexecuting = self._engine_thread.submit(self._reexecute, batch)
                verdicts = await asyncio.wrap_future(self._reexecuting)
            except Exception as exc:  # the engine failed to load or to run: no verdict
                log.exception("audit engine failed")
                for delivery in batch:
                    self._put(self.log.get(delivery.job_id), state="done", outcome="error",
                              reason=f"audit engine: {type(exc).__name__}: {exc}")
                continue
            for delivery, (ours, refusal) in zip(batch, verdicts):
                self._spawn(self._judge(delivery, ours, refusal))

    def engine(self, model_id: bytes):
        """The engine reproducing ``model_id``, loaded (and self-tested) on first use;
        None if no engine here does."""
        with self._engine_lock:
            if model_id not in self._engines:
                from provider.runners import load_runners  # torch: only once an audit needs it

                engine = load_runners([model_id], self.config.audit_backend).get(model_id)
                if engine is not None:
                    engine.self_test()
                    log.info("audit engine loaded (%s)", engine.route)
                self._engines[model_id] = engine
            return self._engines[model_id]

    def _reexecute(self, batch: list[Delivery]) -> list[tuple[bytes | None, str | None]]:
        """Each delivery's result bytes by the gateway's engine for its model, or why
        it refused."""
        from provider.engine.errors import EngineError

        refusals: list[str | None] = []
        for delivery in batch:
            engine = self.engine(delivery.model_id)
            try:
                if engine is None:
                    raise LookupError(f"no engine here reproduces model 0x{delivery.model_id.hex()}")
                engine.check(delivery.input)
            except (EngineError, ValueError, LookupError) as exc:  # the chat format's InvalidInput is a ValueError
                refusals.append(f"the audit engine refused it: {type(exc).__name__}: {exc}")
            else:
                refusals.append(None)
        results: dict[int, bytes] = {}
        for model_id in {d.model_id for d, why in zip(batch, refusals) if why is None}:
            todo = [i for i, (d, why) in enumerate(zip(batch, refusals)) if why is None and d.model_id == model_id]
            results.update(zip(todo, self.engine(model_id).run([batch[i].input for i in todo])))
        return [(None, why) if why is not None else (results[i], None) for i, why in enumerate(refusals)]

    # ------------------------------------------------------------ judging and challenging

    async def _judge(self, delivery: Delivery, ours: bytes | None, refusal: str | None) -> None:
        record = self.log.get(delivery.job_id)
        if refusal is not None:
            log.warning("job %d not audited: %s", delivery.job_id, refusal)
            self._put(record, state="done", outcome="refused", reason=refusal)
            return
        digest = result_digest(ours)
        record = self._put(record, ours="0x" + digest.hex())
        if digest == delivery.digest:
            self._put(record, state="done", outcome="match")
            return
        log.warning("job %d: the delivered result differs from the gateway's re-execution (0x%s != 0x%s)",
                    delivery.job_id, delivery.digest.hex(), digest.hex())
        try:
            await self._challenge(record)
        except VerinferError as exc:
            log.error("job %d: audit stopped: %s: %s", record.job_id, type(exc).__name__, exc)
            self._put(self.log.get(record.job_id), state="done", outcome="error", reason=f"{type(exc).__name__}: {exc}")

    async def _view(self, job_id: int) -> tuple[JobInfo, int]:
        """The job and the chain's time, read together."""
        def read():
            head = self.client.w3.eth.get_block("latest")
            return self.client.marketplace.job(job_id, block=head["number"]), head["timestamp"]
        return await self.batcher.read(read)

    async def _challenge(self, record: AuditRecord) -> None:
        info, now = await self._view(record.job_id)
        if info.status == JobStatus.CHALLENGED:
            return await self._follow_theirs(record, info)
        if info.status != JobStatus.DELIVERED:
            self._skip(record, f"not challengeable any more ({info.status.name})")
            return
        left = info.challenge_end - now
        if left < self.config.audit_margin:
            self._skip(record, f"the challenge window closes in {left}s, under the {self.config.audit_margin:g}s "
                               f"margin: not challenged")
            return
        try:
            challenged = await self.batcher.send(self.client.challenge, record.job_id)
        except InsufficientFunds as exc:
            self._skip(record, f"the bond is not affordable: {exc}", level=logging.ERROR)
            return
        except VerinferError as exc:
            # Reverted (someone challenged first, the window closed) or lost on the way
            # (it may still have been mined): the chain says which.
            info, _ = await self._view(record.job_id)
            if info.status == JobStatus.CHALLENGED:
                return await self._follow_theirs(record, info)
            self._skip(record, f"the challenge failed: {type(exc).__name__}: {exc}", level=logging.ERROR)
            return
        log.info("job %d challenged (bond %d)", record.job_id, challenged.bond)
        record = self._put(record, state="challenged", challenger=challenged.challenger, bond=challenged.bond,
                           challenge_tx="0x" + challenged.meta.tx_hash.hex())
        await self._follow(record)

    async def _follow_theirs(self, record: AuditRecord, info: JobInfo) -> None:
        """A challenge already stands (another challenger's, or ours from a send whose
        receipt was lost): follow it rather than bond a second one."""
        whose = "the gateway" if _same(info.challenger, self.account) else info.challenger
        log.info("job %d is already challenged by %s: following it", record.job_id, whose)
        record = self._put(record, state="challenged", challenger=info.challenger,
                           reason=None if whose == "the gateway" else f"already challenged by {whose}")
        await self._follow(record)

    def _skip(self, record: AuditRecord, reason: str, level: int = logging.WARNING) -> None:
        log.log(level, "job %d: mismatch left unchallenged: %s", record.job_id, reason)
        self._put(record, state="done", outcome="mismatch", reason=reason)

    # ------------------------------------------------------------ following to settlement

    async def _follow(self, record: AuditRecord) -> None:
        """Until the round settles: finalize it once due (anyone may; a keeper or an
        agent may be first), then record what the settlement credited."""
        while True:
            # A bond is at stake: a node that is away for a while only delays this.
            try:
                info = await self.batcher.read(self.client.job, record.job_id)
                if info.status.settled:
                    break
                if info.status == JobStatus.CHALLENGED:  # finalize is a no-op until due (it dry-runs first)
                    await self.batcher.send(self.client.finalize, [record.job_id])
            except VerinferError as exc:
                log.warning("job %d: following the challenge (retrying): %s: %s", record.job_id,
                            type(exc).__name__, exc)
            await asyncio.sleep(FOLLOW_INTERVAL)
        events = await self.batcher.read(lambda: self.client.marketplace.job_events(
            [record.job_id], record.from_block, events=["JobFinalized", "BondReturned", "SlashShareCredited"]))
        won = record.ours is not None and info.result_digest.hex() == record.ours.removeprefix("0x")
        refund = sum(e.client_refund for e in events if isinstance(e, JobFinalized))
        bond_back = sum(e.amount for e in events if isinstance(e, BondReturned) and _same(e.challenger, self.account))
        share = sum(e.amount for e in events if isinstance(e, SlashShareCredited) and _same(e.account, self.account))
        if won:
            log.info("job %d: challenge won: refund %d, bond back %d, slash share %d", record.job_id, refund,
                     bond_back, share)
        else:
            log.error("job %d: the re-execution round upheld the delivery (0x%s), not the gateway's bytes: "
                      "is the audit engine sound on this host?", record.job_id, info.result_digest.hex())
        self._put(record, state="done", outcome="won" if won else "lost", refund=refund, bond_returned=bond_back,
                  compensation=share)

    def _put(self, record: AuditRecord, **changes) -> AuditRecord:
        record = record.model_copy(update=changes)
        self.log.put(record)
        return record

    def counters(self, records: list[AuditRecord] | None = None) -> dict[str, int]:
        return self.log.counters(records, account=self.account)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()
