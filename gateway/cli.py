"""Commands: ``python -m gateway serve ...`` / ``verinfer serve ...`` and ``python -m gateway keys ...``.

    python -m gateway keys add --file keys.json --name app --limit 5    # prints the key once
    verinfer --rpc http://127.0.0.1:8545 --private-key 0x... serve --reward 0.01 --keys keys.json
    python -m gateway serve --rpc ... --private-key ... --reward 0.01 --port 8000

Amounts are in token units (``0.01``), converted with the payment token's decimals.
This module loads only click at import: ``verinfer``'s other commands stay fast.
"""
from __future__ import annotations

import functools
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click


def _amount(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise click.BadParameter(f"{value!r} is not a non-negative amount")
    return amount


def _units(amount: Decimal, decimals: int) -> int:
    base = amount * 10**decimals
    if base != base.to_integral_value():
        raise click.BadParameter(f"{amount} has more decimals than the token ({decimals})")
    return int(base)


def serve_options(fn):
    """The gateway's own options (the connection options are the caller's)."""
    options = [
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address to listen on; anything but loopback needs --keys."),
        click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free one)."),
        click.option("--keys", "keys_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="API keys file (python -m gateway keys add): every request then needs a key."),
        click.option("--reward", required=True, help="Default reward per seat, in token units (e.g. 0.01)."),
        click.option("--r", "r", default=1, show_default=True, type=int, help="Default replication."),
        click.option("--until", type=click.Choice(["result", "settled"]), default="result", show_default=True,
                     help="Answer once a result stands, or once its jobs are settled."),
        click.option("--batch-window", default=0.05, show_default=True, type=float,
                     help="Seconds requests wait to share a post with others."),
        click.option("--timeout", "wait_timeout", default=300.0, show_default=True, type=float,
                     help="Seconds a request waits for its results (then 504 with its job ids)."),
        click.option("--explorer/--no-explorer", default=True, show_default=True,
                     help="Serve the marketplace explorer page at / (public chain data: no API key needed)."),
        click.option("--audit", "audit_fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1),
                     help="Share of r = 1 answers re-executed on the gateway's own engine; a mismatch is "
                          "challenged with the bond (a request may set its own: verinfer.audit)."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Where the audit log is kept [default: $VERINFER_HOME/gateway]."),
        click.option("--deposit", help="Top the account's marketplace balance up to this (token units) at "
                                        "start, so posts need no token approvals."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), fn)


def run_serve(connection: dict, *, host: str, port: int, keys_path: Path | None, reward: str, r: int,
              until: str, batch_window: float, wait_timeout: float, deposit: str | None,
              explorer: bool, audit_fraction: float, data_dir: Path | None) -> None:
    """Connect as ``connection`` says (network, rpc, account, private_key, marketplace) and
    serve until interrupted."""
    from pydantic import ValidationError

    from client import Client
    from client.errors import VerinferError
    from gateway.config import GatewayConfig
    from gateway.keys import KeyStore
    from gateway.server import serve

    # Before connecting: a gateway open to the network without keys must not start at all.
    if keys_path is None and not GatewayConfig(host=host, reward=1, keys_path=Path("-")).loopback:
        raise click.ClickException(f"listening on {host} (not loopback) needs API keys: give --keys")
    try:
        client = Client.connect(connection.get("network"), rpc=connection.get("rpc"),
                                account=connection.get("account"), private_key=connection.get("private_key"),
                                marketplace=connection.get("marketplace"), poll_interval=0.2)
    except VerinferError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    with client:
        if client.signer is None:
            raise click.ClickException("the gateway posts jobs: give --account or --private-key")
        decimals = client.pay_token().decimals()
        try:
            config = GatewayConfig(host=host, port=port, keys_path=keys_path, r=r, until=until,
                                   reward=_units(_amount(reward), decimals), batch_window=batch_window,
                                   wait_timeout=wait_timeout, explorer=explorer, audit_fraction=audit_fraction,
                                   **({} if data_dir is None else {"data_dir": data_dir}))
        except ValidationError as exc:
            raise click.ClickException(f"gateway settings: {exc.errors()[0]['msg']}") from None
        keys = KeyStore(keys_path) if keys_path is not None else None
        if deposit is not None:
            want = _units(_amount(deposit), decimals)
            have = client.balances().deposited
            if want > have:
                client.deposit(want - have)
        serve(client, config, keys)


@click.group()
def main() -> None:
    """Verinfer gateway: the OpenAI HTTP API on the marketplace."""


@main.command("serve")
@click.option("--network", help="ape network choice, e.g. ethereum:local:foundry.")
@click.option("--rpc", help="JSON-RPC URL instead of an ape network.")
@click.option("--account", help="ape account alias or TEST::<n>.")
@click.option("--private-key", envvar="VERINFER_PRIVATE_KEY", help="Hex key to sign with [env VERINFER_PRIVATE_KEY].")
@click.option("--marketplace", envvar="VERINFER_MARKETPLACE", help="Marketplace address (default: the recorded one).")
@serve_options
def serve_command(network, rpc, account, private_key, marketplace, **options) -> None:
    """Serve the OpenAI API for this account's jobs."""
    run_serve({"network": network, "rpc": rpc, "account": account, "private_key": private_key,
               "marketplace": marketplace}, **options)


@main.group()
def keys() -> None:
    """Manage API keys (stored hashed in a JSON file)."""


_file = click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="The keys file (created if missing).")


@keys.command("add")
@_file
@click.option("--name", required=True, help="Who the key is for.")
@click.option("--limit", help="Spending limit in token units (default: none).")
@click.option("--decimals", default=18, show_default=True, type=int, help="The payment token's decimals.")
@click.option("--r", "r", type=int, help="Default replication for this key's requests.")
@click.option("--reward", help="Default reward per seat for this key's requests, in token units.")
@click.option("--until", type=click.Choice(["result", "settled"]), help="Default wait for this key's requests.")
def keys_add(path: Path, name: str, limit: str | None, decimals: int, r: int | None, reward: str | None,
             until: str | None) -> None:
    """Create a key; prints its secret once (only its hash is kept)."""
    from gateway.keys import KeyPolicy, KeyStore

    limit_units = None if limit is None else _units(_amount(limit), decimals)
    policy = KeyPolicy(r=r, reward=None if reward is None else _units(_amount(reward), decimals), until=until)
    record, secret = KeyStore(path).create(name, spend_limit=limit_units, policy=policy)
    click.echo(f"{record.id} {secret}")


@keys.command("list")
@_file
def keys_list(path: Path) -> None:
    """The keys (never their secrets) as JSON lines."""
    from gateway.keys import KeyStore

    for record in KeyStore(path).records():
        click.echo(json.dumps(record.public()))


@keys.command("revoke")
@_file
@click.argument("key_id")
def keys_revoke(path: Path, key_id: str) -> None:
    """Revoke a key by its id (key_...)."""
    from gateway.keys import KeyStore

    try:
        KeyStore(path).revoke(key_id)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
