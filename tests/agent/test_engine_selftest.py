"""An agent whose engine fails its self-test refuses to register (it would be slashed for
its hardware): the error names the route, and nothing reaches the chain."""
import pytest
from agent_market import Env

from provider.engine import SelfTestError, intops
from provider.engine.backend import CpuOps
from tests.support.anvil import funded_account

pytestmark = pytest.mark.anvil


def test_agent_refuses_to_register_on_a_wrong_route(anvil, engine, tmp_path, monkeypatch):
    env = Env(anvil, engine)

    def flipped(h, mask):  # a route that differs from the honest one in one bit
        out = intops.mean_pool_normalize(h, mask)
        out[0, 0] ^= 1
        return out

    monkeypatch.setattr(CpuOps, "mean_pool_normalize", staticmethod(flipped))
    with pytest.raises(SelfTestError, match=r"engine self-test failed on route cpu .*"
                                            r"refusing to serve"):
        env.agent(1, tmp_path)
    assert not env.market.provider(funded_account(1).address).registered
    assert not (tmp_path / "agent1.db").exists()  # failed before the store was opened

    monkeypatch.undo()  # the honest route: the same agent registers
    env.agent(1, tmp_path)
    assert env.market.provider(funded_account(1).address).registered
