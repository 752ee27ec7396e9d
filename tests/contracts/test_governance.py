"""Owner surface: model registry, bounded parameters with events, treasury, pause, ownership."""

import ape
import pytest
from eth_utils import keccak

NOT_OWNER = "ownable: caller is not the owner"


def test_model_registry(market, owner, model_id):
    assert market.model_count() == 1
    m = market.model_info(model_id)
    assert (m.model_id, m.name, m.format_version, m.active, m.index) == (model_id, "test-model", 1, True, 0)
    assert market.model_at(0).model_id == model_id
    new = keccak(text="new-model")
    tx = market.register_model(new, "new", keccak(text="w"), 3, sender=owner)
    (log,) = tx.events.filter(market.ModelRegistered)
    assert (log.model_id, log.index, log.name, log.format_version) == (new, 1, "new", 3)
    tx = market.set_model_active(new, False, sender=owner)
    assert not tx.events.filter(market.ModelStatusChanged)[0].active
    assert market.model_info(new).active is False and market.model_at(1).active is False


def test_model_registry_rejections(market, owner, outsider, model_id):
    with ape.reverts(NOT_OWNER):
        market.register_model(keccak(text="x"), "x", bytes(32), 1, sender=outsider)
    with ape.reverts(NOT_OWNER):
        market.set_model_active(model_id, False, sender=outsider)
    with ape.reverts("models: zero id"):
        market.register_model(bytes(32), "x", bytes(32), 1, sender=owner)
    with ape.reverts("models: already registered"):
        market.register_model(model_id, "x", bytes(32), 1, sender=owner)
    with ape.reverts("models: unknown model"):
        market.set_model_active(keccak(text="nope"), True, sender=owner)
    with ape.reverts("models: unknown model"):
        market.model_info(keccak(text="nope"))
    with ape.reverts("models: unknown model"):
        market.model_at(1)


def test_model_registry_is_bounded(market, owner):
    for i in range(1, 256):
        market.register_model(keccak(i.to_bytes(32, "big")), "m", bytes(32), 1, sender=owner)
    assert market.model_count() == 256
    with ape.reverts("models: registry full"):
        market.register_model(keccak(text="one too many"), "m", bytes(32), 1, sender=owner)


def test_defaults(market, treasury, owner):
    assert (market.fee_bps(), market.collateral_bps(), market.challenge_window(), market.unbond_delay()) == (
        250, 50_000, 3_600, 3 * 86_400)
    assert market.slash_split() == (3_000, 6_000, 1_000)
    assert market.treasury() == treasury and market.owner() == owner and not market.paused()
    assert market.min_draw_stake() == 10**18


SETTERS = [
    # setter, in-bounds value, out-of-bounds value, reason, event name
    ("set_fee_bps", 1_000, 1_001, "params: fee too high", "fee_bps"),
    ("set_collateral_bps", 10_000, 9_999, "params: collateral out of bounds", "collateral_bps"),
    ("set_collateral_bps", 100_000, 100_001, "params: collateral out of bounds", "collateral_bps"),
    ("set_challenge_window", 60, 59, "params: window out of bounds", "challenge_window"),
    ("set_challenge_window", 7 * 86_400, 7 * 86_400 + 1, "params: window out of bounds", "challenge_window"),
    ("set_unbond_delay", 60, 59, "params: delay out of bounds", "unbond_delay"),
    ("set_unbond_delay", 30 * 86_400, 30 * 86_400 + 1, "params: delay out of bounds", "unbond_delay"),
    ("set_min_draw_stake", 2**128 - 1, 2**128, "params: stake out of bounds", "min_draw_stake"),
]


@pytest.mark.parametrize("setter, good, bad, reason, name", SETTERS)
def test_bounded_setters(market, owner, outsider, setter, good, bad, reason, name):
    fn = getattr(market, setter)
    getter = getattr(market, name)
    old = getter()
    tx = fn(good, sender=owner)
    (log,) = tx.events.filter(market.ParameterChanged)
    assert (log.name, log.old_value, log.new_value) == (name, old, good)
    assert getter() == good
    with ape.reverts(reason):
        fn(bad, sender=owner)
    with ape.reverts(NOT_OWNER):
        fn(good, sender=outsider)


def test_slash_split(market, owner, outsider):
    tx = market.set_slash_split(2_000, 8_000, sender=owner)
    assert [(e.name, e.new_value) for e in tx.events.filter(market.ParameterChanged)] == [
        ("slash_client_bps", 2_000), ("slash_honest_bps", 8_000)]
    assert market.slash_split() == (2_000, 8_000, 0)
    with ape.reverts("params: split exceeds 100%"):
        market.set_slash_split(5_000, 5_001, sender=owner)
    with ape.reverts(NOT_OWNER):
        market.set_slash_split(0, 0, sender=outsider)


def test_treasury_pause_and_ownership(market, owner, outsider, treasury):
    tx = market.set_treasury(outsider, sender=owner)
    (log,) = tx.events.filter(market.TreasuryChanged)
    assert (log.old_treasury, log.new_treasury) == (treasury, outsider)
    with ape.reverts("params: zero treasury"):
        market.set_treasury("0x" + "00" * 20, sender=owner)
    with ape.reverts(NOT_OWNER):
        market.set_treasury(outsider, sender=outsider)
    tx = market.set_paused(True, sender=owner)
    assert tx.events.filter(market.ParameterChanged)[0].name == "paused" and market.paused()
    with ape.reverts(NOT_OWNER):
        market.set_paused(False, sender=outsider)
    market.transfer_ownership(outsider, sender=owner)
    assert market.owner() == owner  # two steps: the new owner accepts
    with ape.reverts(NOT_OWNER):
        market.transfer_ownership(outsider, sender=outsider)
    market.accept_ownership(sender=outsider)
    assert market.owner() == outsider
    market.set_paused(False, sender=outsider)
    with ape.reverts(NOT_OWNER):
        market.set_paused(True, sender=owner)


def test_new_parameters_apply_to_new_jobs_only(staked, owner, client, providers, outsider, chain):
    from market_helpers import COLLATERAL, REWARD, SEAT, draw_seats, post

    (old,) = post(staked, client, r=2)
    staked.set_fee_bps(1_000, sender=owner)
    staked.set_collateral_bps(20_000, sender=owner)
    (new,) = post(staked, client, r=2)
    assert staked.job(old).fee_per_seat == SEAT - REWARD and staked.job(old).collateral_per_seat == COLLATERAL
    assert staked.job(new).fee_per_seat == REWARD // 10 and staked.job(new).collateral_per_seat == 2 * REWARD
    p = draw_seats(staked, chain, old, outsider, providers)[0]  # one seat of the old job
    staked.claim(old, sender=p)
    assert staked.provider_info(p).locked == COLLATERAL
