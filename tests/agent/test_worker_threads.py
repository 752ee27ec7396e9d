"""The job worker's thread is the agent's only writer of job rows: its tick runs the
watcher first, which has no thread of its own. On anvil, with agents run by their
Runner (their services on threads, as `verinfer-provider` runs them): the threads a
built agent starts, who writes job rows during an r = 3 job, and the worker's loop
under faults of the events phase: a refused log range holds back only the events, an
unreachable node backs the whole tick off, a reorg deeper than remembered stops the
agent (exit 1)."""

import logging
import threading
import time

import pytest
from agent_market import SENTENCES, SINGLE, Env, drive, wait_for

from client.protocol import JobStatus
from client.transport import http_web3
from provider.agent.cputime import ENGINE_POOL
from provider.agent.errors import ReorgTooDeep
from provider.agent.jobs import JobBook
from provider.agent.store import JobState, Store

pytestmark = pytest.mark.anvil

JOB_ROW_WRITES = ("add_job", "update_jobs", "forget_jobs")  # update_job goes through update_jobs


@pytest.fixture
def job_row_writers(monkeypatch) -> list[tuple]:
    """(store path, thread) of each job-row write by any Store in this process."""
    writes: list[tuple] = []

    def recorded(write):
        def call(self, *args, **kwargs):
            writes.append((self.path, threading.current_thread()))
            return write(self, *args, **kwargs)
        return call

    for name in JOB_ROW_WRITES:
        monkeypatch.setattr(Store, name, recorded(getattr(Store, name)))
    return writes


@pytest.fixture
def agent_log(caplog, monkeypatch):
    """The agent's warnings and errors, also where an earlier test configured its
    logging (which stops them propagating to pytest's handler)."""
    monkeypatch.setattr(logging.getLogger("verinfer"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="verinfer")
    return caplog


class Running:
    """An agent's services on their threads (`Runner.run`), until stopped or crashed."""

    def __init__(self, agent):
        self.runner, self.codes = agent.runner(), []
        self.thread = threading.Thread(target=lambda: self.codes.append(self.runner.run()),
                                       name="test-agent-runner")
        self.thread.start()

    def exit_code(self, timeout: float = 60.0) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not stop"
        return self.codes[0]

    def stop(self) -> int:
        self.runner.request_shutdown("test over")
        return self.exit_code()


def job_state(agent, job_id) -> JobState | None:
    job = agent.store.job(job_id)
    return None if job is None else job.state


def test_job_rows_are_written_only_by_each_agents_worker_thread(anvil, engine, tmp_path,
                                                                job_row_writers):
    env = Env(anvil, engine)
    agents = [env.agent(i, tmp_path) for i in (1, 2, 3)]
    [job_id] = env.post(SENTENCES[:1], r=3)
    env.draw(job_id)  # a seat each: every agent sees, claims, commits, reveals, is paid
    before = set(threading.enumerate())
    running = [Running(agent) for agent in agents]
    try:
        wait_for(lambda: all(job_state(a, job_id) is JobState.PAID for a in agents), timeout=180)
        started = sorted(t.name for t in set(threading.enumerate()) - before
                         if t.name != "test-agent-runner" and not t.name.startswith(ENGINE_POOL))
    finally:
        codes = [r.stop() for r in running]
    assert codes == [0, 0, 0]
    assert started == ["jobs"] * 3 + ["txmanager"] * 3  # each agent's services: no watcher
    writers = [{thread for path, thread in job_row_writers if path == a.store.path} for a in agents]
    # Each agent's job rows (the job seen, claimed, ..., paid) were written by one
    # thread, its worker's.
    assert [[t.name for t in w] for w in writers] == [["jobs"]] * 3
    assert len(set.union(*writers)) == 3


def test_a_failing_events_phase_holds_back_only_the_events(anvil, engine, tmp_path, agent_log,
                                                          monkeypatch):
    env = Env(anvil, engine)
    agent = env.agent(1, tmp_path)
    [job_id] = env.post(SINGLE[:1], r=1)
    agent.step()  # the job seen (and maybe claimed): no delivery before its claim's receipt
    assert job_state(agent, job_id) is not None
    synced = agent.store.checkpoint()

    def broken(self, events, to_block):
        raise RuntimeError("a range that cannot be applied")

    monkeypatch.setattr(JobBook, "handle", broken)
    anvil.rpc("evm_mine")  # a range for the events phase to fail on
    # The other phases go on: the job is claimed, computed and delivered.
    drive([agent], lambda: job_state(agent, job_id) is JobState.REVEALED)
    assert env.status(job_id) is JobStatus.DELIVERED
    assert agent.store.checkpoint() == synced  # nothing of the failed ranges was applied
    assert any(r.getMessage() == "watcher: range failed; retrying" for r in agent_log.records)

    monkeypatch.undo()  # retried after its backoff (seconds): the events catch up

    def caught_up() -> bool:
        agent.step()
        return agent.store.checkpoint().number >= env.w3.eth.block_number

    wait_for(caught_up, timeout=60)
    assert job_state(agent, job_id) is JobState.REVEALED  # delivered, in its challenge window


def test_an_unreachable_node_backs_the_tick_off_and_loses_nothing(anvil, engine, proxy, tmp_path,
                                                                  agent_log):
    env = Env(anvil, engine)
    agent = env.agent(1, tmp_path, w3=http_web3(proxy.url, timeout=5))
    running = Running(agent)
    try:
        wait_for(lambda: agent.store.checkpoint() is not None)  # set up, ticking
        proxy.down()
        [job_id] = env.post(SINGLE[:1], r=1)  # straight to anvil: the chain moves on
        time.sleep(1.0)
        alive, seen = running.thread.is_alive(), job_state(agent, job_id)
        proxy.up()
        wait_for(lambda: env.status(job_id) is JobStatus.DELIVERED, timeout=60)
    finally:
        code = running.stop()
    assert alive and seen is None and code == 0
    assert any(r.getMessage() == "jobs: rpc unavailable" for r in agent_log.records)


def test_a_reorg_deeper_than_remembered_stops_the_agent(anvil, engine, tmp_path, agent_log):
    env = Env(anvil, engine)
    agent = env.agent(1, tmp_path, watcher={"confirmations": 0, "poll_interval": 0.05,
                                            "reorg_window": 2})
    for _ in range(3):
        anvil.rpc("evm_mine")
        agent.step()  # a checkpoint per block: the two remembered are the newest
    anvil.rpc("anvil_reorg", 3, [])
    assert Running(agent).exit_code() == 1
    [crash] = [r for r in agent_log.records if r.exc_info and r.exc_info[0] is ReorgTooDeep]
    assert crash.getMessage() == "service crashed" and crash.service == "jobs"
    assert "reorg below block" in str(crash.exc_info[1])


def test_a_backlog_is_computed_one_batch_a_tick_with_deliveries_in_between(anvil, engine, tmp_path,
                                                                          monkeypatch):
    """The seal phase computes one engine batch a tick and asks to tick again at once:
    the other phases run between two batches, so the first jobs' deliveries go out while
    the last are still to compute (a tick computing a whole backlog held every delivery,
    reveal and finalize until its end)."""
    env = Env(anvil, engine)
    agent = env.agent(1, tmp_path, engine_batch={"max_size": 1, "max_wait": 0.01})
    runs: list[int] = []  # engine batches, by tick
    deliveries_sent: list[int] = []  # at each engine batch
    run = engine.run

    def counted(inputs):
        runs[-1] += 1
        deliveries_sent.append(len([t for t in agent.store.txs() if t.kind == "deliver"]))
        return run(inputs)

    monkeypatch.setattr(engine, "run", counted)
    jobs = env.post(SENTENCES, r=1)  # alone: every job its own at once
    again = []
    for _ in range(200):
        runs.append(0)
        again.append(agent.worker.tick())
        anvil.rpc("evm_mine")  # a confirmation for the claim (on automine only txs make blocks)
        agent.txm.poll()
        if all(env.status(j) is JobStatus.DELIVERED for j in jobs):
            break
        time.sleep(0.02)
    assert all(env.status(j) is JobStatus.DELIVERED for j in jobs)
    assert max(runs) == 1 and sum(runs) == len(SENTENCES)
    assert all(again[i] for i, n in enumerate(runs) if n)  # a batch computed: tick again at once
    assert deliveries_sent[0] == 0 and deliveries_sent[-1] > 0  # the first delivered before the last computed
