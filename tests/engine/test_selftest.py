"""The engine's startup self-test: it passes on an honest host, and a route that is off
by one bit anywhere (a GEMM accumulator, a result byte) is refused with a message that
names the route and the CPU."""
import pytest
import torch

from provider.engine import Engine, SelfTestError, cpu_kernels, intops, selftest
from provider.engine.backend import CpuOps


def test_self_test_passes_on_this_host(engine):
    engine.self_test()
    assert engine.model_id.hex() in selftest.PINNED
    # the probes reach every position: the longest is truncated to MAX_TOKENS
    assert max(len(engine.tokenize(p)) for p in selftest.PROBES) == engine.model_info.max_tokens


def test_gemm_cases_hold_the_worst_cases():
    x, w = selftest.gemm_cases(), selftest.gemm_weights()
    assert x.shape[1] == w.shape[1] == intops.MAX_K
    assert x.min() == -32768 and x.max() == 32767 and w.abs().max() == 127
    assert x[0, :4].tolist() == [2, 2, 2, 2] and (w[0, :4] == 127).all()  # 2 x 127 x 4


def test_a_gemm_off_by_one_is_named(monkeypatch):
    exact = cpu_kernels.PackedLinear.gemm

    def off_by_one(self, x):
        acc = exact(self, x)
        acc[0, 0] += 1
        return acc

    monkeypatch.setattr(cpu_kernels.PackedLinear, "gemm", off_by_one)
    with pytest.raises(SelfTestError, match=r"the CPU GEMM is not exact on this host: K = 4, "
                                            r"case \(0, 0\) gave 1017, the exact product is 1016"):
        selftest.check_gemm()


def test_a_flipped_result_bit_refuses_with_route_and_cpu(engine, monkeypatch):
    def flipped(h, mask):
        out = intops.mean_pool_normalize(h, mask)
        out[0, 0] ^= 1
        return out

    monkeypatch.setattr(CpuOps, "mean_pool_normalize", staticmethod(flipped))
    with pytest.raises(SelfTestError) as err:
        engine.self_test()
    message = str(err.value)
    assert message.startswith(f"engine self-test failed on route {engine.route}; CPU ")
    assert f"ATen {torch.backends.cpu.get_cpu_capability()}" in message
    assert "(flags: " in message and "probe bytes differ from the pinned ones" in message
    assert "refusing to serve" in message
    with pytest.raises(SelfTestError):  # and a fresh load refuses too
        Engine.load("cpu")


def test_a_model_without_a_pinned_probe_is_refused(engine, monkeypatch):
    monkeypatch.setattr(selftest, "PINNED", {})
    with pytest.raises(SelfTestError, match="no pinned probe hash for model"):
        engine.self_test()
