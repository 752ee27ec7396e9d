"""The agent as its own process (`python -m provider.agent`) on anvil: kill -9 between
commit and reveal, restart, reveal in time with the stored salt, no duplicate
transaction; its metrics endpoint; SIGTERM exits 0."""

import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing

import pytest
from agent_market import SENTENCES, STAKE, Env, assert_clean_transactions, drive

from provider.agent.records import job_record
from provider.agent.store import JobState, Store
from tests.support.anvil import REPO, free_port, funded_account, subprocess_env

pytestmark = pytest.mark.anvil


def write_config(env, path, db, metrics_port) -> None:
    path.write_text(f"""
network = "ethereum:local:test"
rpc_url = "{env.anvil.url}"
account = "TEST::1"
marketplace = "{env.market.address}"
db_path = "{db}"
models = ["0x{env.engine.model_id.hex()}"]
dashboard = false
[policy]
stake = "{STAKE}"
[claim_batch]
max_wait = 0.05
[engine_batch]
max_wait = 0.05
[watcher]
start_block = {env.start_block}
poll_interval = 0.1
[tx]
poll_interval = 0.1
[metrics]
port = {metrics_port}
[log]
format = "json"
""")


def start_agent(config, log) -> subprocess.Popen:
    """The agent process, its log appended to `log`: a file, as a pipe nobody reads
    until the end would stall the agent once it filled."""
    env = subprocess_env() | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "-m", "provider.agent", "--config", str(config)],
                                cwd=REPO, env=env, stderr=out)


def wait_for(condition, proc, log, timeout=120.0):
    give_up = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"agent exited {proc.returncode}: {log.read_text()[-3000:]}")
        if time.monotonic() > give_up:  # with what the agent was doing, for the record
            raise AssertionError(f"timed out; agent log: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def job_in(db, job_id):
    """The agent's record of a job, read with a plain SELECT (opening a Store takes the
    write lock, and this polls ten times a second while the agent writes); None until
    the agent has created its database."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=rw", uri=True)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (str(job_id),)).fetchall()
    except sqlite3.OperationalError:  # no file or no table yet
        return None
    return job_record(rows[0]) if rows else None


@pytest.mark.slow
def test_kill_9_between_commit_and_reveal_then_restart(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    others = [env.agent(2, tmp_path), env.agent(3, tmp_path)]
    db, config, port = tmp_path / "agent1.db", tmp_path / "agent1.toml", free_port()
    log = tmp_path / "agent1.log"
    write_config(env, config, db, port)

    agent = start_agent(config, log)
    try:
        wait_for(lambda: env.market.provider(funded_account(1).address).free >= STAKE, agent, log)
        agent.send_signal(signal.SIGSTOP)  # registered and staked: the draw counts it
        [job_id] = env.post(SENTENCES[:1], r=3)
        env.draw(job_id)  # a seat each, before the agent's claim could draw them
        agent.send_signal(signal.SIGCONT)
        # Reveals open only once all three seats committed: while the others hold
        # back, the agent process sits between its commit and its reveal.
        wait_for(lambda: (job := job_in(db, job_id)) is not None
                 and job.state is JobState.COMMITTED, agent, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'verinfer_jobs{state="committed"} 1' in metrics
        assert 'verinfer_tx_confirmed_total{kind="commit",result="success"} 1' in metrics
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        sealed = job_in(db, job_id)

        drive(others, lambda: all(a.store.job(job_id).state is JobState.REVEALED for a in others))
        assert env.market.job(job_id).nrevealed == 2

        agent = start_agent(config, log)  # same database: it reconciles and reveals
        wait_for(lambda: job_in(db, job_id).state is JobState.REVEALED, agent, log)
        drive(others, lambda: all(a.store.job(job_id).state is JobState.PAID for a in others))
        wait_for(lambda: job_in(db, job_id).state is JobState.PAID, agent, log)
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        assert agent.returncode == 0, log.read_text()[-3000:]
        assert '"msg": "agent stopped"' in log.read_text()
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()

    store = Store(db)
    assert store.result(job_id) is not None and sealed is not None
    assert env.market.job(job_id).result_digest == store.result(job_id).digest
    kinds = [t.kind for t in store.txs()]
    assert kinds.count("claim") == 1 and kinds.count("commit") == 1 and kinds.count("reveal") == 1

    assert_clean_transactions(env, store, funded_account(1).address)


def test_command_line_refuses_a_config_it_cannot_run_with_exit_2(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(f'models = ["0x{"11" * 32}"]\nnetwork = "ethereum:local:test"\n')
    done = subprocess.run([sys.executable, "-m", "provider.agent", "--config", str(config)],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "embedded test chain" in done.stderr
