"""Run a provider agent through ape: `ape run provider`.

    ape run provider --network ethereum:local:foundry --account TEST::1 --config agent.toml
    ape run provider --network <public network> --account my-provider --config agent.toml

The same agent as `python -m provider.agent --config ...` (see provider/agent/), with
the network and the signing account taken from ape's options instead of the config
file: ape's connected provider is the agent's RPC endpoint, and the account's key
signs locally (keyfile accounts unlock with APE_ACCOUNTS_<alias>_PASSPHRASE). Runs
until SIGINT / SIGTERM (exit 0); exit 1 if a service crashed, 2 for a config error.
"""

import sys
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option

from client.errors import VerinferError


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="VERINFER_CONFIG", help="Agent TOML config (provider/agent/sample-config.toml).")
@click.option("--no-dashboard", is_flag=True, help="Log to the terminal instead of the dashboard.")
def cli(provider, account, config_path, no_dashboard) -> None:
    """Run a Verinfer provider agent on the connected network until SIGINT / SIGTERM."""
    from client.transport import ape_local_account
    from provider.agent.config import load_config
    from provider.agent.logs import configure_logging
    from provider.agent.main import build_agent, locate_marketplace, preflight
    from provider.engine import Engine, EngineError

    try:
        config = load_config(config_path).model_copy(update={
            "network": provider.network_choice, "account": account.alias or account.address,
            **({"dashboard": False} if no_dashboard else {}),
        })
        configure_logging(config.log.level, config.log.format)
        signer = ape_local_account(account)
        engine = Engine.load(self_test=False)  # build_agent runs it
        w3 = provider.web3
        marketplace, start_block = locate_marketplace(config, w3.eth.chain_id)
        preflight(config, w3, marketplace, signer.address)
        agent = build_agent(config, w3, signer, marketplace=marketplace, start_block=start_block,
                            engines={engine.model_id: engine})
    except (VerinferError, EngineError) as err:
        for line in str(err).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
    click.echo(f"provider {signer.address} serving {engine.model_info.name} on "
               f"{provider.network_choice}, marketplace {marketplace}", err=True)
    sys.exit(agent.runner().run())
