"""An operator's first hour: each start-up problem is found before the agent registers
and said in one line with what to do; `verinfer-provider doctor` prints every check; a
store left from another chain is refused."""
import pytest
from agent_market import Env
from click.testing import CliRunner

from provider.agent.errors import StoreError
from provider.agent.main import cli
from tests.support.anvil import funded_account

pytestmark = pytest.mark.anvil


def _config(tmp_path, env: Env, account: int, *, models=None, watcher=0, tx=1, chain_id=None):
    models = models or ["0x" + env.engine.model_id.hex()]
    lines = [f'rpc_url = "{env.anvil.url}"', f'network = "ethereum:local:foundry"',
             f'account = "TEST::{account}"', f'marketplace = "{env.market.address}"',
             f'db_path = "{tmp_path / "agent.db"}"', "dashboard = false",
             "models = [" + ", ".join(f'"{m}"' for m in models) + "]",
             *([f"chain_id = {chain_id}"] if chain_id else []),
             "[policy]", f"stake = {10**21}", "[metrics]", "enabled = false",
             "[watcher]", f"confirmations = {watcher}", "[tx]", f"confirmations = {tx}"]
    path = tmp_path / f"agent{account}.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _doctor(config: str):
    result = CliRunner().invoke(cli, ["doctor", "--config", config])
    return result.exit_code, result.output.splitlines()


def test_doctor_passes_a_good_setup(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    code, lines = _doctor(_config(tmp_path, env, 1, chain_id=anvil.w3().eth.chain_id))
    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [
        "ok   chain id", "ok   marketplace", "ok   blocks", "ok   gas funds", "ok   stake",
        "ok   model", f"ok   engine 0x{engine.model_id.hex()[:10]}"]
    assert "automine" in lines[2] and engine.route in lines[-1]


def test_each_first_hour_problem_is_one_line(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    broke = funded_account(4).address
    anvil.rpc("anvil_setBalance", broke, "0x0")
    # account 4: no ETH and no stake tokens; automine with confirmations; an unknown model
    code, lines = _doctor(_config(tmp_path, env, 4, watcher=2,
                                  models=["0x" + env.engine.model_id.hex(), "0x" + "ab" * 32]))
    assert code == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [
        "FAIL blocks: the node mines a block only when a transaction arrives, but "
        "watcher.confirmations = 2 and tx.confirmations = 1: the agent would wait forever for "
        "blocks; on this dev node set watcher.confirmations = 0 and tx.confirmations = 1, or "
        "run anvil with --block-time 2",
        f"FAIL gas funds: account {broke} holds no ETH to pay gas: send it some (it sends every "
        "claim, result and stake transaction)",
        f"FAIL stake: account {broke} holds 0 stake tokens ({env.token.address}) but needs "
        f"{10**21} more to bond policy.stake = {10**21}: acquire stake tokens, or lower "
        "policy.stake",
        f"FAIL model: model 0x{'ab' * 32} is not registered on this marketplace: its owner "
        "registers it (ape run deploy does for the engine's model), or serve another model",
        f"FAIL engine 0x{'ab' * 5}: no engine here reproduces this model id",
    ]


def test_wrong_chain_and_missing_marketplace(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    code, lines = _doctor(_config(tmp_path, env, 1, chain_id=1))
    assert code == 1 and lines[0] == (
        f"FAIL chain id: the node is chain {anvil.w3().eth.chain_id} but the config expects "
        "chain 1: point network / rpc_url at the right chain")
    # a wrong chain hides the checks that would read it
    assert [line.split(":")[0] for line in lines] == ["FAIL chain id", "ok   marketplace",
                                                       f"ok   engine 0x{engine.model_id.hex()[:10]}"]
    text = open(_config(tmp_path, env, 1)).read()
    path = tmp_path / "elsewhere.toml"
    path.write_text(text.replace(env.market.address, funded_account(7).address))
    code, lines = _doctor(str(path))
    assert code == 1 and lines[0].startswith(
        f"FAIL marketplace: no contract at marketplace {funded_account(7).address} on chain")


def test_the_agent_refuses_to_start_and_registers_nothing(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    broke = funded_account(5).address  # ETH, but no stake tokens
    result = CliRunner().invoke(cli, ["--config", _config(tmp_path, env, 5)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: account {broke} holds 0 stake tokens ({env.token.address}) but needs "
        f"{10**21} more to bond policy.stake = {10**21}: acquire stake tokens, or lower "
        "policy.stake"]
    assert not env.market.provider(broke).registered


def test_a_store_from_a_restarted_dev_chain_is_refused(anvil_factory, engine, tmp_path):
    """A restarted anvil keeps the chain id and, deployed by the same account, the
    marketplace address: only the genesis block tells the chains apart."""
    first = Env(anvil_factory(), engine)
    first.agent(1, tmp_path)
    genesis = first.w3.eth.get_block(0)["timestamp"]
    second = Env(anvil_factory("--timestamp", str(genesis + 3600)), engine)
    assert (second.market.address, second.w3.eth.chain_id) == (first.market.address,
                                                               first.w3.eth.chain_id)
    with pytest.raises(StoreError, match=r"agent1.db belongs to another chain or deployment"):
        second.agent(1, tmp_path)
