"""scripts/deploy.py's min_draw_stake: set in whole stake tokens, scaled by the stake
token's decimals (the contract's default, 10**18 units, is one token only at 18)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner
from sdk_helpers import MODEL

from client.marketplace import Marketplace
from client.protocol import DEFAULT_MIN_DRAW_STAKE, MAX_MIN_DRAW_STAKE
from scripts.deploy import DeployError, deploy, draw_stake_units


def test_draw_stake_units_scale_whole_tokens_by_the_decimals():
    assert draw_stake_units(1, 18) == DEFAULT_MIN_DRAW_STAKE
    assert (draw_stake_units("1", 6), draw_stake_units(Decimal("0.5"), 18), draw_stake_units(0, 6)) == (
        10**6, 5 * 10**17, 0)
    for bad in ("-1", "0.0000001", "nan", "one", str(MAX_MIN_DRAW_STAKE + 1)):
        with pytest.raises(DeployError):
            draw_stake_units(bad, 6)


def test_deploy_sets_the_floor_only_where_it_differs(owner, web3):
    default = deploy(owner, [MODEL], record=False)
    market = Marketplace(web3, default.marketplace.address)
    assert default.min_draw_stake == market.min_draw_stake() == DEFAULT_MIN_DRAW_STAKE
    assert market.get_events(web3.eth.block_number - 1, events=["ParameterChanged"]) == []

    raised = deploy(owner, [MODEL], record=False, min_draw_stake="2.5")
    market = Marketplace(web3, raised.marketplace.address)
    assert raised.min_draw_stake == market.min_draw_stake() == 25 * 10**17


def test_deploy_command_takes_the_floor_in_tokens(tmp_path):
    from scripts.deploy import cli

    result = CliRunner().invoke(cli, ["--network", "ethereum:local:test", "--account", "TEST::0",
                                      "--model-id", "0x" + MODEL.model_id.hex(), "--min-draw-stake", "3"],
                                env={"VERINFER_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "Draw stake   3 token(s) = 3000000000000000000 units" in result.output
    assert (tmp_path / "deployments.json").exists()
