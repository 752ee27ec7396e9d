"""Agent configuration: the committed sample, environment overrides, validation errors."""

import os

import pytest
from pydantic import ValidationError

from client.errors import ConfigError, VerinferError
from provider.agent.config import SAMPLE_CONFIG, AgentConfig, load_config
from provider.agent.errors import AgentError

MODEL = "0x" + "ab" * 32


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("VERINFER_"):
            monkeypatch.delenv(key)


def write(tmp_path, text: str):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_sample_config_loads_and_validates():
    config = load_config(SAMPLE_CONFIG)
    assert config.network == "ethereum:local:foundry" and config.is_local
    assert config.account == "TEST::1"
    assert config.policy.price == 10**15
    assert config.policy.max_stake_at_risk == 10**21  # written as a string: beyond TOML's int64
    assert config.engine_batch.max_size == 32 and config.claim_batch.max_wait == 1.0
    assert config.watcher.confirmations == 2 and config.tx.fee_bump_percent == 15
    assert config.tx.max_fee_wei == 200 * 10**9
    assert len(config.model_ids) == 1


def test_sample_config_serves_the_engines_model(engine):
    # The committed sample must name the model this engine reproduces (update both together).
    assert load_config(SAMPLE_CONFIG).model_ids == [engine.model_id]


def test_environment_overrides_file_keeping_other_nested_keys(tmp_path, monkeypatch):
    path = write(tmp_path, f'models = ["{MODEL}"]\n[tx]\nmax_fee_gwei = 50\nstuck_blocks = 7\n')
    monkeypatch.setenv("VERINFER_TX__MAX_FEE_GWEI", "80")
    monkeypatch.setenv("VERINFER_DB_PATH", str(tmp_path / "x.db"))
    monkeypatch.setenv("VERINFER_POLICY__MAX_STAKE_AT_RISK", "5_000_000_000_000_000_000_000")
    config = load_config(path)
    assert config.tx.max_fee_gwei == 80
    assert config.tx.stuck_blocks == 7  # from the file, not reset by the override
    assert config.db_path == tmp_path / "x.db"
    assert config.policy.max_stake_at_risk == 5 * 10**21


def test_environment_alone(monkeypatch):
    monkeypatch.setenv("VERINFER_MODELS", f'["{MODEL}"]')
    assert load_config(None).models == [MODEL]


@pytest.mark.parametrize(
    "text, field",
    [
        ("[watcher]\nconfirmations = -1", "watcher.confirmations"),
        ("[engine_batch]\nmax_wait = 0", "engine_batch.max_wait"),
        ("[claim_batch]\nmax_size = 0", "claim_batch.max_size"),
        ("[policy]\nmax_stake_at_risk = 0", "policy.max_stake_at_risk"),
        ("[policy]\nprice = -5", "policy.price"),
        ("[policy]\nmin_price = 5", "min_price is gone: price is both the price clients see"),
        ("[policy]\ncapacity = 0", "policy.capacity"),
        ("[tx]\nfee_bump_percent = 5", "tx.fee_bump_percent"),
        ("[tx]\nmax_fee_gwei = 10\npriority_fee_gwei = 20", "priority_fee_gwei must not exceed"),
        ("[metrics]\nport = 70000", "metrics.port"),
        ("[log]\nformat = 'xml'", "log.format"),
        ("[policy]\ncapacity = 4\n[claim_batch]\nmax_size = 8", "must not exceed policy.capacity"),
        ("[tx]\nconfirmations = 10\n[watcher]\nreorg_window = 5", "reorg_window"),
        ("network = 'sepolia'", "ecosystem:network"),
        ("network = 'ethereum:sepolia:node'\naccount = 'TEST::0'", "only be used on local"),
        ("rpc_url = 'localhost:8545'", "rpc_url must start"),
        ("marketplace = '0x1234'", "is not an address"),
        ("dashbaord = false", "dashbaord"),  # typos are errors, not silently ignored
    ],
)
def test_invalid_values_name_the_field(tmp_path, text, field):
    path = write(tmp_path, f'models = ["{MODEL}"]\n{text}\n')
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize(
    "models, message",
    [
        ("[]", "models"),
        ('["0x1234"]', "32-byte hex"),
        (f'["{MODEL}", "0x{MODEL[2:].upper()}"]', "twice"),  # same id, other case
    ],
)
def test_models_validated(tmp_path, models, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, f"models = {models}\n"))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "models = [\n"))


def test_config_error_is_a_value_error_and_config_is_frozen():
    config = AgentConfig(models=[MODEL])
    assert issubclass(ConfigError, ValueError)
    # One root for the agent's errors and the SDK's: one except clause catches both.
    assert issubclass(AgentError, VerinferError) and issubclass(ConfigError, VerinferError)
    with pytest.raises(ValidationError):
        config.network = "x:y"  # type: ignore[misc]


def test_command_line_settings_override_the_file(tmp_path):
    path = write(tmp_path, f'models = ["{MODEL}"]\nnetwork = "ethereum:local:test"\naccount = "TEST::3"\n')
    config = load_config(path, network="ethereum:local:foundry", rpc_url=None, account="TEST::1",
                         dashboard=False)
    assert (config.network, config.account, config.dashboard) == ("ethereum:local:foundry", "TEST::1", False)
    assert config.rpc_url is None  # not given (None): the file's (absent) value stays


def test_command_line_settings_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, f'models = ["{MODEL}"]\n')
    with pytest.raises(ConfigError, match="network"):
        load_config(path, network="mainnet")
    with pytest.raises(ConfigError, match="test accounts"):
        load_config(path, network="ethereum:mainnet:node", account="TEST::1")


def test_a_setting_given_on_the_command_line_and_in_the_environment_is_refused(tmp_path, monkeypatch):
    path = write(tmp_path, f'models = ["{MODEL}"]\n')
    monkeypatch.setenv("VERINFER_ACCOUNT", "alice")
    assert load_config(path, network="ethereum:local:foundry").account == "alice"
    with pytest.raises(ConfigError, match="`account` is given both on the command line and as VERINFER_ACCOUNT"):
        load_config(path, account="bob")
