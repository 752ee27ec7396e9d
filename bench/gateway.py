"""The gateway against the SDK directly, on anvil: `python -m bench.gateway`
(`./verinfer.sh bench-gateway`).

One anvil, one deployment and the same provider agents (separate processes) serve both
paths; at each concurrency level C, C client threads each send `--per-client` embedding
requests of one sentence (r = 1, answered once delivered and verified), one after the
other:

- SDK: each request is `Client.post` + `Client.wait` + `Client.results` (the digest
  check), the threads sharing one account, so its posts are serialized, as the
  gateway's are (one account, one nonce sequence);
- gateway: `verinfer serve` as its own process (its own account, `--no-explorer`),
  each request the `openai` client's `embeddings.create`; concurrent requests share
  post transactions (its batch window).

Prints a rich table: requests/s, latency p50 / p95, post transactions, and the
gateway's throughput as a share of the SDK's at the same level; then the CPU (model,
notable instruction sets) and the machine's CPU count.

    python -m bench.gateway --concurrency 1 --concurrency 16 --per-client 8
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from bench.e2e import (REPO, REWARD, process_tree, sentences, start_agent, start_node, stop_agents,
                       wait_staked)

@dataclass
class Run:
    path: str  # "SDK" or "gateway"
    clients: int
    requests: int
    latencies: list[float]
    errors: int
    wall: float
    posts: int  # post transactions

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def drive(clients: int, per_client: int, ask, texts: list[str]) -> tuple[list[float], int, float]:
    """``clients`` threads, each asking ``per_client`` texts in turn: the latencies, the
    failures and the wall time of the whole level."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client_thread(index: int) -> None:
        for text in texts[index * per_client:(index + 1) * per_client]:
            start = time.monotonic()
            try:
                ask(text)
            except Exception as exc:  # counted and shown: a bench must finish its table
                with lock:
                    errors.append(exc)
                continue
            with lock:
                latencies.append(time.monotonic() - start)

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"{len(errors)} failed requests, first: {type(errors[0]).__name__}: {errors[0]}", file=sys.stderr)
    return latencies, len(errors), time.monotonic() - start


def post_transactions(market, first_block: int) -> int:
    """Post transactions since ``first_block`` (levels and paths run one at a time)."""
    from bench.gas_steps import gas_by_step

    steps = gas_by_step(market, first_block)
    return sum(steps[f].txs for f in ("post_job", "post_jobs") if f in steps)


class GatewayProcess:
    """`python -m gateway serve` with its account's key in its environment."""

    def __init__(self, workdir: Path, rpc: str, market: str, key: str, audit: float):
        self.log = workdir / "gateway.log"
        out = workdir / "gateway.out"
        env = os.environ | {"VERINFER_PRIVATE_KEY": key, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                            "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "gateway", "serve", "--rpc", rpc, "--marketplace", market, "--reward",
                   str(REWARD / 10**18), "--port", "0", "--deposit", "1000", "--no-explorer", "--audit", str(audit),
                   "--data-dir", str(workdir / "gateway-data")]
        with open(out, "w") as stdout, open(self.log, "w") as stderr:
            self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        give_up = time.monotonic() + 120
        while not (lines := [x for x in out.read_text().splitlines() if " on http" in x]):
            if self.proc.poll() is not None or time.monotonic() > give_up:
                self.stop()
                raise click.ClickException(f"the gateway did not start; log: {self.log}")
            time.sleep(0.2)
        self.url = lines[0].rsplit(" ", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def table(runs: list[Run], audit: float, agents: int) -> Table:
    t = Table(title=f"Gateway vs SDK on anvil: {agents} agents, r = 1 embeddings of one sentence, "
                    f"gateway auditing {audit:.0%} of answers")
    for column in ("clients", "path", "requests", "failed", "wall s", "req/s", "p50 s", "p95 s", "post txs",
                   "gateway / SDK"):
        t.add_column(column, justify="right")
    sdk = {r.clients: r.rate for r in runs if r.path == "SDK"}
    for r in runs:
        ratio = f"{r.rate / sdk[r.clients]:.0%}" if r.path == "gateway" and sdk.get(r.clients) else ""
        t.add_row(str(r.clients), r.path, str(r.requests), str(r.errors), f"{r.wall:.1f}", f"{r.rate:.2f}",
                  f"{r.percentile(0.5):.2f}", f"{r.percentile(0.95):.2f}", str(r.posts), ratio)
    return t


@click.command()
@click.option("--concurrency", "levels", multiple=True, type=int, default=(1, 4, 16), show_default=True,
              help="Concurrent clients (one run per level and path).")
@click.option("--per-client", default=8, show_default=True, help="Requests each client sends, one after the other.")
@click.option("--agents", "n_agents", default=2, show_default=True)
@click.option("--audit", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="The gateway's audit fraction (its default: 0.1).")
def main(levels: tuple[int, ...], per_client: int, n_agents: int, audit: float) -> None:
    """Requests/s and latency through the gateway against the SDK directly."""
    from provider.engine.selftest import cpu_description

    console = Console()
    if not console.is_terminal:  # piped: wide enough for the table
        console = Console(width=160)
    workdir = Path(tempfile.mkdtemp(prefix="verinfer-bench-gateway-"))
    node = start_node(workdir)
    anvil = node.proc
    os.environ["APE_FOUNDRY_HOST"] = node.url  # ape's foundry provider connects to it
    runs: list[Run] = []
    try:
        _run(console, workdir, levels, per_client, n_agents, audit, runs)
    finally:
        for pid in sorted(process_tree(anvil.pid), reverse=True):  # the node itself, then its launcher
            os.kill(pid, signal.SIGTERM)
        anvil.wait(30)
    console.print(table(runs, audit, n_agents))
    console.print(f"CPU: {cpu_description()}; {os.cpu_count()} CPUs shared by anvil, the agents, the gateway and "
                  f"the clients. Logs: {workdir}")


def _run(console: Console, workdir: Path, levels: tuple[int, ...], per_client: int, n_agents: int, audit: float,
         runs: list[Run]) -> None:
    import openai
    from ape import accounts, chain, networks

    from client import Client
    from scripts._quiet import quiet_ape
    from scripts.deploy import deploy

    with quiet_ape(), networks.parse_network_choice("ethereum:local:foundry") as provider:
        owner = accounts.test_accounts[0]
        sdk_account, gateway_account = accounts.test_accounts[n_agents + 1], accounts.test_accounts[n_agents + 2]
        with console.status("deploying (loads the engine once for its model id)"):
            deployed = deploy(owner, record=False)
        market, model_id = deployed.marketplace.address, deployed.models[0].model_id
        start_block = chain.blocks.head.number
        for i in range(1, n_agents + 3):
            deployed.pay_token.mint(accounts.test_accounts[i], 10**30, sender=owner)
        sdk = Client.connect(rpc=provider.uri, private_key=sdk_account.private_key, marketplace=market,
                             poll_interval=0.2)  # the gateway's poll interval
        total = sum(levels) * per_client + 8
        sdk.deposit(sdk.marketplace.job_price(1, REWARD, total))
        agents = [start_agent(workdir, i, provider.uri, market, start_block, model_id, 1, 64)
                  for i in range(1, n_agents + 1)]
        gateway = None
        try:
            with console.status("starting agents (register + stake) and the gateway"):
                wait_staked(sdk, agents, workdir)
                gateway = GatewayProcess(workdir, provider.uri, market, gateway_account.private_key, audit)
            api = openai.OpenAI(base_url=gateway.url, api_key="none", max_retries=0, timeout=600)
            name = sdk.marketplace.model(model_id).name  # as the gateway lists it
            post_lock = threading.Lock()

            def ask_sdk(text: str) -> None:
                with post_lock:  # one account: its posts one at a time
                    head = sdk.w3.eth.block_number  # its reveal comes later: searched from here, as the gateway does
                    [job] = sdk.post_many([text], reward=REWARD, r=1)
                sdk.wait([job], timeout=600)
                sdk.results([job], from_block=head + 1)

            def ask_gateway(text: str) -> None:
                api.embeddings.create(model=name, input=text)

            with console.status("warming up (agents' kernels, the gateway's audit engine)"):
                for text in sentences(4, salt=90_000):
                    ask_sdk(text)
                api.embeddings.create(model=name, input=sentences(4, salt=90_100),
                                      extra_body={"verinfer": {"audit": 1.0}})
            for level, clients in enumerate(levels):
                for path, ask in (("SDK", ask_sdk), ("gateway", ask_gateway)):
                    texts = sentences(clients * per_client, salt=level * 1000 + (500 if path == "gateway" else 0))
                    first_block = sdk.w3.eth.block_number + 1
                    with console.status(f"{path}: {clients} clients x {per_client} requests"):
                        latencies, errors, wall = drive(clients, per_client, ask, texts)
                    runs.append(Run(path, clients, len(texts), latencies, errors, wall,
                                    post_transactions(sdk.marketplace, first_block)))
        finally:
            if gateway is not None:
                gateway.stop()
            stop_agents(agents)
            sdk.close()


if __name__ == "__main__":
    main()
