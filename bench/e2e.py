"""End-to-end marketplace throughput on anvil: `python -m bench.e2e` (`./verinfer.sh bench-e2e`).

Starts anvil (through ape's foundry provider, on a free port), deploys, starts three
provider agents as separate processes (`python -m provider.agent`), and a client in
this process posts N jobs (r = 1, then r = 3) from a pre-deposited balance, 32 per
transaction. A job is done when the client has verified its result against the chain
(r = 1: the delivery; r = 3: the finalized majority). Prints a rich table: completed
jobs/s, latency from post to verified result (p50, p95), transactions and gas per job,
the engine's share of the agents' wall time (from their metrics endpoints), threads.

    python -m bench.e2e --jobs 1000 --threads 1
"""

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
REWARD = 10**15
STAKE = 10**22
WINDOW = 3600
POST_BATCH = 32

SUBJECTS = ["The old fisherman", "A young engineer", "The city council", "My neighbour's cat",
            "The orchestra", "A small startup", "The football team", "Our history teacher",
            "The delivery robot", "A curious child"]
VERBS = ["repaired", "painted", "discussed", "photographed", "ignored", "celebrated",
         "measured", "sold", "described", "visited"]
OBJECTS = ["the wooden bridge", "a new solar farm", "the broken radio", "an ancient map",
           "the quarterly budget", "a red bicycle", "the flooded garden", "a mountain cabin",
           "the winning goal", "an empty warehouse"]
PLACES = ["before sunrise.", "during the storm.", "in the museum.", "after lunch.", "near the harbour.",
          "on live television.", "at the market.", "without any help.", "for the third time.",
          "under the old oak."]


def sentences(n: int, salt: int = 0) -> list[str]:
    """n distinct, varied real sentences (10,000 combinations, then numbered)."""
    combos = itertools.product(SUBJECTS, VERBS, OBJECTS, PLACES)
    out = []
    for i, (s, v, o, p) in enumerate(itertools.islice(itertools.cycle(combos), salt, salt + n)):
        out.append(f"{s} {v} {o} {p}" + (f" ({i // 10_000})" if i >= 10_000 else ""))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """An agent's metrics, summed over labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            name = name.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(value)
    return values


def process_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


@dataclass
class AgentProc:
    account: int
    metrics_port: int
    log: Path
    proc: subprocess.Popen

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


def start_agent(workdir: Path, index: int, rpc: str, market: str, start_block: int,
                model_id: bytes, threads: int) -> AgentProc:
    port = free_port()
    config = workdir / f"agent{index}.toml"
    config.write_text(f"""
network = "ethereum:local:foundry"
rpc_url = "{rpc}"
account = "TEST::{index}"
marketplace = "{market}"
db_path = "{workdir / f'agent{index}.db'}"
models = ["0x{model_id.hex()}"]
dashboard = false
[policy]
stake = "{STAKE}"
price = "{REWARD}"
capacity = 4096
max_stake_at_risk = "{STAKE}"
[claim_batch]
max_size = 32
max_wait = 0.2
[engine_batch]
max_size = 64
max_wait = 0.2
[watcher]
start_block = {start_block}
poll_interval = 0.2
max_range = 2000
[tx]
poll_interval = 0.2
[metrics]
port = {port}
[log]
level = "WARNING"
format = "json"
""")
    log = workdir / f"agent{index}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERINFER_")}
    env |= {"OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "provider.agent", "--config", str(config)], cwd=REPO,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return AgentProc(index, port, log, proc)


@dataclass
class Phase:
    r: int
    jobs: int
    completed: int
    wall: float
    latencies: list[float]
    txs: int
    gas: int
    engine_seconds: list[float]  # per agent, during the phase
    engine_jobs: int
    threads: list[int]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_phase(client, agents: list[AgentProc], r: int, n: int, timeout: float, console: Console) -> Phase:
    from client.errors import ResultUnavailable, RpcUnavailable
    from client.events import JobFinalized, ResultRevealed
    from client.records import Deadlines
    from scripts.demo import gas_by_step

    w3, market = client.w3, client.marketplace
    texts = sentences(n, salt=r * 7919)
    before = [scrape(a.metrics_port) for a in agents]
    first_block = w3.eth.block_number + 1
    posted_at: dict[int, float] = {}
    done_at: dict[int, float] = {}
    start = time.monotonic()
    for i in range(0, n, POST_BATCH):
        ids = client.post_many(texts[i:i + POST_BATCH], reward=REWARD, r=r,
                               deadlines=Deadlines(WINDOW, WINDOW, WINDOW))
        now = time.monotonic()
        posted_at.update(dict.fromkeys(ids, now))
    event = ResultRevealed if r == 1 else JobFinalized
    seen_block = first_block - 1
    give_up = start + timeout
    with console.status(f"r = {r}: {n} jobs") as status:
        while len(done_at) < n and time.monotonic() < give_up:
            try:
                head = w3.eth.block_number
                fresh = set()
                if head > seen_block:
                    for e in market.get_events(seen_block + 1, head, events=[event.__name__]):
                        if e.job_id in posted_at and e.job_id not in done_at:
                            fresh.add(e.job_id)
                if fresh:
                    try:
                        client.results(sorted(fresh))  # each checked against the chain's digest
                    except ResultUnavailable:  # an r = 3 job without majority: not a result
                        fresh = {j for j in fresh if market.job(j).status.has_result}
                    done_at.update(dict.fromkeys(fresh, time.monotonic()))
                seen_block = head
            except (OSError, RpcUnavailable) as err:  # a slow node: note it, poll again
                console.log(f"client: rpc error ({type(err).__name__}); retrying")
            for a in agents:
                if not a.alive:
                    raise click.ClickException(f"agent {a.account} exited {a.proc.returncode}; log: {a.log}")
            status.update(f"r = {r}: {len(done_at)}/{n} verified, {time.monotonic() - start:.0f}s")
            time.sleep(0.25)
    wall = (max(done_at.values()) if done_at else time.monotonic()) - start
    after = [scrape(a.metrics_port) for a in agents]
    steps = gas_by_step(w3, market, first_block)
    return Phase(
        r=r, jobs=n, completed=len(done_at), wall=wall,
        latencies=[done_at[j] - posted_at[j] for j in done_at],
        txs=sum(s.txs for s in steps.values()), gas=sum(s.gas for s in steps.values()),
        engine_seconds=[b2.get("verinfer_engine_seconds_total", 0) - b1.get("verinfer_engine_seconds_total", 0)
                        for b1, b2 in zip(before, after)],
        engine_jobs=int(sum(b2.get("verinfer_engine_jobs_total", 0) - b1.get("verinfer_engine_jobs_total", 0)
                            for b1, b2 in zip(before, after))),
        threads=[process_threads(a.proc.pid) for a in agents],
    )


def table(phases: list[Phase], threads: int) -> Table:
    t = Table(title="Verinfer end to end on anvil: 3 agents (separate processes), 1 client")
    for column in ("r", "jobs", "done", "wall s", "jobs/s", "p50 s", "p95 s", "txs/job", "gas/job",
                   "engine runs/job", "engine share", "chain share", "threads (torch/OS)"):
        t.add_column(column, justify="right")
    for p in phases:
        share = sum(p.engine_seconds) / len(p.engine_seconds) / p.wall if p.wall else 0.0
        t.add_row(str(p.r), str(p.jobs), str(p.completed), f"{p.wall:.1f}",
                  f"{p.completed / p.wall:.1f}" if p.wall else "-", f"{p.percentile(0.5):.2f}",
                  f"{p.percentile(0.95):.2f}", f"{p.txs / max(p.completed, 1):.2f}",
                  f"{p.gas // max(p.completed, 1):,}", f"{p.engine_jobs / max(p.completed, 1):.1f}",
                  f"{share:.0%}", f"{1 - share:.0%}", f"{threads} / {max(p.threads)}")
    return t


@click.command()
@click.option("--jobs", default=1000, show_default=True, help="Jobs per run (one run per redundancy).")
@click.option("--redundancy", "rs", multiple=True, type=int, default=(1, 3), show_default=True)
@click.option("--agents", "n_agents", default=3, show_default=True)
@click.option("--threads", default=1, show_default=True, help="Engine (torch) threads per agent.")
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds per run.")
def main(jobs: int, rs: tuple[int, ...], n_agents: int, threads: int, timeout: float) -> None:
    """Throughput and latency of the whole marketplace, with real agents and engine."""
    os.environ["APE_FOUNDRY_HOST"] = "auto"  # ape starts anvil on a free port
    from ape import accounts, chain, networks

    from client import Client
    from scripts.deploy import deploy

    console = Console()
    if not console.is_terminal:  # piped: wide enough for the table
        console = Console(width=160)
    workdir = Path(tempfile.mkdtemp(prefix="verinfer-bench-"))  # agents' stores and logs
    phases: list[Phase] = []
    with networks.parse_network_choice("ethereum:local:foundry") as provider:
        owner = accounts.test_accounts[0]
        client_account = accounts.test_accounts[n_agents + 1]
        with console.status("deploying (loads the engine once for its model id)"):
            deployed = deploy(owner, record=False)
        market = deployed.marketplace.address
        start_block = chain.blocks.head.number
        for i in range(1, n_agents + 2):
            deployed.pay_token.mint(accounts.test_accounts[i], 10**30, sender=owner)
        client = Client.connect(rpc=provider.uri, private_key=client_account.private_key,
                                marketplace=market, poll_interval=0.2)
        client.deposit(client.marketplace.job_price(max(rs), REWARD, jobs) * len(rs))
        agents = [start_agent(workdir, i, provider.uri, market, start_block, deployed.models[0].model_id,
                              threads) for i in range(1, n_agents + 1)]
        try:
            with console.status("starting agents (register + stake)"):
                give_up = time.monotonic() + 300
                while not all(client.marketplace.provider(accounts.test_accounts[a.account].address).free
                              >= STAKE for a in agents):
                    if time.monotonic() > give_up or not all(a.alive for a in agents):
                        raise click.ClickException(f"agents did not start; logs in {workdir}")
                    time.sleep(0.5)
                    # their metrics endpoints come up with the other services
                while True:
                    try:
                        [scrape(a.metrics_port) for a in agents]
                        break
                    except OSError:
                        time.sleep(0.5)
            for r in rs:
                phases.append(run_phase(client, agents, r, jobs, timeout, console))
                console.print(table(phases[-1:], threads))
        finally:
            for a in agents:
                a.proc.send_signal(signal.SIGTERM)
            for a in agents:
                try:
                    a.proc.wait(60)
                except subprocess.TimeoutExpired:
                    a.proc.kill()
            client.close()
    console.print(table(phases, threads))
    shutil.rmtree(workdir)
    console.print(
        f"machine: {os.cpu_count()} CPUs; engine share = mean over agents of engine seconds / wall; "
        "chain share = the rest (RPC, batching waits, transactions, event polling). "
        "engine runs/job > r: agents race for r = 1 jobs and the losers' computation is wasted.")


if __name__ == "__main__":
    main()
