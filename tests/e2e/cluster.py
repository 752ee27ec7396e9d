"""A marketplace on a real anvil with provider agents as separate processes
(`python -m provider.agent --config ...`), for the multi-process and fault tests.

Agents reach anvil through an RPC relay (`RpcProxy`) that a test can take down; the
test's own client talks to anvil directly. Each agent logs JSON lines to a file and
keeps its sqlite store in the work folder, which the tests read.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from client import Client
from client.records import Deadlines
from provider.agent.store import JobRecord, Store, TxRecord
from tests.support.anvil import REPO, Anvil, RpcProxy, funded_account, start_anvil, subprocess_env
from tests.support.market import deploy_market, draw, holders, transact

REWARD = 10**16
STAKE = 10**21
FUNDS = 10**24
CHALLENGE_WINDOW = 60  # the contract's minimum: tests move time past it
# Chain time runs with the wall clock on anvil: windows long enough for a loaded machine.
WINDOWS = Deadlines(claim=900, commit=900, reveal=900)
OWNER, CLIENT = 0, 9  # test account indexes; agents use 1, 2, 3, ...


@dataclass
class AgentProcess:
    """One provider agent process and the files it keeps."""

    name: str
    account: int
    config: Path
    db: Path
    log: Path
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    _log_file: object = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return funded_account(self.account).address

    def start(self) -> None:
        self._log_file = open(self.log, "a")  # noqa: SIM115 (kept open while it runs)
        # One engine thread each: three agents share two cores.
        env = python_env() | {"OMP_NUM_THREADS": "1"} | self.env
        self.proc = subprocess.Popen(self.command, cwd=REPO, env=env, stdout=self._log_file,
                                     stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9: no shutdown path runs."""
        self.proc.kill()
        self.proc.wait()
        self._log_file.close()
        self.proc = None  # not expected to run until start()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; the exit code (killed after `timeout`)."""
        if not self.alive:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log_file.close()
        return code

    def _read(self, fn: Callable[[Store], object]):
        store = Store(self.db)
        try:
            return fn(store)
        finally:
            store.close()

    def job(self, job_id: int) -> JobRecord | None:
        return self._read(lambda s: s.job(job_id)) if self.db.exists() else None

    def txs(self) -> list[TxRecord]:
        return self._read(lambda s: s.txs())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class Cluster:
    """anvil + the marketplace + funded providers and client + agent processes."""

    def __init__(self, workdir: Path, engine, agents: int = 3, *, block_time: int | None = None,
                 tx_confirmations: int = 1, chat=None):
        """`block_time`: mine every that many seconds instead of one block per transaction
        (deeper `tx_confirmations` need blocks that nobody's transaction makes). `chat`:
        a chat runner (provider.llm.chat_jobs) whose model is registered too and served
        by every agent beside the embedding model."""
        self.workdir, self.engine, self.tx_confirmations = workdir, engine, tx_confirmations
        self.anvil: Anvil = start_anvil(*(["--block-time", str(block_time)] if block_time else []))
        self.proxy = RpcProxy(self.anvil.url)
        self.w3 = self.anvil.w3()
        self.owner = funded_account(OWNER)
        self.start_block, self.market, self.token = deploy_market(
            self.w3, self.owner, engine.model_id, CHALLENGE_WINDOW)
        self.model_ids = [engine.model_id]
        if chat is not None:
            info = chat.engine.model_info
            transact(self.w3, self.owner, self.market.build(
                "register_model", info.model_id, info.name, info.weights_digest, info.format_version))
            self.model_ids.append(info.model_id)
        self.agents = [self.agent_process(f"agent{i}", i) for i in range(1, agents + 1)]
        for who in [*self.agents, None]:
            address_ = funded_account(CLIENT).address if who is None else who.address
            # Minted by the owner: the providers' nonces belong to their agents alone.
            transact(self.w3, self.owner, self.token.build_mint(address_, FUNDS))
        self.texts: dict[int, str] = {}  # job id -> input, of the jobs posted by `post`
        self.client = Client.connect(rpc=self.anvil.url, private_key=self.key(CLIENT),
                                     marketplace=self.market.address, poll_interval=0.1)

    @staticmethod
    def key(index: int) -> str:
        return "0x" + funded_account(index).key.hex().removeprefix("0x")

    def agent_process(self, name: str, account: int, command: list[str] | None = None) -> AgentProcess:
        config, db = self.workdir / f"{name}.toml", self.workdir / f"{name}.db"
        config.write_text(f"""
network = "ethereum:local:foundry"
rpc_url = "{self.proxy.url}"
account = "TEST::{account}"
marketplace = "{self.market.address}"
db_path = "{db}"
models = {["0x" + m.hex() for m in self.model_ids]}
dashboard = false
[policy]
stake = "{STAKE}"
price = "{REWARD}"
[claim_batch]
max_wait = 0.05
[engine_batch]
max_wait = 0.05
[watcher]
start_block = {self.start_block}
poll_interval = 0.1
[tx]
poll_interval = 0.1
confirmations = {self.tx_confirmations}
[metrics]
enabled = false
[log]
format = "json"
""")
        command = command or [sys.executable, "-m", "provider.agent", "--config", str(config)]
        return AgentProcess(name, account, config, db, self.workdir / f"{name}.log", command)

    def start_agents(self, timeout: float = 180) -> None:
        for agent in self.agents:
            agent.start()
        self.wait(lambda: all(self.market.provider(a.address).free >= STAKE for a in self.agents),
                  "agents registered and staked", timeout)

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
        """Poll `condition` while every agent that was started stays alive."""
        give_up = time.monotonic() + timeout
        while not condition():
            dead = [a for a in self.agents if a.proc is not None and not a.alive]
            if dead:
                raise AssertionError(f"{dead[0].name} exited {dead[0].proc.returncode} while waiting for "
                                     f"{what}:\n{dead[0].log_text()[-3000:]}")
            if time.monotonic() > give_up:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def advance(self, seconds: int) -> None:
        self.anvil.rpc("evm_increaseTime", seconds)
        self.anvil.rpc("evm_mine")

    def holders(self, job_id: int) -> set[str]:
        return holders(self.market, job_id)

    def draw(self, job_id: int, accept: Callable[[list[str]], bool] | None = None, tries: int = 100) -> list[str]:
        """The round's seats drawn by the owner until `accept` (tests.support.market.draw),
        while the test keeps the agents from claiming."""
        return draw(self.anvil, self.market, self.owner, job_id, accept, tries)

    def post(self, texts: list[str], r: int) -> list[int]:
        ids = self.client.post_many(texts, reward=REWARD, r=r, deadlines=WINDOWS)
        self.texts.update(zip(ids, texts))
        return ids

    def stop(self) -> None:
        for agent in self.agents:
            if agent.proc is not None:
                agent.stop()
        self.client.close()
        self.proxy.down()
        self.anvil.stop()


def clean_transactions(cluster: Cluster, agent: AgentProcess) -> None:
    """Every intent confirmed once, nonces contiguous from 0 and equal to the chain's:
    nothing sent twice, nothing skipped."""
    cluster.wait(lambda: all(not t.status.is_open for t in agent.txs()), f"{agent.name}'s confirmations")
    intents = agent.txs()
    assert [t.status.value for t in intents] == ["confirmed"] * len(intents)
    assert [t.nonce for t in intents] == list(range(len(intents)))
    assert cluster.w3.eth.get_transaction_count(agent.address) == len(intents)


def python_env() -> dict[str, str]:
    """Environment for the project's commands: repo importable, venv on PATH, offline."""
    return subprocess_env() | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
