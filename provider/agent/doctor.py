"""Pre-flight checks: what an operator can get wrong in the first hour, each found before
the agent registers and said in one line with what to do.

The agent runs them at start and refuses to go on while one fails (``verinfer-provider``);
``verinfer-provider doctor`` runs them alone and prints every result.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from client.errors import ModelNotFound
from client.marketplace import Marketplace, Token
from provider.agent.config import AgentConfig


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``problem`` is None when all is well, else the one line."""

    name: str
    seen: str
    problem: str | None = None


def _automine(w3: Web3) -> bool | None:
    """Whether the node mines a block per transaction only (anvil's and hardhat's
    automine without interval mining); None where the node doesn't say (a real chain)."""
    for method in ("anvil_getAutomine", "hardhat_getAutomine"):
        try:
            answer = w3.provider.make_request(method, [])
        except Exception:  # noqa: BLE001  (transports raise their own kinds for unknown methods)
            continue
        if "result" in answer:
            return bool(answer["result"])
    return None


def check_chain(config: AgentConfig, w3: Web3, marketplace: str) -> list[Check]:
    chain_id = w3.eth.chain_id
    checks = []
    if config.chain_id is not None:
        ok = chain_id == config.chain_id
        checks.append(Check("chain id", f"node is chain {chain_id}", None if ok else (
            f"the node is chain {chain_id} but the config expects chain {config.chain_id}: "
            "point network / rpc_url at the right chain")))
    has_code = len(w3.eth.get_code(Web3.to_checksum_address(marketplace))) > 0
    checks.append(Check("marketplace", f"{marketplace} on chain {chain_id}", None if has_code else (
        f"no contract at marketplace {marketplace} on chain {chain_id}: wrong network, "
        "or deploy first (ape run deploy) and set `marketplace`")))
    return checks


def check_blocks(config: AgentConfig, w3: Web3) -> Check:
    automine = _automine(w3)
    waits = config.watcher.confirmations > 0 or config.tx.confirmations > 1
    if automine and waits:
        return Check("blocks", "automine: a block per transaction", (
            f"the node mines a block only when a transaction arrives, but watcher.confirmations "
            f"= {config.watcher.confirmations} and tx.confirmations = {config.tx.confirmations}: "
            "the agent would wait forever for blocks; on this dev node set watcher.confirmations"
            " = 0 and tx.confirmations = 1, or run anvil with --block-time 2"))
    seen = {True: "automine", False: "interval mining", None: "not a dev node"}[automine]
    return Check("blocks", seen)


def check_account(config: AgentConfig, market: Marketplace, address: str) -> list[Check]:
    w3 = market.w3
    gas = w3.eth.get_balance(address)
    checks = [Check("gas funds", f"{address} holds {gas} wei", None if gas else (
        f"account {address} holds no ETH to pay gas: send it some (it sends every claim, "
        "result and stake transaction)"))]
    info = market.provider(address)
    need = config.policy.stake - (info.free + info.locked)
    token = Token(w3, market.stake_token())
    held = token.balance_of(address)
    if need > held:
        checks.append(Check("stake", f"bonded {info.free + info.locked}, holds {held}", (
            f"account {address} holds {held} stake tokens ({token.address}) but needs {need} "
            f"more to bond policy.stake = {config.policy.stake}: acquire stake tokens, or lower "
            "policy.stake")))
    else:
        checks.append(Check("stake", f"bonded {info.free + info.locked}, holds {held}"))
    return checks


def check_models(market: Marketplace, model_ids: list[bytes]) -> list[Check]:
    checks = []
    for model_id in model_ids:
        name = "0x" + model_id.hex()
        try:
            info = market.model(model_id)
        except ModelNotFound:
            info = None
        if info is not None and info.active:
            checks.append(Check("model", f"{info.name} ({name})"))
        else:
            state = "inactive" if info is not None else "not registered"
            checks.append(Check("model", name, (
                f"model {name} is {state} on this marketplace: its owner registers it "
                "(ape run deploy does for the engine's model), or serve another model")))
    return checks


def run_checks(config: AgentConfig, w3: Web3, marketplace: str, address: str) -> list[Check]:
    """Every check, in the order an operator fixes them (a wrong chain hides the rest)."""
    checks = check_chain(config, w3, marketplace)
    if any(c.problem for c in checks):
        return checks
    market = Marketplace(w3, marketplace)
    return [*checks, check_blocks(config, w3), *check_account(config, market, address),
            *check_models(market, config.model_ids)]
