"""Computing and sealing: the engine computes claimed jobs in batches; each result and
its salt are fsync'ed in the store before the seal that binds them (or, r = 1, the
delivery) is sent, and never recomputed: a crash between commit and reveal reveals
the stored bytes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from client.protocol import MAX_ID_BATCH, MAX_RESULT_BATCH, new_salt, result_digest, seal
from provider.agent.batching import Batcher
from provider.agent.config import BatchConfig
from provider.agent.cputime import engine_cpu
from provider.agent.jobs.runner import JobRunner
from provider.agent.jobs.steps import JobSteps, chunks
from provider.agent.metrics import Metrics
from provider.agent.records import JobRecord, JobState, Step


class Sealer:
    """Computes results, then delivers (r = 1) or commits them."""

    def __init__(self, steps: JobSteps, engines: Mapping[bytes, JobRunner], engine_batch: BatchConfig,
                 metrics: Metrics, result_hook: Callable[[int, bytes], bytes] | None = None):
        self.steps, self.engines, self.result_hook = steps, engines, result_hook
        self.store, self.market = steps.store, steps.market
        self._compute: Batcher[bytes, int] = Batcher(engine_batch.max_size, engine_batch.max_wait)
        self._computing: set[int] = set()  # ids inside the engine batcher
        self._engine_jobs = metrics.counter("verinfer_engine_jobs_total", "Jobs computed")
        self._engine_seconds = metrics.counter("verinfer_engine_seconds_total", "Engine time")
        self._engine_cpu = metrics.counter("verinfer_engine_cpu_seconds_total",
                                           "Engine CPU time (its thread and thread pools)")

    def run(self) -> bool:
        """Send what is computed, then compute one engine batch if one is ready. Returns
        True if it computed one: the worker ticks again at once, so a backlog is worked
        off batch by batch with every other phase between two batches (a claim mined
        meanwhile is delivered from the next tick on, a reveal or finalize meets its
        deadline) instead of all of it inside one tick."""
        self._queue_work()
        return self._compute_one()

    def queue(self, job: JobRecord) -> None:
        """Have the engine compute `job` with the next batch of its model."""
        if job.job_id not in self._computing:
            self._computing.add(job.job_id)
            self._compute.put(job.model_id, job.job_id)

    def _queue_work(self) -> None:
        """Claimed jobs: the engine computes those without a stored result; the others'
        delivery (r = 1) or commit goes out now."""
        mono = time.monotonic()
        deliver_at = self.steps.schedule.deliver_at
        for done in [j for j, at in deliver_at.items() if at <= mono]:
            del deliver_at[done]
        stored, todo = self.store.claimed_unsent()
        for job in self.store.jobs(ids=[i for i in todo if i not in self._computing]):
            self.queue(job)
        stored = [i for i in stored if i not in self._computing]
        if stored:
            self._send_results(self.store.jobs(ids=stored))

    def _compute_one(self) -> bool:
        batch = self._compute.ready()
        if batch is None:
            return False
        model_id, ids = batch
        self._computing.difference_update(ids)
        # SEEN or CLAIMING: an r = 1 job whose claim is not mined yet
        jobs = self.store.jobs(JobState.SEEN, JobState.CLAIMING, JobState.CLAIMED, ids=ids)
        if jobs:
            self._compute_and_send(model_id, jobs)
        return True

    def _results(self, model_id: bytes, jobs: list[JobRecord]) -> None:
        """Compute and store the results of the jobs without one (never a second salt)."""
        have = self.store.results([job.job_id for job in jobs])
        todo = [job for job in jobs if job.job_id not in have]
        if not todo:
            return
        started, cpu = time.monotonic(), engine_cpu()
        computed = self.engines[model_id].run([j.terms.input for j in todo])
        self._engine_seconds.inc(time.monotonic() - started)
        self._engine_cpu.inc(engine_cpu() - cpu)
        self._engine_jobs.inc(len(todo))
        with self.store.atomic():  # one fsync for the batch, still before any seal is sent
            for job, result in zip(todo, computed):
                if self.result_hook is not None:
                    result = self.result_hook(job.job_id, result)
                self.store.save_result(job.job_id, result_digest(result), result, new_salt())

    def _compute_and_send(self, model_id: bytes, jobs: list[JobRecord]) -> None:
        try:
            self._results(model_id, jobs)
        except ValueError as err:  # one bad input fails the batch: redo one by one
            if len(jobs) == 1:
                self.steps.refuse(jobs[0], f"engine refused input: {err}")
                return
            for job in jobs:
                self._compute_and_send(model_id, [job])
            return
        # Those claimed by now (read again: the engine took a while)
        claimed = [j for j in self.store.jobs(JobState.CLAIMED, ids=[j.job_id for j in jobs])
                   if j.pending is None]
        if claimed:
            self._send_results(claimed)

    def _send_results(self, jobs: list[JobRecord]) -> None:
        """Deliver (r = 1) or commit claimed jobs whose results are stored. A delivery
        goes out only after its claim's receipt was applied, so never in the claim's
        block, as the contract requires (a claim and delivery sent together could both
        be copied from the mempool)."""
        mono, deliver_at = time.monotonic(), self.steps.schedule.deliver_at
        deliver = [j.job_id for j in jobs if j.single and deliver_at.get(j.job_id, 0.0) <= mono]
        commit = [j for j in jobs if not j.single]
        stored = self.store.results(deliver + [j.job_id for j in commit])
        for chunk in chunks(deliver, MAX_RESULT_BATCH):
            call = self.market.build_deliver_many(chunk, [stored[i].result for i in chunk])
            self.steps.send(call, Step.DELIVER, chunk)
        me = self.steps.me
        seals = {j.job_id: seal(j.job_id, me, stored[j.job_id].digest, stored[j.job_id].salt)
                 for j in commit}
        for chunk in chunks(commit, MAX_ID_BATCH):
            self.steps.send_all_or_each(Step.COMMIT, chunk, lambda ids: self.market.build_commit_many(
                ids, [seals[i] for i in ids]))
