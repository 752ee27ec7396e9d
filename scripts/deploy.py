"""Deploy the Verinfer marketplace and register the served models.

    ape run deploy --network ethereum:local:foundry --account TEST::0
    ape run deploy --network <public> --account <alias> --token 0x... [--stake-token 0x...]

On local networks a TestToken is deployed for payment and stake unless --token is
given. The model entries come from the engines: MiniLM embeddings (`provider.engine`)
and the chat LLM (`provider.llm`, format `client.chat.CHAT_FORMAT`); pass --model-id to
register another id instead. The least bonded stake that makes a
provider drawable for seats (`min_draw_stake`) is set in whole stake tokens,
--min-draw-stake (default 1 token, whatever the token's decimals: the contract's own
default, 10**18 units, is one token of an 18-decimal token only). The address is
recorded where the SDK finds it (`client.deployments`, `$VERINFER_HOME/deployments.json`).

In process (tests, the demo):

    from scripts.deploy import deploy
    deployed = deploy(account)          # Deployed(marketplace, pay_token, stake_token, models, record)
"""


from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

import click
from ape import chain, networks, project
from ape.cli import ConnectedProviderCommand, account_option

from client.protocol import MAX_MIN_DRAW_STAKE


class DeployError(RuntimeError):
    """The deployment cannot proceed as asked."""


@dataclass(frozen=True)
class ModelEntry:
    """What the owner registers for one model."""

    model_id: bytes
    name: str
    weights_digest: bytes
    format_version: int

    def __post_init__(self) -> None:
        if len(self.model_id) != 32 or len(self.weights_digest) != 32:
            raise DeployError("model_id and weights_digest must be 32 bytes")
        if not self.name or len(self.name) > 64:
            raise DeployError("model name must be 1..64 characters")
        if not 0 <= self.format_version < 2**16:
            raise DeployError("format_version must fit in 16 bits")


@dataclass(frozen=True)
class Deployed:
    """Contracts of one deployment (ape ContractInstances) and where it was recorded."""

    marketplace: object
    pay_token: object
    stake_token: object
    models: tuple[ModelEntry, ...] = field(default=())
    record: Path | None = None
    min_draw_stake: int = 10**18  # stake-token base units


def engine_models() -> list[ModelEntry]:
    """The entries of the models our engines reproduce: MiniLM embeddings and the chat
    LLM (loads both on the CPU without their self-tests: about 8 s)."""
    from provider.engine import Engine
    from provider.llm import LLMEngine

    infos = [Engine.load("cpu").model_info, LLMEngine.load(self_test=False, backend="cpu").model_info]
    return [ModelEntry(bytes(i.model_id), i.name, bytes(i.weights_digest), int(i.format_version)) for i in infos]


def is_local_network() -> bool:
    return networks.provider.network.name == "local"


def deploy(
    account,
    models: Iterable[ModelEntry] | None = None,
    *,
    pay_token: str | None = None,
    stake_token: str | None = None,
    treasury: str | None = None,
    record: bool = True,
    min_draw_stake: Decimal | int | str = 1,
) -> Deployed:
    """Deploy the marketplace from `account` on the connected network.

    models: entries to register (default: the engine's model). pay_token: ERC-20
    address, required off local networks (a TestToken is deployed otherwise);
    stake_token defaults to pay_token; treasury defaults to `account`.
    min_draw_stake: whole stake tokens (scaled by the token's decimals) a provider must
    bond to be drawn for seats; set only where it differs from the contract's default.
    """
    models = tuple(engine_models() if models is None else models)
    if pay_token is None:
        if not is_local_network():
            raise DeployError("--token is required on non-local networks (TestToken is for local networks only)")
        pay = account.deploy(project.TestToken, "Verinfer Test", "VIT")
    else:
        pay = pay_token
    stake = pay if stake_token is None else stake_token
    market = account.deploy(project.Marketplace, pay, stake, treasury or account)
    for entry in models:
        market.register_model(entry.model_id, entry.name, entry.weights_digest, entry.format_version, sender=account)
    units = draw_stake_units(min_draw_stake, _decimals(stake))
    if units != market.min_draw_stake():
        market.set_min_draw_stake(units, sender=account)
    path = _record(market, models) if record else None
    return Deployed(market, pay, stake, models, path, units)


def draw_stake_units(tokens: Decimal | int | str, decimals: int) -> int:
    """Whole stake tokens -> base units (`DeployError` if negative, too precise or out of range).

    >>> draw_stake_units("1", 6), draw_stake_units("0.5", 18)
    (1000000, 500000000000000000)
    """
    try:
        amount = Decimal(str(tokens))
    except InvalidOperation:
        raise DeployError(f"min draw stake {tokens!r} is not a number") from None
    units = amount * 10**decimals
    if not amount.is_finite() or amount < 0 or units != units.to_integral_value():
        raise DeployError(f"min draw stake {tokens} is not a non-negative amount of a {decimals}-decimal token")
    if units > MAX_MIN_DRAW_STAKE:
        raise DeployError(f"min draw stake {tokens} tokens exceeds the contract's bound")
    return int(units)


def _decimals(token) -> int:
    from client.marketplace import Token

    address = getattr(token, "address", token)
    return Token(networks.provider.web3, address).decimals()


def _record(market, models: tuple[ModelEntry, ...]) -> Path:
    from client.deployments import Deployment, record_deployment

    receipt = chain.provider.get_receipt(market.txn_hash)
    network = networks.provider.network
    return record_deployment(
        Deployment(
            chain_id=chain.chain_id,
            marketplace=market.address,
            block=receipt.block_number,
            network=f"{network.ecosystem.name}:{network.name}:{networks.provider.name}",
            model_ids=tuple("0x" + m.model_id.hex() for m in models),
        )
    )


def _bytes32(value: str | None, what: str) -> bytes | None:
    if value is None:
        return None
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise click.BadParameter(f"{what} must be 32 bytes of hex")
    return raw


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--token", "pay_token", help="Payment ERC-20 (required off local networks).")
@click.option("--stake-token", help="Stake ERC-20 (default: the payment token).")
@click.option("--treasury", help="Fee recipient (default: the deployer).")
@click.option("--model-id", help="Register this model id (hex bytes32) instead of the engines'.")
@click.option("--model-name", default="all-MiniLM-L6-v2", show_default=True)
@click.option("--weights-digest", help="Weights digest (hex bytes32) for --model-id.")
@click.option("--format-version", default=1, show_default=True, type=int)
@click.option("--min-draw-stake", default="1", show_default=True,
              help="Least bonded stake, in whole stake tokens, that makes a provider drawable for seats.")
def cli(account, pay_token, stake_token, treasury, model_id, model_name, weights_digest, format_version,
        min_draw_stake):
    """Deploy the marketplace, register the model(s) and record the address."""
    models = None
    if model_id is not None:
        digest = _bytes32(weights_digest, "--weights-digest") or bytes(32)
        models = [ModelEntry(_bytes32(model_id, "--model-id"), model_name, digest, format_version)]
    try:
        deployed = deploy(account, models, pay_token=pay_token, stake_token=stake_token, treasury=treasury,
                          min_draw_stake=min_draw_stake)
    except DeployError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"Marketplace  {deployed.marketplace.address}")
    click.echo(f"Pay token    {getattr(deployed.pay_token, 'address', deployed.pay_token)}")
    click.echo(f"Stake token  {getattr(deployed.stake_token, 'address', deployed.stake_token)}")
    click.echo(f"Draw stake   {min_draw_stake} token(s) = {deployed.min_draw_stake} units bonded to be drawn")
    for entry in deployed.models:
        click.echo(f"Model        {entry.name} 0x{entry.model_id.hex()}")
    click.echo(f"Recorded in  {deployed.record}")
