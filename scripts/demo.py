"""The whole marketplace in one process: `ape run demo` (the README's main command).

    ape run demo                                   # ape's embedded test chain, nothing to start
    ape run demo --network ethereum:local:foundry  # the same story on anvil

Deploys the marketplace with two models (MiniLM embeddings and the SmolLM2 chat LLM),
starts three provider agents in this process serving both (alice and bob honest,
mallory answering every embedding job with one cached embedding and every chat job
with one canned answer), and a client posts real sentences with r = 3 and r = 1, and a
chat question with r = 3. Seats of r = 3 jobs are drawn by stake; the
drawn agents claim, compute with the integer engine, commit, reveal and finalize;
mallory is slashed on every r = 3 job and the client compensated. r = 1 jobs go to
the first claimant, who delivers from a later block. The client spot-checks r = 1
deliveries by re-running the engine (results are bit-exact, so anyone can) and
challenges mallory's; three providers drawn by stake re-execute it and mallory loses
that stake too. Every result is verified through the SDK, then rich tables show
nearest neighbours, each job's path, gas per step and balances before and after.

Draws are random on a live chain: with a third of the stake, mallory would hold a
majority of a job's three seats about one time in four (and win it). So that every run
tells the same story, the demo (a local chain only) picks the block of each draw with
chain snapshots so that mallory holds exactly one seat of three, and says so.

The in-process pieces (`start_agents`, `drive`, `advance_time`, `pin_draw`,
`job_path`) are reused by the end-to-end tests.
"""

import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand
from rich.console import Console
from rich.table import Table

from bench.gas_steps import StepGas, gas_by_step
from client import Client
from client.accounts import load_account
from client.chat import CHAT_FORMAT, ChatAnswer, ChatRequest
from client.events import (BondReturned, Event, ItemSkipped, JobChallenged, JobClaimed, JobFinalized, JobPosted,
                           ProviderSlashed, ResultRevealed, SealCommitted, SeatDrawn, SlashShareCredited)
from client.marketplace import Marketplace
from client.protocol import Fault, JobStatus, majority_chance
from client.records import Deadlines
from gateway.config import GatewayConfig
from gateway.server import serve as serve_gateway
from provider.agent.config import AgentConfig
from provider.agent.jobs.runner import JobRunner
from provider.agent.main import Agent, build_agent
from provider.agent.store import JobState
from scripts._quiet import quiet_ape

REWARD = 10**16  # 0.01 token per seat
STAKE = 10**20  # each provider bonds 100 tokens
FUNDS = 10**21  # minted to the client and to each provider
WINDOWS = Deadlines(claim=600, commit=600, reveal=600)

# Pairs of paraphrases, so that nearest neighbours are meaningful.
SENTENCES_R3 = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The stock market fell sharply after the announcement.",
    "Share prices dropped as investors reacted to the news.",
    "A cat is sleeping on the warm windowsill.",
    "The kitten naps in the sun by the window.",
]
SENTENCES_R1 = [
    "How do I reset my email password?",
    "I forgot the password for my mail account.",
    "Heavy rain is expected across the region tomorrow.",
]
CHALLENGED_SENTENCE = "The forecast says it will pour all day tomorrow."
CACHED_ANSWER = "I did not really compute this."  # what mallory returns for every embedding job
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
CANNED_REPLY = "The capital of France is Berlin."  # what mallory answers every chat job

class DemoError(RuntimeError):
    """The marketplace did not reach the state the demo waits for."""


# ---------------------------------------------------------------- in-process agents


@dataclass
class InProcessAgent:
    """A provider agent whose services are stepped by `drive` instead of threads (the
    embedded chain lives in this process, and only moves when someone acts on it)."""

    name: str
    agent: Agent

    @property
    def address(self) -> str:
        return self.agent.txm.address

    @property
    def store(self):
        return self.agent.store

    def step(self) -> None:
        self.agent.step()

    def send(self, call) -> None:
        """A transaction of the provider's own (e.g. withdraw) through its tx manager,
        which owns the account's nonce."""
        record = self.agent.txm.wait(self.agent.txm.send(call.to, call.data, kind=call.function),
                                     timeout=120)
        if not record.succeeded:
            raise DemoError(f"{self.name}: {call.function} failed")


def start_agents(w3, market: str, start_block: int, engines: Sequence[JobRunner], signers: dict, workdir: Path, *,
                 network: str, result_hooks: dict | None = None,
                 stake: int = STAKE) -> list[InProcessAgent]:
    """Build, register and stake one agent per named signer (all serving every engine's
    model)."""
    agents = []
    for name, signer in signers.items():
        config = AgentConfig(
            network=network, models=["0x" + e.model_id.hex() for e in engines], db_path=workdir / f"{name}.db",
            dashboard=False, metrics={"enabled": False}, policy={"stake": stake, "price": REWARD},
            claim_batch={"max_wait": 0.01}, engine_batch={"max_wait": 0.01},
            watcher={"confirmations": 0, "poll_interval": 0.05}, tx={"confirmations": 1},
        )
        agent = build_agent(config, w3, signer, marketplace=market, start_block=start_block,
                            engines={e.model_id: e for e in engines},
                            result_hook=(result_hooks or {}).get(name))
        agent.txm.setup()
        agent.worker.setup()  # registers, declares the model and stakes on first start
        agents.append(InProcessAgent(name, agent))
    return agents


def drive(agents: Sequence[InProcessAgent], done: Callable[[], bool], *, what: str,
          timeout: float = 300.0) -> None:
    """Step the agents in turn (in the given order: the first to act wins races) until
    `done()`; DemoError after `timeout` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        for agent in agents:
            agent.step()
        if done():
            return
        if time.monotonic() > give_up:
            raise DemoError(f"timed out waiting for {what}")
        time.sleep(0.02)  # lets the batchers' max_wait pass


def advance_time(seconds: int) -> None:
    """Move chain time forward: the next block is `seconds` later (any ape provider)."""
    chain.pending_timestamp += seconds
    chain.mine()


def pin_draw(client: Client, job_id: int, accept: Callable[[list[str]], bool], *, tries: int = 200) -> list[str]:
    """Local chains only: draw the seats of the job's current round (a `claim_many` by
    `client`, which is no provider: its own item is skipped, the draw stands) and keep
    the first draw whose providers by seat `accept` takes. Any other draw is undone
    (chain snapshot) and made again in the next block, whose parent hash (the seed)
    differs. Call it before the agents step, so that they never see an undone block.
    On a live chain nobody can choose: the draw is what the parent block's hash makes it."""
    market = client.marketplace
    for _ in range(tries):
        snapshot = chain.snapshot()
        client.send(market.build_claim_many([job_id]))
        drawn = [seat.provider for seat in market.round_seats(job_id).values()]
        if accept(drawn):
            return drawn
        chain.restore(snapshot)
        advance_time(1)
    raise DemoError(f"no acceptable seat draw for job {job_id} in {tries} blocks")


def stake_share(market: Marketplace, provider: str, providers: Sequence[str]) -> float:
    """`provider`'s share of the draw weight of `providers` (all serving one model)."""
    weights = market.draw_weights(providers)
    return weights[provider] / sum(weights.values())


# ---------------------------------------------------------------- reading the chain


FAULTS = {Fault.NO_COMMIT: "no commit", Fault.NO_REVEAL: "no reveal",
          Fault.LOSING_DIGEST: "losing digest", Fault.LOST_CHALLENGE: "lost challenge"}


def job_path(events: Sequence[Event], names: dict[str, str]) -> str:
    """A job's events in order, consecutive ones of a kind merged:
    `posted r=3 > drawn a,m,b > claimed a,m,b > sealed a,m,b > revealed a,m,b > slashed m (losing digest) > finalized`.
    An r = 1 claim logs no event: its path reads `posted r=1 > delivered a`. Claims
    skipped as "not drawn" are left out (the draw shows who holds the seats)."""

    def who(address: str) -> str:
        return names.get(address, address[:8])

    parts: list[tuple[str, list[str]]] = []
    single = False  # an r = 1 job's first result is a delivery
    for e in events:
        if isinstance(e, ItemSkipped) and e.reason == "jobs: not drawn":
            continue
        if isinstance(e, JobPosted):
            label, detail, single = "posted", f"r={e.r}", e.r == 1
        elif isinstance(e, SeatDrawn):
            label, detail = "drawn", who(e.provider)
        elif isinstance(e, JobClaimed):
            label, detail = "claimed", who(e.provider)
        elif isinstance(e, SealCommitted):
            label, detail = "sealed", who(e.provider)
        elif isinstance(e, ResultRevealed):
            label, detail, single = "delivered" if single else "revealed", who(e.provider), False
        elif isinstance(e, ProviderSlashed):
            label, detail = "slashed", f"{who(e.provider)} ({FAULTS.get(e.reason, e.reason)})"
        elif isinstance(e, JobChallenged):
            label, detail = "challenged", who(e.challenger)
        elif isinstance(e, JobFinalized):
            label, detail = e.status.name.lower(), ""
        elif isinstance(e, ItemSkipped):
            label, detail = "skipped", who(e.caller)
        elif isinstance(e, SlashShareCredited):
            label, detail = "slash shares", who(e.account)
        elif isinstance(e, BondReturned):
            label, detail = "bond returned", who(e.challenger)
        else:
            label, detail = type(e).__name__, ""
        if parts and parts[-1][0] == label and label != "slashed":
            parts[-1][1].append(detail)
        else:
            parts.append((label, [detail] if detail else []))
    return " > ".join(f"{label} {','.join(d)}".strip() for label, d in parts)


@dataclass(frozen=True)
class Holdings:
    """What one account owns, in payment-token units (the demo uses one token)."""

    wallet: int
    in_market: int  # withdrawable balance + stake credits + pending r = 1 pay
    stake: int  # bonded: free + locked + unbonding

    @property
    def total(self) -> int:
        return self.wallet + self.in_market + self.stake


def holdings(market: Marketplace, token, address: str) -> Holdings:
    provider = market.provider(address)
    pending = market.pending_payouts(address)
    return Holdings(
        wallet=token.balance_of(address),
        in_market=market.balance_of(address) + market.stake_credits_of(address) + pending.pay,
        stake=provider.total_stake,
    )


# ---------------------------------------------------------------- the story


def fmt(amount: int) -> str:
    return f"{amount / 10**18:,.4f}"


def signed(amount: int) -> str:
    text = f"{amount / 10**18:+,.4f}"
    return f"[green]{text}[/]" if amount > 0 else f"[red]{text}[/]" if amount < 0 else text


def run_demo(console: Console, network: str, workdir: Path, port: int | None = None) -> None:
    """The story; then, with a ``port``, the marketplace stays up behind the gateway
    (``serve_marketplace``) until Ctrl-C."""
    from provider.engine import Engine
    from provider.llm import LLMEngine
    from provider.llm.chat_jobs import ChatRunner
    from scripts.deploy import ModelEntry, deploy

    t0 = time.monotonic()

    def elapsed() -> str:
        return f"{time.monotonic() - t0:.0f}s"

    logging.getLogger("verinfer").setLevel(logging.WARNING)
    console.rule("[bold]Verinfer demo")
    with console.status("loading the integer engines (MiniLM, then the LLM) and their self-tests"):
        engine = Engine.load()
        llm = ChatRunner(LLMEngine.load())
    for e in (engine, llm.engine):
        console.print(f"engine: {e.model_info.name}, backend [bold]{e.backend}[/], "
                      f"model_id 0x{e.model_id.hex()[:16]}...")

    owner, treasury, client_account = (accounts.test_accounts[i] for i in (0, 5, 4))
    deployed = deploy(owner, [ModelEntry(i.model_id, i.name, i.weights_digest, i.format_version)
                              for i in (engine.model_info, llm.engine.model_info)],
                      treasury=treasury, record=False)
    market_address = deployed.marketplace.address
    start_block = chain.blocks.head.number
    provider_accounts = {"alice": accounts.test_accounts[1], "bob": accounts.test_accounts[2],
                         "mallory": accounts.test_accounts[3]}
    for account in [*provider_accounts.values(), client_account]:
        deployed.pay_token.mint(account, FUNDS, sender=owner)
    console.print(f"marketplace {market_address} on {network}, owner {owner.address}")

    client = Client.connect(account=client_account, marketplace=market_address, poll_interval=0.05)
    w3, market, token = client.w3, client.marketplace, client.pay_token()
    names = {a.address: n for n, a in provider_accounts.items()}
    names |= {client.address: "client", treasury.address: "treasury"}
    before = {a: holdings(market, token, a) for a in names}

    cached = engine.embed([CACHED_ANSWER])[0]
    tokenizer = llm.engine.tokenizer
    canned = ChatAnswer(finish="stop", ids=(*tokenizer.encode(CANNED_REPLY), min(tokenizer.stop_ids)),
                        text=CANNED_REPLY).encode()

    def mallory_lies(job_id: int, result: bytes) -> bytes:
        return canned if result[0] == CHAT_FORMAT else cached  # the format byte tells the kind

    with console.status("starting three provider agents serving both models (register + stake)"):
        signers = {n: load_account(a) for n, a in provider_accounts.items()}
        agents = start_agents(w3, market_address, start_block, [engine, llm], signers, workdir,
                              network=network, result_hooks={"mallory": mallory_lies})
    alice, bob, mallory = agents
    console.print(f"providers registered and staked: alice, bob, [red]mallory (dishonest)[/] ({elapsed()})")

    def status(job_id: int) -> JobStatus:
        return market.job(job_id).status

    def one_seat_of_mallory(drawn: list[str]) -> bool:
        return drawn.count(mallory.address) == 1

    # 1. r = 3: three seats drawn by stake, majority decides.
    console.rule("r = 3 jobs: seats drawn by stake; claim, commit, reveal, finalize by majority")
    majority = client.post_texts(SENTENCES_R3, reward=REWARD, r=3, deadlines=WINDOWS)
    share = stake_share(market, mallory.address, [a.address for a in agents])
    with console.status("drawing the seats"):
        for job_id in majority:
            pin_draw(client, job_id, one_seat_of_mallory)
    console.print(f"[yellow]Seats are drawn at random on a live chain: with its stake share s = {share:.2f}, mallory "
                  f"would win a majority of a job's 3 seats with probability 3s^2 - 2s^3 = "
                  f"{majority_chance(share):.1%}. On this local chain the demo picked, for each job, the block whose "
                  "draw gives mallory exactly one seat (chain snapshots).")
    with console.status(f"agents working on {len(majority)} r = 3 jobs"):
        drive(agents, lambda: all(status(j).settled for j in majority), what="r = 3 jobs")
    slashed = [j for j in majority if mallory.store.job(j).state is JobState.SLASHED]
    console.print(f"{len(majority)} jobs finalized; mallory slashed on {len(slashed)} of them ({elapsed()})")

    # 2. A chat question at r = 3: the integer LLM gives every honest provider the same bytes.
    console.rule("a chat job, r = 3: the integer LLM's answer, the same bytes on every honest machine")
    chat_job = client.post(ChatRequest(messages=QUESTION, max_tokens=32), reward=REWARD, r=3, deadlines=WINDOWS)
    with console.status("drawing the seats"):
        pin_draw(client, chat_job, one_seat_of_mallory)
    with console.status("agents generating and sealing the answer"):
        drive(agents, lambda: status(chat_job).settled, what="the chat job")
    reply = client.result(chat_job)  # checked against the settled digest
    if reply.result != llm.run([ChatRequest(messages=QUESTION, max_tokens=32).encode()])[0]:
        raise DemoError("the settled chat answer differs from the client's own LLM")
    slashed = {e.provider for e in client.history(chat_job) if isinstance(e, ProviderSlashed)}
    console.print(f"client asked {QUESTION[0]['content']!r}; verified answer ({reply.answer.finish}, "
                  f"{len(reply.answer.ids)} tokens, by {', '.join(names[p] for p in reply.providers)}): "
                  f"[bold]{reply.answer.text}[/]; mallory answered {CANNED_REPLY!r} and was "
                  f"{'slashed' if mallory.address in slashed else 'NOT slashed'} ({elapsed()})")

    # 3. r = 1: the first claimant delivers; the client spot-checks and challenges.
    console.rule("r = 1 jobs: claim, deliver, spot-check, challenge")
    singles = client.post_texts(SENTENCES_R1, reward=REWARD, r=1, deadlines=WINDOWS)
    with console.status("alice and bob race for the r = 1 jobs (claim, then deliver from a later block)"):
        drive([alice, bob, mallory], lambda: all(status(j) is JobStatus.DELIVERED for j in singles),
              what="r = 1 deliveries")
    console.print(f"{len(singles)} delivered ({elapsed()})")
    [disputed] = client.post_texts([CHALLENGED_SENTENCE], reward=REWARD, r=1, deadlines=WINDOWS)
    with console.status("mallory is quickest to the next one"):
        # Until every agent knows who delivered (the losers' deliveries were skipped).
        drive([mallory, alice, bob], lambda: all(
            a.store.job(j).state in (JobState.LOST, JobState.REVEALED)
            for a in agents for j in singles + [disputed]), what="deliveries")

    expected = dict(zip(singles + [disputed], engine.embed(SENTENCES_R1 + [CHALLENGED_SENTENCE])))
    delivered = client.results(singles + [disputed])  # checked against the delivered digests
    wrong = [j for j, r in delivered.items() if r.result != expected[j]]
    console.print(f"client re-ran {len(delivered)} deliveries locally: "
                  f"{len(wrong)} differ (by {', '.join(names[delivered[j].providers[0]] for j in wrong)})")
    for job_id in wrong:
        bond = client.challenge(job_id).bond
        drawn = pin_draw(client, job_id, one_seat_of_mallory)
        console.print(f"challenged job {job_id}, bond {fmt(bond)}: re-executed by {', '.join(names[p] for p in drawn)} "
                      "(3 seats drawn by stake; the deliverer is drawn like anyone; picked as above)")
    with console.status("the drawn providers re-execute the challenged job"):
        drive(agents, lambda: all(status(j).settled for j in wrong), what="the challenge settling")

    # 4. Settlement: r = 1 pay matures after its challenge window; everyone collects.
    console.rule("settlement")
    advance_time(client.params().challenge_window + 1)
    drive(agents, lambda: all(a.store.job(j).state.final for a in agents for j in majority + singles),
          what="agents settling")
    for agent in agents:  # providers collect their pay through their own tx managers
        if holdings(market, token, agent.address).in_market:
            agent.send(market.build_withdraw())
    refund, compensation = market.balance_of(client.address), market.stake_credits_of(client.address)
    client.withdraw()
    console.print(f"client collected refunds {fmt(refund)} and compensation {fmt(compensation)} "
                  "from mallory's slashed stake")

    texts = dict(zip(majority + singles + [disputed], SENTENCES_R3 + SENTENCES_R1 + [CHALLENGED_SENTENCE]))
    all_jobs = list(texts)
    results = client.results(all_jobs)  # each checked against the settled digest
    own = dict(zip(all_jobs, engine.embed(list(texts.values()))))
    wrong = [j for j in all_jobs if not results[j].final or results[j].result != own[j]]
    if wrong:
        raise DemoError(f"settled results differ from the engine's bytes for jobs {wrong}")
    console.print(f"client verified all {len(results)} results against the settled digests "
                  "(and they equal its own engine's bytes)")

    console.print(neighbours_table(texts, {j: r.embedding for j, r in results.items()}))
    console.print(paths_table(client, all_jobs + [chat_job], names))
    console.print(gas_table(gas_by_step(market, start_block)))
    after = {a: holdings(market, token, a) for a in names}
    console.print(balances_table(names, before, after))
    console.rule(f"done in {time.monotonic() - t0:.0f}s")
    if port is not None:
        # Left in, mallory would hold a majority of an undrawn-by-us r = 3 job about one
        # time in four and answer it: it leaves the market (serves no model, so no weight).
        mallory.send(market.build_update_provider([], REWARD))
        console.print("mallory now serves no model (no draw weight, takes no job); alice and bob serve on")
        serve_marketplace(console, client, [alice, bob], port, network, market_address,
                          {kind: client.model(format_version=kind).name for kind in (1, CHAT_FORMAT)})


def serve_marketplace(console: Console, client: Client, agents: Sequence[InProcessAgent], port: int,
                      network: str, market_address: str, models: dict[int, str]) -> None:
    """Keep the demo's marketplace running: the agents stepped on a thread of their own,
    the gateway (OpenAI API and explorer page) on ``port`` as ``client``, until Ctrl-C.
    On a node other processes reach (anvil), the `verinfer` CLI works against it too."""
    one_request_at_a_time(client.w3)
    stop = threading.Event()
    stepper = threading.Thread(target=drive, args=(agents, stop.is_set), daemon=True,
                               kwargs={"what": "the gateway's jobs", "timeout": math.inf})
    stepper.start()

    def announce(url: str) -> None:
        console.rule("the marketplace stays up: OpenAI API and explorer (Ctrl-C stops)")
        console.print(f"Verinfer gateway (OpenAI API) on {url}", soft_wrap=True)
        console.print(f"explorer page on {url.removesuffix('/v1')}/", soft_wrap=True)
        console.print(OPENAI_SNIPPET.format(url=url, embedding=models[1], chat=models[CHAT_FORMAT]),
                      soft_wrap=True, highlight=False, markup=False)
        if network != "ethereum:local:test":  # the embedded chain lives in this process only
            console.print(f'verinfer --network {network} --account TEST::4 --marketplace {market_address} '
                          'chat "What is the capital of France?" --reward 0.01 --r 3',
                          soft_wrap=True, highlight=False, markup=False)

    try:
        serve_gateway(client, GatewayConfig(port=port, reward=REWARD), announce=announce)
    finally:
        stop.set()
        stepper.join(timeout=10)


OPENAI_SNIPPET = """# pip install openai; then, while this runs:
from openai import OpenAI
client = OpenAI(base_url="{url}", api_key="none")
reply = client.embeddings.create(model="{embedding}", input=["hello world"])
print(reply.data[0].embedding[:4], reply.data[0].model_extra["verinfer"]["job_id"])
chat = client.chat.completions.create(model="{chat}", messages=[{{"role": "user", "content": "What is the capital of France?"}}])
print(chat.choices[0].message.content, chat.model_extra["verinfer"]["digest"])
# (end of snippet)"""


def one_request_at_a_time(w3) -> None:
    """Serialise every request to the embedded chain: py-evm is not thread-safe, and
    the gateway's threads and the agents' stepping thread share it from here on."""
    provider, lock = w3.provider, threading.Lock()
    unlocked = provider.make_request

    def make_request(method, params):
        with lock:
            return unlocked(method, params)

    provider.make_request = make_request
    provider._request_func_cache = (None, None)  # rebuilt around the locked call


def neighbours_table(texts: dict[int, str], vectors: dict[int, np.ndarray]) -> Table:
    ids = list(texts)
    matrix = np.stack([vectors[j] for j in ids])
    cosine = matrix @ matrix.T
    np.fill_diagonal(cosine, -2)
    table = Table(title="Nearest neighbours of the verified embeddings")
    for column in ("job", "sentence", "nearest", "cosine"):
        table.add_column(column)
    for row, job_id in enumerate(ids):
        best = int(cosine[row].argmax())
        table.add_row(str(job_id), texts[job_id], texts[ids[best]], f"{cosine[row, best]:.3f}")
    return table


def paths_table(client: Client, job_ids: Sequence[int], names: dict[str, str]) -> Table:
    table = Table(title="Each job's path (its events in order)")
    table.add_column("job")
    table.add_column("status")
    table.add_column("path")
    for job_id in job_ids:
        table.add_row(str(job_id), client.job(job_id).status.name.lower(),
                      job_path(client.history(job_id), names))
    return table


def gas_table(steps: dict[str, StepGas]) -> Table:
    table = Table(title="Gas per step (all transactions to the marketplace and token)")
    for column in ("step", "txs", "jobs", "gas", "gas / tx", "gas / job"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for s in sorted(steps.values(), key=lambda s: -s.gas):
        table.add_row(s.function, str(s.txs), str(s.items or ""), f"{s.gas:,}", f"{s.gas // s.txs:,}",
                      f"{s.gas // s.items:,}" if s.items else "")
    return table


def balances_table(names: dict[str, str], before: dict[str, Holdings], after: dict[str, Holdings]) -> Table:
    table = Table(title="Balances after (tokens) and change since before the first job")
    for column in ("account", "wallet", "in market", "stake", "total", "change"):
        table.add_column(column, justify="left" if column == "account" else "right")
    for address, name in names.items():
        a, b = after[address], before[address]
        table.add_row(name, fmt(a.wallet), fmt(a.in_market), fmt(a.stake), fmt(a.total),
                      signed(a.total - b.total))
    return table


@click.command(cls=ConnectedProviderCommand)
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="After the story, keep the marketplace up behind the gateway until Ctrl-C.")
@click.option("--port", type=int, default=8000, show_default=True, help="The gateway's port (0: any free one).")
def cli(provider, serve: bool, port: int) -> None:
    """Run the marketplace demo (default: ape's embedded test chain)."""
    console = Console()
    if not console.is_terminal:  # piped: wide enough for the tables
        console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="verinfer-demo-") as workdir, quiet_ape():
        try:
            run_demo(console, provider.network_choice, Path(workdir), port if serve else None)
        except DemoError as err:
            raise click.ClickException(str(err)) from None
