"""Provider registry and stake: register, update, stake, unbond, withdraw; free vs locked."""

import ape
import pytest
from eth_utils import keccak

from market_helpers import COLLATERAL, advance, post

DAY = 86_400


@pytest.fixture(scope="module")
def fresh(project, owner, treasury, token, providers, model_id):
    """A marketplace nobody has registered with yet (the session one has staked providers)."""
    m = owner.deploy(project.Marketplace, token, token, treasury)
    m.register_model(model_id, "test-model", keccak(text="weights"), 1, sender=owner)
    for p in providers:
        token.mint(p, 10**30, sender=p)
        token.approve(m, 2**256 - 1, sender=p)
    return m


def test_register_and_update(fresh, providers, model_id, owner):
    p = providers[0]
    tx = fresh.register([model_id], 123, sender=p)
    (log,) = tx.events.filter(fresh.ProviderRegistered)
    assert (log.price, list(log.model_ids)) == (123, [model_id])
    info = fresh.provider_info(p)
    assert info.registered and info.price == 123 and info.free == 0
    assert list(fresh.provider_models(p)) == [model_id]
    other = keccak(text="other-model")
    fresh.register_model(other, "other", keccak(text="w2"), 2, sender=owner)
    tx = fresh.update_provider([other, model_id], 7, sender=p)
    assert tx.events.filter(fresh.ProviderUpdated)[0].price == 7
    assert list(fresh.provider_models(p)) == [model_id, other]  # registry order
    fresh.update_provider([], 7, sender=p)
    assert list(fresh.provider_models(p)) == []


def test_register_rejections(fresh, providers, model_id, owner):
    p, q = providers[:2]
    with ape.reverts("models: unknown model"):
        fresh.register([keccak(text="nope")], 1, sender=p)
    with ape.reverts("staking: price too large"):
        fresh.register([model_id], 2**128, sender=p)
    fresh.set_model_active(model_id, False, sender=owner)
    with ape.reverts("models: inactive"):
        fresh.register([model_id], 1, sender=p)
    fresh.set_model_active(model_id, True, sender=owner)
    fresh.register([model_id], 1, sender=p)
    with ape.reverts("staking: already registered"):
        fresh.register([model_id], 1, sender=p)
    with ape.reverts("staking: not registered"):
        fresh.update_provider([model_id], 1, sender=q)
    with ape.reverts("staking: not registered"):
        fresh.stake(1, sender=q)


def test_stake_and_unbond_lifecycle(fresh, providers, model_id, token, chain):
    p = providers[0]
    fresh.register([model_id], 0, sender=p)
    before = token.balanceOf(p)
    tx = fresh.stake(1000, sender=p)
    assert tx.events.filter(fresh.Staked)[0].amount == 1000
    assert token.balanceOf(p) == before - 1000 and fresh.provider_info(p).free == 1000
    tx = fresh.request_unbond(400, sender=p)
    (log,) = tx.events.filter(fresh.UnbondRequested)
    ready = log.ready_at
    assert log.amount == 400 and ready == chain.blocks.head.timestamp + 3 * DAY
    fresh.request_unbond(100, sender=p)  # adds up; the delay restarts
    info = fresh.provider_info(p)
    assert (info.free, info.unbonding) == (500, 500) and info.unbond_ready_at >= ready
    with ape.reverts("staking: unbond delay not passed"):
        fresh.withdraw_stake(sender=p)
    advance(chain, 3 * DAY + 1)
    tx = fresh.withdraw_stake(sender=p)
    assert tx.events.filter(fresh.StakeWithdrawn)[0].amount == 500
    assert token.balanceOf(p) == before - 500
    info = fresh.provider_info(p)
    assert (info.free, info.unbonding, info.unbond_ready_at) == (500, 0, 0)
    with ape.reverts("staking: nothing unbonding"):
        fresh.withdraw_stake(sender=p)


def test_stake_rejections(fresh, providers, model_id, token):
    p = providers[0]
    fresh.register([model_id], 0, sender=p)
    with ape.reverts("staking: zero amount"):
        fresh.stake(0, sender=p)
    with ape.reverts("staking: zero amount"):
        fresh.request_unbond(0, sender=p)
    with ape.reverts("staking: insufficient free stake"):
        fresh.request_unbond(1, sender=p)
    token.mint(p, 2**128, sender=p)
    with ape.reverts("staking: amount too large"):
        fresh.stake(2**128, sender=p)


def test_open_jobs_keep_only_their_collateral(staked, client, providers, chain):
    p = providers[0]
    (job_id,) = post(staked, client, r=2)
    staked.claim(job_id, sender=p)
    staked.request_unbond(10**24 - COLLATERAL, sender=p)  # all free stake
    advance(chain, 3 * 86_400 + 1)
    staked.withdraw_stake(sender=p)
    info = staked.provider_info(p)
    assert (info.free, info.locked, info.unbonding) == (0, COLLATERAL, 0)
