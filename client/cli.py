"""``verinfer``: the client SDK on the command line.

    verinfer --network ethereum:local:foundry --account TEST::2 models
    verinfer --rpc http://127.0.0.1:8545 --private-key 0x... post --reward 0.001 --r 3 "some text"
    verinfer ... post --reward 0.001 --file sentences.txt --wait
    verinfer ... wait 256 257 --settle ; verinfer ... result 256
    verinfer ... serve --reward 0.01 --port 8000     # the OpenAI API on this account (gateway/)

Amounts are in token units (``0.001``), converted with the payment token's decimals.
Errors print as one line and exit with status 1.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from client.chat import CHAT_FORMAT, MAX_TOKENS
from client.client import Client
from client.errors import VerinferError
from client.events import Event
from client.progress import stage
from client.protocol import redraw_delay
from client.records import Deadlines, JobInfo
from gateway.cli import run_serve, serve_options  # click only: the server loads when it runs

DEFAULT_WINDOWS = Deadlines()


class _Amount(click.ParamType):
    """A non-negative decimal token amount (converted to base units once connected)."""

    name = "amount"

    def convert(self, value, param, ctx) -> Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)
        if not amount.is_finite() or amount < 0:
            self.fail(f"{value!r} is not a non-negative amount", param, ctx)
        return amount


AMOUNT = _Amount()


class _Session:
    """The lazily connected client of one CLI invocation."""

    def __init__(self, ctx: click.Context, options: dict):
        self.ctx, self.options = ctx, options
        self._client: Client | None = None
        self.console = Console()
        if not self.console.is_terminal:  # piped: keep addresses and digests on one line
            self.console = Console(width=200)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self.ctx.with_resource(Client.connect(
                self.options["network"], rpc=self.options["rpc"], account=self.options["account"],
                private_key=self.options["private_key"], marketplace=self.options["marketplace"]))
        return self._client

    def units(self, amount: Decimal) -> int:
        """Token units -> base units of the payment token."""
        base = amount * 10 ** self.client.pay_token().decimals()
        if base != base.to_integral_value():
            raise click.BadParameter(f"{amount} has more decimals than the token")
        return int(base)

    def fmt(self, base_units: int) -> str:
        token = self.client.pay_token()
        value = Decimal(base_units) / 10 ** token.decimals()
        return f"{value.normalize():f} {token.symbol()}"


class _Group(click.Group):
    """Turns SDK errors into one-line messages and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VerinferError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group(cls=_Group)
@click.option("--network", help="ape network choice, e.g. ethereum:local:foundry (default: ape's default).")
@click.option("--rpc", help="JSON-RPC URL instead of an ape network.")
@click.option("--account",
              help="ape account alias or TEST::<n> (keyfiles unlock with APE_ACCOUNTS_<alias>_PASSPHRASE).")
@click.option("--private-key", envvar="VERINFER_PRIVATE_KEY", help="Hex key to sign with [env VERINFER_PRIVATE_KEY].")
@click.option("--marketplace", envvar="VERINFER_MARKETPLACE",
              help="Marketplace address (default: the deployment recorded for the chain).")
@click.pass_context
def main(ctx: click.Context, **options) -> None:
    """Verinfer client: post inference jobs, wait for verified results."""
    ctx.obj = _Session(ctx, options)


pass_session = click.make_pass_decorator(_Session)


def _job_table(session: _Session, infos: dict[int, JobInfo]) -> Table:
    table = Table("job", "stage", "r", "claimed", "committed", "revealed", "reward", "result digest")
    for job_id, info in infos.items():
        digest = "0x" + info.result_digest.hex()[:16] + "..." if info.status.has_result else ""
        table.add_row(str(job_id), stage(info), str(info.r), str(info.nclaimed), str(info.ncommitted),
                      str(info.nrevealed), session.fmt(info.reward), digest)
    return table


def _event_fields(event: Event) -> str:
    parts = []
    for name, value in vars(event).items():
        if name in ("meta", "job_id"):
            continue
        if isinstance(value, bytes):
            value = "0x" + value.hex()[:16] + ("..." if len(value) > 8 else "")
        elif hasattr(value, "name") and not isinstance(value, str):
            value = value.name
        parts.append(f"{name}={value}")
    return " ".join(parts)


# ---------------------------------------------------------------- reading


@main.command()
@pass_session
def models(session: _Session) -> None:
    """Registered models."""
    table = Table("index", "name", "model id", "format", "active")
    for m in session.client.models():
        table.add_row(str(m.index), m.name, "0x" + m.model_id.hex(), str(m.format_version), "yes" if m.active else "no")
    session.console.print(table)


@main.command()
@click.option("--model", "model_id", help="Only providers serving this model id.")
@pass_session
def providers(session: _Session, model_id: str | None) -> None:
    """Registered providers with their asking price and stake, cheapest first."""
    table = Table("provider", "price / seat", "free stake", "locked", "models")
    for p in session.client.providers(model_id):
        table.add_row(p.address, session.fmt(p.price), session.fmt(p.free), session.fmt(p.locked),
                      str(len(p.model_ids)))
    session.console.print(table)


@main.command()
@click.option("--reward", type=AMOUNT, required=True, help="Pay per provider (seat), token units.")
@click.option("--r", "r", type=int, default=1, show_default=True, help="Redundancy: independent providers.")
@click.option("--count", type=int, default=1, show_default=True, help="Number of jobs.")
@click.option("--model", "model_id", help="Model id (default: the only active model).")
@pass_session
def estimate(session: _Session, reward: Decimal, r: int, count: int, model_id: str | None) -> None:
    """Full cost of posting jobs: r x (reward + protocol fee) each, and the providers that
    take that reward (their price, declared on chain, is at most the reward)."""
    e = session.client.estimate(reward=session.units(reward), r=r, count=count, model_id=model_id)
    table = Table("reward / seat", "fee / seat", "per job", "total", "provider collateral / seat",
                  "providers taking it")
    table.add_row(session.fmt(e.reward), session.fmt(e.fee_per_seat), session.fmt(e.per_job),
                  session.fmt(e.total), session.fmt(e.collateral_per_seat), str(e.providers))
    session.console.print(table)
    if not e.enough_providers:
        session.console.print(f"[yellow]only {e.providers} provider(s) take this reward; jobs with "
                              f"r = {r} would wait unclaimed until their claim deadline "
                              "(see `verinfer providers` for their prices)")
    elif r >= 2 and e.taker_share < 1:
        delay = redraw_delay(session.client.params().min_windows.claim)
        session.console.print(f"[yellow]seats are drawn by stake and the providers taking this reward hold "
                              f"{e.taker_share:.0%} of it: a seat drawn to another waits {delay} s for a redraw")


@main.command()
@pass_session
def balance(session: _Session) -> None:
    """Your wallet, deposited balance, stake credits and allowance."""
    b = session.client.balances()
    table = Table("account", "wallet", "deposited", "stake credits", "allowance")
    table.add_row(b.account, session.fmt(b.wallet), session.fmt(b.deposited), session.fmt(b.stake_credits),
                  session.fmt(b.allowance))
    session.console.print(table)


@main.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@pass_session
def status(session: _Session, job_ids: tuple[int, ...]) -> None:
    """Current state of jobs."""
    session.console.print(_job_table(session, {j: session.client.job(j) for j in job_ids}))


@main.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@pass_session
def why(session: _Session, job_ids: tuple[int, ...]) -> None:
    """Why providers don't take jobs: each one's input, reward, collateral and deadline
    against the model's providers, read from the chain."""
    for job_id in job_ids:
        diagnosis = session.client.why(job_id)
        session.console.print(f"job {job_id} ({diagnosis.job.status.name.lower()}, "
                              f"{diagnosis.takers} provider(s) would take its {diagnosis.seats} seat(s))")
        for reason in diagnosis.reasons or ("nothing on chain keeps providers away",):
            session.console.print(f"  - {reason}")


@main.command()
@click.argument("job_id", type=int)
@pass_session
def history(session: _Session, job_id: int) -> None:
    """Every event of a job, in chain order."""
    table = Table("block", "event", "details")
    for event in session.client.history(job_id):
        table.add_row(str(event.meta.block_number), type(event).__name__, _event_fields(event))
    session.console.print(table)


# ---------------------------------------------------------------- posting and results


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.File("rb"),
              help="Post one job per non-empty line of this file ('-': stdin).")
@click.option("--reward", type=AMOUNT, required=True, help="Pay per provider (seat), token units.")
@click.option("--r", "r", type=int, default=1, show_default=True, help="Redundancy: independent providers.")
@click.option("--model", "model_id", help="Model id (default: the only active model).")
@click.option("--claim-window", type=int, default=DEFAULT_WINDOWS.claim, show_default=True, help="Seconds.")
@click.option("--commit-window", type=int, default=DEFAULT_WINDOWS.commit, show_default=True, help="Seconds.")
@click.option("--reveal-window", type=int, default=DEFAULT_WINDOWS.reveal, show_default=True, help="Seconds.")
@click.option("--wait/--no-wait", "wait_", default=False, help="Wait for the results.")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait.")
@pass_session
def post(session: _Session, texts, file, reward, r, model_id, claim_window, commit_window, reveal_window,
         wait_, timeout) -> None:
    """Post TEXTS (and/or the lines of --file) as jobs, batched; prints the job ids."""
    inputs = list(texts) + (_lines(file) if file else [])
    if not inputs:
        raise click.UsageError("nothing to post: give TEXTS or --file")
    ids = session.client.post_texts(inputs, reward=session.units(reward), r=r, model_id=model_id,
                                    deadlines=Deadlines(claim_window, commit_window, reveal_window))
    click.echo(" ".join(map(str, ids)))
    if wait_:
        infos = session.client.wait(ids, timeout=timeout, progress=session.console)
        session.console.print(_job_table(session, infos))


def _lines(file) -> list[str]:
    """The non-empty lines of a file of UTF-8 text (a usage error naming the line if not)."""
    lines = []
    for number, raw in enumerate(file, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise click.BadParameter(f"line {number} is not UTF-8 ({exc.reason} at byte "
                                     f"{exc.start} of the line)", param_hint="--file") from None
        if line.strip():
            lines.append(line)
    return lines


@main.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds.")
@click.option("--until", type=click.Choice(["result", "settled"]), default="result", show_default=True,
              help="result: a result stands (r = 1: delivered); settled: a terminal state.")
@click.option("--settle/--no-settle", default=False, help="Finalize your jobs once due.")
@pass_session
def wait(session: _Session, job_ids, timeout, until, settle) -> None:
    """Wait for jobs with a live progress display."""
    infos = session.client.wait(job_ids, timeout=timeout, until=until, settle=settle, progress=session.console)
    session.console.print(_job_table(session, infos))


@main.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the decoded embedding).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the raw result bytes here.")
@pass_session
def result(session: _Session, job_ids, as_json, out) -> None:
    """Fetch results from the chain, verify them against the settled digest and decode them."""
    results = session.client.results(job_ids)
    if out is not None and len(results) != 1:
        raise click.UsageError("--out takes a single job")
    formats = {m.model_id: m.format_version for m in session.client.models()}
    records = []
    for job_id, r in results.items():
        record = {"job_id": job_id, "status": r.status.name, "final": r.final, "digest": "0x" + r.digest.hex(),
                  "providers": list(r.providers)}
        if formats.get(r.model_id) == CHAT_FORMAT:
            answer = r.answer
            record.update(finish=answer.finish, token_ids=list(answer.ids), text=answer.text)
        else:
            record["embedding"] = [round(float(x), 6) for x in r.embedding]
        records.append(record)
        if out is not None:
            out.write_bytes(r.result)
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False))
        return
    table = Table("job", "verified", "final", "providers", "result")
    for rec in records:
        shown = (repr(rec["text"]) if "text" in rec else
                 "embedding " + ", ".join(f"{x:+.4f}" for x in rec["embedding"][:4]) + " ... (384)")
        table.add_row(str(rec["job_id"]), rec["digest"][:18] + "...", "yes" if rec["final"] else "challengeable",
                      str(len(rec["providers"])), shown)
    session.console.print(table)


@main.command()
@click.argument("prompt")
@click.option("--system", help="A system message before the prompt.")
@click.option("--raw", is_flag=True, help="PROMPT is raw text to continue, not a chat message.")
@click.option("--reward", type=AMOUNT, required=True, help="Pay per provider (seat), token units.")
@click.option("--r", "r", type=int, default=1, show_default=True, help="Redundancy: independent providers.")
@click.option("--max-tokens", type=int, default=64, show_default=True, help=f"New tokens, 1..{MAX_TOKENS}.")
@click.option("--temperature", type=Decimal, default=Decimal(0), show_default=True,
              help="0: greedy; else sampled (replayable from --seed).")
@click.option("--top-k", type=int, default=0, show_default=True, help="0: every token.")
@click.option("--top-p", type=Decimal, default=Decimal(1), show_default=True, help="Nucleus mass, (0, 1].")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (unsigned 64-bit).")
@click.option("--model", "model_id", help="Model id (default: the only active chat model).")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def chat(session: _Session, prompt, system, raw, reward, r, max_tokens, temperature, top_k, top_p, seed,
         model_id, timeout, as_json) -> None:
    """Ask the chat model PROMPT: post one job, wait, verify the answer, print it."""
    if raw and system:
        raise click.UsageError("--system needs a chat message (not --raw)")
    messages = None if raw else [{"role": "system", "content": system}] * bool(system) + [
        {"role": "user", "content": prompt}]
    with session.console.status("posted; waiting for the verified answer"):
        result = session.client.chat(
            messages, prompt=prompt if raw else None, reward=session.units(reward), r=r, max_tokens=max_tokens,
            temperature_milli=_scaled(temperature, 1000, "--temperature"), top_k=top_k,
            top_p_micro=_scaled(top_p, 10**6, "--top-p"), seed=seed, model_id=model_id, timeout=timeout)
    answer = result.answer
    if as_json:
        click.echo(json.dumps({"job_id": result.job_id, "status": result.status.name, "final": result.final,
                               "digest": "0x" + result.digest.hex(), "providers": list(result.providers),
                               "finish": answer.finish, "token_ids": list(answer.ids), "text": answer.text},
                              ensure_ascii=False))
        return
    click.echo(answer.text)
    session.console.print(f"[dim]job {result.job_id} · {answer.finish} · {len(answer.ids)} tokens · verified "
                          f"against 0x{result.digest.hex()[:16]}... · {len(result.providers)} provider(s) · "
                          f"{'final' if result.final else 'challengeable'}[/dim]")


def _scaled(value: Decimal, scale: int, name: str) -> int:
    """A decimal option as the integer the job format takes (exact, or a usage error)."""
    scaled = value * scale
    if scaled != scaled.to_integral_value():
        raise click.BadParameter(f"at most {len(str(scale)) - 1} decimal places", param_hint=name)
    return int(scaled)


# ---------------------------------------------------------------- money and disputes


@main.command()
@click.argument("job_id", type=int)
@pass_session
def cancel(session: _Session, job_id: int) -> None:
    """Cancel your job while no seat is taken (full refund to your deposited balance)."""
    event = session.client.cancel(job_id)
    click.echo(f"cancelled {job_id}: refunded {session.fmt(event.client_refund)} to your balance")


@main.command()
@click.argument("job_ids", nargs=-1, type=int, required=True)
@click.option("--withdraw", "and_withdraw", is_flag=True, help="Then withdraw everything credited to you.")
@pass_session
def refund(session: _Session, job_ids, and_withdraw: bool) -> None:
    """Settle due jobs (expired, claimed and not delivered, unresolved, slashed) so their refunds are credited."""
    settled = session.client.finalize(job_ids)
    for event in settled:
        click.echo(f"job {event.job_id}: {event.status.name}, refund {session.fmt(event.client_refund)}")
    if not settled:
        click.echo("nothing due yet")
    if and_withdraw:
        _withdraw(session)


@main.command()
@click.argument("job_id", type=int)
@pass_session
def challenge(session: _Session, job_id: int) -> None:
    """Challenge a delivered r = 1 result (bonds 4 x reward; re-executed by 3 providers drawn by stake)."""
    event = session.client.challenge(job_id)
    click.echo(f"challenged {job_id}: bond {session.fmt(event.bond)}, re-execution reveals by {event.reveal_deadline}")


@main.command()
@click.argument("amount", type=AMOUNT)
@pass_session
def deposit(session: _Session, amount: Decimal) -> None:
    """Pre-fund your marketplace balance (posting then needs no token transfer)."""
    session.client.deposit(session.units(amount))
    click.echo(f"deposited {session.fmt(session.units(amount))}")


@main.command()
@pass_session
def withdraw(session: _Session) -> None:
    """Withdraw your balance and stake credits (refunds, compensation, pay)."""
    _withdraw(session)


def _withdraw(session: _Session) -> None:
    event = session.client.withdraw()
    click.echo(f"withdrew {session.fmt(event.pay_amount)} and {event.stake_amount} stake-token units")


@main.command()
@serve_options
@pass_session
def serve(session: _Session, **options) -> None:
    """Serve the OpenAI API (GET /v1/models, POST /v1/embeddings) for this account: requests
    become jobs, answers are verified results (Ctrl-C stops)."""
    run_serve(session.options, **options)


if __name__ == "__main__":
    main()
