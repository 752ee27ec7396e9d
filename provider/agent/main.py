"""Assemble and run a provider agent: `python -m provider.agent --config agent.toml`.

`build_agent` wires the parts for any Web3 (an RPC endpoint, or ape's provider, e.g.
the embedded test chain of the demo); `cli` adds config loading, logging, the network
connection, the signing account and the engine, then runs the services until
SIGINT/SIGTERM (exit 0) or a crash (exit 1).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount
from web3 import Web3

from client.accounts import load_account
from client.errors import ConfigError, VerinferError
from client.marketplace import Marketplace
from client.transport import http_web3
from provider.agent.config import AgentConfig, load_config
from provider.agent.dashboard import Dashboard, snapshot_from_store
from provider.agent.doctor import Check, run_checks
from provider.agent.errors import PreflightError
from provider.agent.jobs import RECEIPT_STEPS, JobBook, JobRunner, JobWorker, MarketplaceLogs
from provider.agent.logs import configure_logging
from provider.agent.metrics import Metrics, MetricsServer, watch_store
from provider.agent.service import Runner, Service
from provider.agent.store import Store
from provider.agent.txmanager import TxManager
from provider.agent.watcher import Watcher
from provider.engine.errors import EngineError
from provider.runners import load_runners

log = logging.getLogger("verinfer.agent")


@dataclass
class Agent:
    """The parts of one running agent; `runner.run()` runs them (blocking)."""

    store: Store
    txm: TxManager
    worker: JobWorker
    metrics: Metrics
    services: list[Service]

    def runner(self) -> Runner:
        return Runner(self.services)

    def step(self) -> None:
        """One turn of the services without their threads, for a caller that drives the
        agent itself (the embedded chain lives in the caller's process and only moves
        when someone acts on it): worker ticks (events first, then jobs forward; again
        at once while the events are behind or the engine has a backlog, as its thread
        does), then track transactions. The tx manager and the worker must have been set
        up."""
        while self.worker.tick():
            pass
        self.txm.poll()


def build_agent(
    config: AgentConfig,
    w3: Web3,
    signer: LocalAccount,
    *,
    marketplace: str,
    start_block: int,
    engines: Mapping[bytes, JobRunner],
    result_hook: Callable[[int, bytes], bytes] | None = None,
) -> Agent:
    """Wire store, tx manager, job worker (its first phase the watcher), metrics endpoint
    and dashboard: the tx manager and the worker are the threads that write the store.

    Each engine runs its self-test first: an engine that doesn't compute the pinned bytes
    on this host raises ``SelfTestError`` before anything is registered or claimed.
    """
    missing = [m.hex() for m in config.model_ids if m not in engines]
    if missing:
        raise ConfigError(f"no engine reproduces model(s) {missing}; served: "
                          f"{[m.hex() for m in engines]}")
    engines = {m: engines[m] for m in config.model_ids}
    for engine in engines.values():
        engine.self_test()
    store = Store(config.db_path)
    store.bind_chain(w3.eth.chain_id, w3.eth.get_block(0)["hash"], marketplace, start_block)
    metrics = Metrics()
    watch_store(metrics, store)
    market = Marketplace(w3, marketplace)
    txm = TxManager(w3, signer, store, config.tx, metrics=metrics,
                    reorg_window=config.watcher.reorg_window, receipt_logs=RECEIPT_STEPS)
    watcher = Watcher(
        w3, store, MarketplaceLogs(market), JobBook(store, signer.address, engines),
        config.watcher, addresses=[market.address], start_block=start_block, metrics=metrics,
    )
    worker = JobWorker(
        w3=w3, store=store, txm=txm, market=market, watcher=watcher, engines=engines,
        policy=config.policy,
        claim_batch=config.claim_batch, engine_batch=config.engine_batch,
        poll_interval=min(config.watcher.poll_interval, 0.5), metrics=metrics,
        result_hook=result_hook, start_block=start_block, reorg_window=config.watcher.reorg_window,
    )
    # Set up in this order (the worker registers through the tx manager), stopped in reverse.
    services: list[Service] = [txm, worker]
    if config.metrics.enabled:
        services.append(MetricsServer(metrics, config.metrics.host, config.metrics.port))
    if config.dashboard:
        services.append(Dashboard(lambda: snapshot_from_store(
            store, address=signer.address, network=config.network,
            head_block=worker.head_block, stake_free=worker.stake_free)))
    return Agent(store, txm, worker, metrics, services)


def _check_reachable(config: AgentConfig) -> None:
    if config.rpc_url is None and config.network.split(":")[2:] == ["test"]:
        raise ConfigError("ape's embedded test chain lives inside one process: run agents "
                          "there with build_agent (as the demo does), or use anvil "
                          "(ethereum:local:foundry) or an rpc_url")


@contextlib.contextmanager
def _web3(config: AgentConfig) -> Iterator[Web3]:
    """The configured RPC endpoint, or the ape network's provider while connected."""
    if config.rpc_url is not None:
        yield http_web3(config.rpc_url)
        return
    import ape

    with ape.networks.parse_network_choice(config.network) as provider:
        yield provider.web3


def locate_marketplace(config: AgentConfig, chain_id: int) -> tuple[str, int]:
    """The marketplace address (the config's, else the deployment recorded for
    `chain_id`) and the block to start watching from; ConfigError if there is none."""
    from client.deployments import load_deployment
    from client.errors import DeploymentNotFound

    try:
        deployment = load_deployment(chain_id)
    except DeploymentNotFound:
        deployment = None
    address = config.marketplace_address
    if address is None:
        if deployment is None:
            raise ConfigError(f"no marketplace recorded for chain {chain_id}: deploy first "
                              "(ape run deploy) or set `marketplace` in the config")
        address = deployment.marketplace
    start = config.watcher.start_block
    if start is None:
        start = deployment.block if deployment and deployment.marketplace == address else 0
    return address, start


def _connected(config_path: Path | None, **overrides: Any):
    """Config, signer and engine-independent setup shared by the agent and `doctor`."""
    config = load_config(config_path, **overrides)
    configure_logging(config.log.level, config.log.format)
    _check_reachable(config)
    return config, load_account(config.account)


def preflight(config: AgentConfig, w3: Web3, marketplace: str, address: str) -> None:
    """Raise ``PreflightError`` (a line per problem) unless every start-up check passes."""
    problems = [c.problem for c in run_checks(config, w3, marketplace, address) if c.problem]
    if problems:
        raise PreflightError("\n".join(problems))


def _setup_options(command: Callable) -> Callable:
    """The config file, and the settings an operator most often gives per run (the network,
    the account) over the file's: the agent and `doctor` take the same."""
    for option in reversed((
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     envvar="VERINFER_CONFIG",
                     help="TOML config (see provider/agent/sample-config.toml)"),
        click.option("--network", help="ape network choice, e.g. ethereum:local:foundry "
                                       "(over the config's `network`)"),
        click.option("--rpc-url", help="RPC endpoint (over the config's `rpc_url`)"),
        click.option("--account", help="ape account alias or TEST::n (over the config's `account`)"),
    )):
        command = option(command)
    return command


@click.group(invoke_without_command=True)
@_setup_options
@click.option("--no-dashboard", is_flag=True, help="Log to the terminal instead of the dashboard")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, no_dashboard: bool, **overrides: str | None) -> None:
    """Run a Verinfer provider agent until SIGINT / SIGTERM (`doctor`: only check the setup)."""
    if ctx.invoked_subcommand is not None:
        return
    with _errors_reported():
        config, signer = _connected(config_path, dashboard=False if no_dashboard else None, **overrides)
        engines = load_runners(config.model_ids)  # build_agent runs their self-tests
        with _web3(config) as w3:
            marketplace, start_block = locate_marketplace(config, w3.eth.chain_id)
            preflight(config, w3, marketplace, signer.address)
            agent = build_agent(config, w3, signer, marketplace=marketplace,
                                start_block=start_block, engines=engines)
            log.info("agent starting", extra={
                "address": signer.address, "network": config.network,
                "marketplace": marketplace, "start_block": start_block})
            code = agent.runner().run()
    sys.exit(code)


@cli.command()
@_setup_options
def doctor(config_path: Path | None, **overrides: str | None) -> None:
    """Check the setup an agent needs (chain, blocks, gas funds, stake, models), the
    engine's self-test included; print each result; exit 1 if one fails."""
    with _errors_reported():
        config, signer = _connected(config_path, dashboard=False, **overrides)
        engines = load_runners(config.model_ids)
        with _web3(config) as w3:
            marketplace, _ = locate_marketplace(config, w3.eth.chain_id)
            checks = run_checks(config, w3, marketplace, signer.address)
        for model_id in config.model_ids:
            name = f"engine 0x{model_id.hex()[:10]}"
            engine = engines.get(model_id)
            if engine is None:
                checks.append(Check(name, "", "no engine here reproduces this model id"))
                continue
            try:
                engine.self_test()
                checks.append(Check(name, engine.route))
            except EngineError as err:
                checks.append(Check(name, engine.route, str(err)))
    for check in checks:
        mark = "ok  " if check.problem is None else "FAIL"
        click.echo(f"{mark} {check.name}: {check.problem or check.seen}")
    sys.exit(1 if any(c.problem for c in checks) else 0)


@contextlib.contextmanager
def _errors_reported() -> Iterator[None]:
    """The agent's and the SDK's errors as one `error:` line each and exit status 2, no traceback."""
    try:
        yield
    except (VerinferError, EngineError) as err:
        for line in str(err).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(2)
