"""End-to-end marketplace throughput on anvil: `python -m bench.e2e` (`./verinfer.sh bench-e2e`).

Starts anvil (through ape's foundry provider, on a free port), deploys, starts three
provider agents as separate processes (`python -m provider.agent`), and a client in
this process posts N jobs (r = 1, then r = 3) from a pre-deposited balance, 32 per
transaction. Agents claim an r = 1 job, compute it while the claim is in flight and
deliver it from a later block; an r = 3 job's seats are drawn by stake (the first claim
after the post draws them) and taken by the drawn agents, one of which may hold several.
A job is done when the client has verified its result against the chain (r = 1: the
delivery; r = 3: the finalized majority), and its latency runs from just before its
post was sent. Prints a rich table per run: completed jobs/s, latency p50 /
p95, transactions and gas per job, engine runs per job, the engine's share of the
agents' wall time, and the chain side's share of all CPU time the run used (anvil, the
agents outside the engine, the client), read from /proc and the agents' metrics. Then
its peer: the engine alone on the r = 1 run's sentences (bench/engine_alone.py), and r = 1
end to end as a share of it, with the CPU's flags.

The chain makes a block a second by default (anvil's interval mining, as a real chain
makes them on a clock): with a block per transaction (`--block-time 0`) the node pays
its per-block work (a state root over the whole marketplace's storage, which grows with
every job) once per transaction, ~6 ms a block after 2,000 jobs and ~10 ms after 6,000
on a 2-CPU EPYC, which a chain pays once per interval.

    python -m bench.e2e --jobs 4000 --threads 1
"""

import itertools
import os
import shutil
import signal
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

from bench.devchain import REPO, Anvil, free_port, start_anvil
from bench.engine_alone import engine_alone_rate
from client.protocol import MAX_BATCH, MAX_ID_BATCH
from provider.engine.selftest import cpu_description

REWARD = 10**15
STAKE = 10**22
WINDOW = 3600
# An r = 1 job waits this long for the agent it hashes to before another claims it: more
# than a loaded agent's backlog takes, so live agents never compute each other's jobs.
TAKEOVER_GRACE = 30.0
# Agents' polling and batch waits: each poll costs RPC round trips (a few ms of CPU
# each), so shorter ones buy latency with throughput on a 2-core machine.
POLL = 0.5
WARM_UP_JOBS = 8  # r = 1 jobs per agent before the measured runs
SALT = 7919  # a run of redundancy r posts sentences(n, salt=r * SALT): texts differ between runs

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


def start_node(workdir: Path) -> Anvil:
    """anvil on a free port (automine), started here rather than by ape's foundry provider:
    that one always adds --steps-tracing, which keeps every EVM step of every transaction
    in memory; a 1,000-job r = 3 run grew anvil past 22 GB until the kernel killed it.
    Blocks hold 1e9 gas: with interval mining (--block-time) a burst of batched posts
    fits a block, instead of raising the base fee past what the client offered."""
    try:
        return start_anvil("--accounts", "12", "--gas-limit", str(10**9), log=workdir / "anvil.log")
    except RuntimeError as exc:
        raise click.ClickException(f"{exc}; log: {workdir / 'anvil.log'}") from None


def scrape(port: int) -> dict[str, float]:
    """An agent's metrics, summed over labels. Patient: an agent inside an engine batch
    answers late (the engine's numba kernels hold the GIL)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as answer:
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> dict[int, list[str]]:
    """/proc/<pid>/stat fields (after the name) of a process and its live descendants:
    anvil runs as a child of npm's launcher."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile
                continue
    tree, found = [pid], {}
    while tree:
        current = tree.pop()
        if current in stats:
            found[current] = stats[current]
            tree += [child for child, f in stats.items() if int(f[1]) == current]  # ppid
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants, all threads."""
    return sum(int(f[11]) + int(f[12]) for f in process_tree(pid).values()) / CLOCK_TICKS


@dataclass
class Cpu:
    """CPU seconds used by each party, cumulative since it started."""

    anvil: float
    client: float
    agents: list[float]
    engine: list[float]  # inside the engine, per agent (its metrics: thread CPU time)

    @staticmethod
    def read(anvil_pid: int, agents: list["AgentProc"], metrics: list[dict[str, float]]) -> "Cpu":
        me = os.times()
        return Cpu(cpu_seconds(anvil_pid), me.user + me.system, [cpu_seconds(a.proc.pid) for a in agents],
                   [m.get("verinfer_engine_cpu_seconds_total", 0.0) for m in metrics])

    def __sub__(self, other: "Cpu") -> "Cpu":
        return Cpu(self.anvil - other.anvil, self.client - other.client,
                   [a - b for a, b in zip(self.agents, other.agents)],
                   [a - b for a, b in zip(self.engine, other.engine)])

    @property
    def total(self) -> float:
        return self.anvil + self.client + sum(self.agents)

    @property
    def chain(self) -> float:
        """Everything but the engine: the node, the client, the agents' RPC / txs / store."""
        return self.total - sum(self.engine)


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
                model_id: bytes, threads: int, engine_batch: int) -> AgentProc:
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
takeover_grace = {TAKEOVER_GRACE}
[claim_batch]
max_size = {MAX_ID_BATCH}
max_wait = {POLL}
[engine_batch]
max_size = {engine_batch}
max_wait = {POLL}
[watcher]
start_block = {start_block}
poll_interval = {POLL}
max_range = 2000
[tx]
poll_interval = {POLL}
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


def wait_staked(client, agents: list[AgentProc], workdir: Path, timeout: float = 300) -> None:
    """Until every agent registered and staked (``ClickException`` if one exits or time runs out)."""
    from ape import accounts

    give_up = time.monotonic() + timeout
    while not all(info.free >= STAKE for info in client.marketplace.providers(
            [accounts.test_accounts[a.account].address for a in agents])):
        if time.monotonic() > give_up or not all(a.alive for a in agents):
            raise click.ClickException(f"agents did not start; logs in {workdir}")
        time.sleep(0.5)


def stop_agents(agents: list[AgentProc]) -> None:
    """SIGTERM to all, then wait for each (killed after a minute)."""
    for a in agents:
        a.proc.send_signal(signal.SIGTERM)
    for a in agents:
        try:
            a.proc.wait(60)
        except subprocess.TimeoutExpired:
            a.proc.kill()


@dataclass
class Phase:
    r: int
    jobs: int
    completed: int
    wall: float
    posting: float  # seconds the client took to post every job
    latencies: list[float]
    txs: int
    gas: int
    engine_seconds: list[float]  # per agent, wall time inside the engine during the phase
    engine_jobs: int
    cpu: Cpu  # used during the phase
    threads: list[int]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def patient(read, tries: int = 5):
    """A read-only RPC read, retried when the node drops the connection (anvil resets
    kept-alive connections now and then under load)."""
    from client.errors import RpcUnavailable

    for attempt in range(tries):
        try:
            return read()
        except RpcUnavailable:
            if attempt == tries - 1:
                raise
            time.sleep(1 + attempt)


def post_all(client, texts: list[str], r: int, model_id: bytes) -> dict[int, float]:
    """Post every text as a job, MAX_BATCH per transaction, each sent without waiting for
    the previous one's receipt (as many clients posting at once would); job id -> when its
    transaction was sent, which is where its latency starts.

    The load generator is not what is measured, yet it shares the agents' CPUs: its gas
    is estimated once per batch size (in the latest block, not the pending one the SDK
    uses, which anvil simulates by re-running every queued transaction), with room for
    the batches' other sentence lengths (a few bytes of calldata each; unused gas costs
    nothing). A post that still ran out of it reverts, and the run stops."""
    from client.events import JobPosted

    market, signer = client.marketplace, client.signer
    sent, gas_for = [], {}
    for i in range(0, len(texts), MAX_BATCH):
        batch = [t.encode() for t in texts[i:i + MAX_BATCH]]
        call = market.build_post_jobs(model_id, batch, r, REWARD, WINDOW, WINDOW, WINDOW)
        if len(batch) not in gas_for:
            gas_for[len(batch)] = client.w3.eth.estimate_gas({"from": signer.address, **call.tx}, "latest") * 3 // 2
        sent.append((time.monotonic(), signer.send(call.tx, gas=gas_for[len(batch)], wait=False)))
    posted_at = {}
    for at, tx_hash in sent:
        receipt = signer.wait(tx_hash)
        if receipt["status"] != 1:
            raise click.ClickException(f"post transaction 0x{bytes(tx_hash).hex()} reverted")
        posted_at.update((e.job_id, at) for e in market.decode_receipt(receipt) if isinstance(e, JobPosted))
    return posted_at


def run_phase(client, anvil_pid: int, agents: list[AgentProc], model_id: bytes, r: int, n: int,
              timeout: float, console: Console) -> Phase:
    from bench.gas_steps import gas_by_step
    from client.errors import ResultUnavailable, RpcUnavailable
    from client.events import JobFinalized, ResultRevealed

    w3, market = client.w3, client.marketplace
    texts = sentences(n, salt=r * SALT)
    before = [scrape(a.metrics_port) for a in agents]
    cpu_before = Cpu.read(anvil_pid, agents, before)
    first_block = w3.eth.block_number + 1
    done_at: dict[int, float] = {}
    start = time.monotonic()
    posted_at = post_all(client, texts, r, model_id)
    posting = time.monotonic() - start
    event = ResultRevealed if r == 1 else JobFinalized
    seen_block = first_block - 1
    give_up = start + timeout
    with console.status(f"r = {r}: {n} jobs") as status:
        while len(done_at) < n and time.monotonic() < give_up:
            try:
                head = w3.eth.block_number
                events = []
                if head > seen_block:
                    events = [e for e in market.get_events(seen_block + 1, head, events=[event.__name__])
                              if e.job_id in posted_at and e.job_id not in done_at]
                fresh = {e.job_id for e in events}
                if fresh:
                    try:  # each checked against the chain's digest (r = 1: the reveals just read)
                        client.results(sorted(fresh), first_block, reveals=[e for e in events if r == 1])
                    except ResultUnavailable:  # an r = 3 job without majority: not a result
                        fresh = {i.job_id for i in market.jobs(fresh) if i.status.has_result}
                    done_at.update(dict.fromkeys(fresh, time.monotonic()))
                seen_block = head
            except (OSError, RpcUnavailable) as err:  # a slow node: note it, poll again
                console.log(f"client: rpc error ({type(err).__name__}); retrying")
            for a in agents:
                if not a.alive:
                    raise click.ClickException(f"agent {a.account} exited {a.proc.returncode}; log: {a.log}")
            status.update(f"r = {r}: {len(done_at)}/{n} verified, {time.monotonic() - start:.0f}s")
            time.sleep(0.1)
    # Unfinished jobs count against the run: the wall runs to the last result or the timeout.
    wall = (max(done_at.values()) if len(done_at) == n else time.monotonic()) - start
    after = [scrape(a.metrics_port) for a in agents]
    cpu = Cpu.read(anvil_pid, agents, after) - cpu_before
    steps = patient(lambda: gas_by_step(market, first_block))
    return Phase(
        r=r, jobs=n, completed=len(done_at), wall=wall, posting=posting,
        latencies=[done_at[j] - posted_at[j] for j in done_at],
        txs=sum(s.txs for s in steps.values()), gas=sum(s.gas for s in steps.values()),
        engine_seconds=[b2.get("verinfer_engine_seconds_total", 0) - b1.get("verinfer_engine_seconds_total", 0)
                        for b1, b2 in zip(before, after)],
        engine_jobs=int(sum(b2.get("verinfer_engine_jobs_total", 0) - b1.get("verinfer_engine_jobs_total", 0)
                            for b1, b2 in zip(before, after))),
        cpu=cpu, threads=[process_threads(a.proc.pid) for a in agents],
    )


def table(phases: list[Phase], threads: int) -> Table:
    t = Table(title="Verinfer end to end on anvil: 3 agents (separate processes), 1 client")
    for column in ("r", "jobs", "done", "post s", "wall s", "jobs/s", "p50 s", "p95 s", "txs/job", "gas/job",
                   "engine runs/job", "engine share (wall)", "chain share (CPU)", "CPU busy",
                   "CPU s: anvil / client / agents / engine", "threads (torch/OS)"):
        t.add_column(column, justify="right")
    for p in phases:
        engine_share = sum(p.engine_seconds) / len(p.engine_seconds) / p.wall if p.wall else 0.0
        c = p.cpu
        t.add_row(str(p.r), str(p.jobs), str(p.completed), f"{p.posting:.1f}", f"{p.wall:.1f}",
                  f"{p.completed / p.wall:.1f}" if p.wall else "-", f"{p.percentile(0.5):.2f}",
                  f"{p.percentile(0.95):.2f}", f"{p.txs / max(p.completed, 1):.2f}",
                  f"{p.gas // max(p.completed, 1):,}", f"{p.engine_jobs / max(p.completed, 1):.2f}",
                  f"{engine_share:.0%}", f"{c.chain / c.total:.0%}" if c.total else "-",
                  f"{c.total / (p.wall * (os.cpu_count() or 1)):.0%}" if p.wall else "-",
                  f"{c.anvil:.1f} / {c.client:.1f} / {sum(c.agents):.1f} / {sum(c.engine):.1f}",
                  f"{threads} / {max(p.threads)}")
    return t


@click.command()
# 4,000 by default: an r = 1 run of 1,000 jobs lasts about one job's latency (~6 s on 2
# cores), so it measures the pipeline filling and draining more than throughput.
@click.option("--jobs", default=4000, show_default=True, help="Jobs per run (one run per redundancy).")
@click.option("--redundancy", "rs", multiple=True, type=int, default=(1, 3), show_default=True)
@click.option("--agents", "n_agents", default=3, show_default=True)
@click.option("--threads", default=1, show_default=True, help="Engine (torch) threads per agent.")
@click.option("--engine-batch", default=64, show_default=True, help="Agents' max engine batch.")
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds per run.")
@click.option("--block-time", default=1, show_default=True,
              help="Seconds per block once deployed (anvil's interval mining; 0: a block per transaction).")
def main(jobs: int, rs: tuple[int, ...], n_agents: int, threads: int, engine_batch: int,
         timeout: float, block_time: int) -> None:
    """Throughput and latency of the whole marketplace, with real agents and engine."""
    console = Console()
    if not console.is_terminal:  # piped: wide enough for the table
        console = Console(width=200)
    workdir = Path(tempfile.mkdtemp(prefix="verinfer-bench-"))  # agents' stores and logs
    phases: list[Phase] = []
    node = start_node(workdir)
    anvil = node.proc
    os.environ["APE_FOUNDRY_HOST"] = node.url  # ape's foundry provider connects to it
    try:
        _run(console, workdir, anvil.pid, jobs, rs, n_agents, threads, engine_batch, timeout, block_time, phases)
    finally:
        for pid in sorted(process_tree(anvil.pid), reverse=True):  # the node itself, then its launcher
            os.kill(pid, signal.SIGTERM)
        anvil.wait(30)
    if len(phases) > 1:  # each phase's table was printed as it ended
        console.print(table(phases, threads))
    shutil.rmtree(workdir)
    r1 = next((p for p in phases if p.r == 1 and p.wall), None)
    if r1 is not None:
        with console.status("the engine alone on the same jobs (the peer of r = 1), twice"):
            # The faster of two runs: a peer slowed by a noisy moment would flatter us.
            alone = max(engine_alone_rate(jobs, n_agents, threads, engine_batch, salt=SALT)
                        for _ in range(2))
        end_to_end = r1.completed / r1.wall
        console.print(
            f"r = 1 end to end {end_to_end:.1f} jobs/s; engine alone {alone:.1f} jobs/s ({n_agents} "
            f"processes x {threads} thread(s), batch {engine_batch}, the same {jobs} sentences): "
            f"[bold]{end_to_end / alone:.0%}[/bold] of engine-alone throughput")
    console.print(f"CPU: {cpu_description()}")
    console.print(
        f"machine: {os.cpu_count()} CPUs. engine share (wall) = mean over agents of the wall time inside the "
        "engine / run wall time. chain share (CPU) = CPU time of anvil, the client and the agents outside "
        "the engine / all their CPU time (engine CPU: its calling thread and thread pools). CPU busy = all "
        "that CPU time / (wall x CPUs). engine runs/job: r = 1 above 1 is computation for claims another "
        "agent won (wasted); r = 3: one run per agent holding seats (drawn with replacement: about 2.1 of "
        "3 equal agents).")


def _run(console: Console, workdir: Path, anvil_pid: int, jobs: int, rs: tuple[int, ...], n_agents: int,
         threads: int, engine_batch: int, timeout: float, block_time: int, phases: list[Phase]) -> None:
    from ape import accounts, chain, networks

    from client import Client
    from scripts._quiet import quiet_ape
    from scripts.deploy import deploy

    with quiet_ape(), networks.parse_network_choice("ethereum:local:foundry") as provider:
        owner = accounts.test_accounts[0]
        client_account = accounts.test_accounts[n_agents + 1]
        with console.status("deploying (loads the engine once for its model id)"):
            deployed = deploy(owner, record=False)
        market = deployed.marketplace.address
        model_id = deployed.models[0].model_id
        start_block = chain.blocks.head.number
        for i in range(1, n_agents + 2):
            deployed.pay_token.mint(accounts.test_accounts[i], 10**30, sender=owner)
        if block_time:  # after the deploy: ape's deployment expects a block per transaction
            provider.make_request("evm_setIntervalMining", [block_time])
        client = Client.connect(rpc=provider.uri, private_key=client_account.private_key,
                                marketplace=market, poll_interval=0.2)
        warm_up = WARM_UP_JOBS * n_agents
        client.deposit(client.marketplace.job_price(max(rs), REWARD, jobs) * len(rs)
                       + client.marketplace.job_price(1, REWARD, warm_up))
        agents = [start_agent(workdir, i, provider.uri, market, start_block, model_id, threads, engine_batch)
                  for i in range(1, n_agents + 1)]
        try:
            with console.status("starting agents (register + stake)"):
                wait_staked(client, agents, workdir)
                    # their metrics endpoints come up with the other services
                while True:
                    try:
                        [scrape(a.metrics_port) for a in agents]
                        break
                    except OSError:
                        time.sleep(0.5)
            # Not measured: each agent's first engine calls load compiled kernels.
            run_phase(client, anvil_pid, agents, model_id, 1, warm_up, timeout, console)
            for r in rs:
                phases.append(run_phase(client, anvil_pid, agents, model_id, r, jobs, timeout,
                                        console))
                console.print(table(phases[-1:], threads))
        finally:
            stop_agents(agents)
            client.close()


if __name__ == "__main__":
    main()
