"""scripts/deploy.py in process: contracts, model registration, the recorded address."""

import json

import pytest
from eth_utils import keccak

from scripts.deploy import DeployError, ModelEntry, deploy

ENTRY = ModelEntry(keccak(text="deploy-test-model"), "deploy-test", keccak(text="w"), 1)


def test_deploy_registers_models_and_records_address(owner, chain, tmp_path, monkeypatch):
    monkeypatch.setenv("VERINFER_HOME", str(tmp_path))
    deployed = deploy(owner, [ENTRY])
    m = deployed.marketplace
    assert m.PAY_TOKEN() == m.STAKE_TOKEN() == deployed.pay_token.address
    assert m.treasury() == owner and m.owner() == owner
    info = m.model_info(ENTRY.model_id)
    assert (info.name, info.weights_digest, info.format_version, info.active) == ("deploy-test", ENTRY.weights_digest, 1, True)
    record = json.loads((tmp_path / "deployments.json").read_text())[str(chain.chain_id)]
    assert record["marketplace"] == m.address and record["network"] == "ethereum:local:test"
    assert record["model_ids"] == ["0x" + ENTRY.model_id.hex()] and record["block"] > 0
    assert deployed.record == tmp_path / "deployments.json"


def test_deploy_with_given_tokens_and_treasury(owner, token, outsider, project):
    stake = owner.deploy(project.TestToken, "Stake", "STK")
    deployed = deploy(owner, [], pay_token=token.address, stake_token=stake.address, treasury=outsider, record=False)
    m = deployed.marketplace
    assert (m.PAY_TOKEN(), m.STAKE_TOKEN(), m.treasury()) == (token.address, stake.address, outsider)
    assert m.model_count() == 0 and deployed.record is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_id": b"short"},
        {"weights_digest": b"\x00" * 31},
        {"name": ""},
        {"name": "x" * 65},
        {"format_version": 2**16},
    ],
)
def test_model_entry_validation(kwargs):
    fields = dict(model_id=ENTRY.model_id, name="n", weights_digest=ENTRY.weights_digest, format_version=1) | kwargs
    with pytest.raises(DeployError):
        ModelEntry(**fields)
