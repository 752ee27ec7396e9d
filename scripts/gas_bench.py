"""Gas per step and per job lifecycle, measured from receipts on a real node.

    ape run gas_bench --network ethereum:local:foundry

r = 1 (post, claim, deliver from a later block; the pay settles lazily, collected
by the provider's next withdraw) and r = 3 (post, draw (the first claim after the
post draws every seat; here a keeper's), claims by the drawn providers, commit,
reveal, finalize), one job per
transaction and BATCH jobs per transaction, with realistic payloads: a 61-byte
sentence in, a 385-byte embedding out (the engine's result format); then the same for
chat jobs (client/chat.py) answering 64 and 256 tokens of English (ids and text: 256
tokens are past MAX_RESULT, so that answer is cut to 1,024 bytes, the longest). Measured in
the steady state of a running market: clients pre-deposited (posting moves no
tokens), the accounts already hold balances and provider 0 has an open payout
bucket, so no measured step pays for a never-touched storage slot other than the
job's own. Prints a rich table with the lifecycle totals against the targets.
"""

import os

import click
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand
from eth_abi import encode
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

from client.chat import ChatRequest
from client.encoding import EMBEDDING_SIZE
from client.protocol import MAX_RESULT
from scripts._quiet import quiet_ape

BATCH = 32
TARGET_SINGLE = 250_000
TARGET_BATCHED = 120_000
WINDOW = 600
REWARD = 10**18
MODEL_ID = keccak(text="gas-bench-model")
SENTENCE = b"A quick brown fox jumps over the lazy dog near the riverbank."
CHAT = ChatRequest(messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                   max_tokens=510).encode()


class Payload:
    """A job's input and its result bytes (distinct per job: nothing repeats in storage)."""

    def __init__(self, name: str, job_input: bytes, result_size: int, format_byte: int):
        self.name, self.input, self.result_size, self.format_byte = name, job_input, result_size, format_byte

    def result(self, i: int) -> bytes:
        body = keccak(i.to_bytes(32, "big")) * (self.result_size // 32 + 1)
        return bytes([self.format_byte]) + body[:self.result_size - 1]


def chat_result_size(tokens: int) -> int:
    """Result bytes of a chat answer of ``tokens`` tokens of English: a 4-byte header, 2
    bytes an id and 4.6 bytes of text a token (SmolLM2's tokenizer on tests/data/
    llm_text.txt), cut at MAX_RESULT."""
    return min(4 + tokens * 2 + round(tokens * 4.7), MAX_RESULT)


EMBEDDING = Payload("embedding", SENTENCE, EMBEDDING_SIZE, 1)
CHATS = [Payload(f"chat, {n}-token answer", CHAT, chat_result_size(n), 2) for n in (64, 256)]


def _seal(job_id: int, provider, result: bytes, salt: bytes) -> bytes:
    return keccak(encode(["uint256", "address", "bytes32", "bytes32"], [job_id, provider.address, keccak(result), salt]))


def _gas(tx) -> int:
    return tx.gas_used


class Bench:
    """Runs the flows on a fresh deployment and collects gas per step."""

    def __init__(self, owner, client, providers, keeper, payload: Payload):
        # Imported here: `ape run` runs scripts/deploy.py as a script of its own, and a
        # module-level import would load it first (runpy warns about that).
        from scripts.deploy import ModelEntry, deploy

        self.owner, self.client, self.providers, self.keeper = owner, client, providers, keeper
        self.payload = payload
        model = ModelEntry(MODEL_ID, "gas-bench", keccak(text="weights"), 1)
        deployed = deploy(owner, [model], record=False)
        self.market, token = deployed.marketplace, deployed.pay_token
        for acct in [client, *providers]:
            token.mint(acct, 10**30, sender=acct)
            token.approve(self.market, 2**256 - 1, sender=acct)
        self.market.deposit(10**28, sender=client)
        for p in providers:
            self.market.register([MODEL_ID], 0, sender=p)
            self.market.stake(10**27, sender=p)
        # Steady state of a running market: the counters exist, providers and the
        # treasury hold balances, provider 0 has an open payout bucket.
        self.r1(1)
        self.r3(1)

    def _post(self, r: int, n: int):
        inputs = [self.payload.input] * n
        if n == 1:
            tx = self.market.post_job(MODEL_ID, inputs[0], r, REWARD, WINDOW, WINDOW, WINDOW, sender=self.client)
        else:
            tx = self.market.post_jobs(MODEL_ID, inputs, r, REWARD, WINDOW, WINDOW, WINDOW, sender=self.client)
        ids = [log.job_id for log in tx.events if log.event_name == "JobPosted"]
        return ids, _gas(tx)

    def _after(self, seconds: int):
        chain.pending_timestamp += seconds
        chain.mine()

    def r1(self, n: int) -> dict[str, int]:
        """Gas per step for n r=1 jobs in one transaction per step (n == 1: single calls)."""
        ids, post = self._post(1, n)
        p = self.providers[0]
        results = [self.payload.result(i) for i in ids]
        if n == 1:
            claim = _gas(self.market.claim(ids[0], sender=p))
            deliver = _gas(self.market.deliver(ids[0], results[0], sender=p))
        else:
            claim = _gas(self.market.claim_many(ids, sender=p))
            deliver = _gas(self.market.deliver_many(ids, results, sender=p))
        # No finalize: the pay settles lazily into the provider's payout bucket.
        return {"post": post, "claim": claim, "deliver": deliver}

    def r3(self, n: int) -> dict[str, int]:
        ids, post = self._post(3, n)
        salt = b"\x07" * 32
        steps = {"post": post, "draw": _gas(self.market.claim_many(ids, sender=self.keeper)),
                 "claim": 0, "commit": 0, "reveal": 0}
        # Each drawn provider takes its seats (several in a job, when drawn so) in one call.
        held = {p: [j for j in ids if any(self.market.seat(j, s).provider == p.address for s in range(3))]
                for p in self.providers}
        held = {p: jobs for p, jobs in held.items() if jobs}
        for p, jobs in held.items():
            tx = self.market.claim(jobs[0], sender=p) if n == 1 else self.market.claim_many(jobs, sender=p)
            steps["claim"] += _gas(tx)
        results = {j: self.payload.result(j) for j in ids}
        for p, jobs in held.items():
            seals = [_seal(j, p, results[j], salt) for j in jobs]
            if n == 1:
                tx = self.market.commit(jobs[0], seals[0], sender=p)
            else:
                tx = self.market.commit_many(jobs, seals, sender=p)
            steps["commit"] += _gas(tx)
        for p, jobs in held.items():
            if n == 1:
                tx = self.market.reveal(jobs[0], results[jobs[0]], salt, sender=p)
            else:
                tx = self.market.reveal_many(jobs, [results[j] for j in jobs], [salt] * len(jobs), sender=p)
            steps["reveal"] += _gas(tx)
        tx = self.market.finalize(ids[0], sender=self.keeper) if n == 1 else self.market.finalize_many(ids, sender=self.keeper)
        steps["finalize"] = _gas(tx)
        return steps

    def withdraw(self) -> int:
        return _gas(self.market.withdraw(sender=self.providers[0]))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(payload: Payload, r1_single, r1_batch, r3_single, r3_batch, withdraw: int) -> Table:
    table = Table(title=f"Verinfer gas, {payload.name} jobs, on {chain.provider.name} (chain {chain.chain_id}); "
                        f"batched = {BATCH} jobs per tx, per job")
    table.add_column("step")
    for col in ("r=1 single", "r=1 batched/job", "r=3 single", "r=3 batched/job"):
        table.add_column(col, justify="right")
    steps = ["post", "draw", "claim", "deliver", "commit", "reveal", "finalize"]
    for step in steps:
        row = [r1_single.get(step), r1_batch.get(step), r3_single.get(step), r3_batch.get(step)]
        row = [v if v is None else v / d for v, d in zip(row, (1, BATCH, 1, BATCH))]
        table.add_row(step + (" (3 seats)" if step in ("commit", "reveal") else ""), *map(_fmt, row))
    totals = [sum(r1_single.values()), sum(r1_batch.values()) / BATCH, sum(r3_single.values()), sum(r3_batch.values()) / BATCH]
    table.add_row("[bold]lifecycle[/bold]", *(f"[bold]{_fmt(t)}[/bold]" for t in totals))
    targets = [TARGET_SINGLE, TARGET_BATCHED, None, None]
    table.add_row("target", *(_fmt(t) for t in targets))
    table.add_row(
        "ratio to target",
        *("-" if t is None else f"{v / t:.2f} ({'met' if v <= t else 'MISSED'})" for v, t in zip(totals, targets)),
    )
    table.caption = (
        f"withdraw (releases matured r=1 payouts and collects every credit at once): {withdraw:,} gas, "
        "amortised over all of a provider's jobs. "
        f"Payload: {len(payload.input)}-byte input, {payload.result_size}-byte result."
    )
    return table


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Print the gas table (run it on anvil: --network ethereum:local:foundry)."""
    accts = accounts.test_accounts
    console = Console(width=int(os.environ.get("COLUMNS", 120)))
    for payload in (EMBEDDING, *CHATS):
        with quiet_ape():
            bench = Bench(accts[0], accts[1], list(accts[2:5]), accts[5], payload)
            r1_single, r1_batch = bench.r1(1), bench.r1(BATCH)
            r3_single, r3_batch = bench.r3(1), bench.r3(BATCH)
            withdraw = bench.withdraw()
        console.print(render(payload, r1_single, r1_batch, r3_single, r3_batch, withdraw))
