"""Provider registry and stake: register, update, stake, unbond, withdraw; free vs locked;
draw weights (bonded stake >> 16 above min_draw_stake, in the trees of the served models)."""

import ape
import pytest
from eth_utils import keccak

from market_helpers import COLLATERAL, WINDOW, advance, draw_seats, post

DAY = 86_400
NOT_OWNER = "ownable: caller is not the owner"
MIN_DRAW_STAKE = 10**18  # the default


def weight(bonded, floor=MIN_DRAW_STAKE):
    """The documented draw weight of a provider serving a model: (free + locked) >> 16, 0 below the floor."""
    return bonded >> 16 if bonded >= floor else 0


def weight_events(market, tx):
    return [(log.event_arguments["provider"], log.weight) for log in tx.events.filter(market.WeightChanged)]


def drawn_providers(market, tx):
    return {log.event_arguments["provider"] for log in tx.events.filter(market.SeatDrawn)}


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


def test_open_jobs_keep_only_their_collateral(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    p = draw_seats(staked, chain, job_id, outsider, providers)[0]  # one seat (the draw is distinct)
    staked.claim(job_id, sender=p)
    staked.request_unbond(10**24 - COLLATERAL, sender=p)  # all free stake
    advance(chain, 3 * 86_400 + 1)
    staked.withdraw_stake(sender=p)
    info = staked.provider_info(p)
    assert (info.free, info.locked, info.unbonding) == (0, COLLATERAL, 0)


# ---------------------------------------------------------------- draw weights


@pytest.fixture
def serving(fresh, providers, model_id, clients, token):
    """providers[0] serves the model with 100 tokens of stake; clients[0] can post."""
    p = providers[0]
    fresh.register([model_id], 0, sender=p)
    fresh.stake(100 * 10**18, sender=p)
    client = clients[0]
    token.mint(client, 10**30, sender=client)
    token.approve(fresh, 2**256 - 1, sender=client)
    return p


def test_draw_weight_follows_bonded_stake(fresh, serving, clients, outsider, chain):
    """stake and request_unbond move the weight; a claim's lock does not (locked stake is bonded);
    a slash removes the slashed collateral from it."""
    p, bonded = serving, 100 * 10**18
    assert fresh.min_draw_stake() == MIN_DRAW_STAKE
    assert fresh.draw_weight(p) == weight(bonded)
    tx = fresh.stake(3 * 2**16 + 12_345, sender=p)  # not a multiple of 2**16: the weight rounds down
    bonded += 3 * 2**16 + 12_345
    assert fresh.draw_weight(p) == weight(bonded) and weight_events(fresh, tx) == [(p, weight(bonded))]
    tx = fresh.request_unbond(10**18 + 7, sender=p)
    bonded -= 10**18 + 7
    assert fresh.draw_weight(p) == weight(bonded) and weight_events(fresh, tx) == [(p, weight(bonded))]
    # The only provider with weight is drawn for both seats and takes them: bonded stake unchanged.
    (job_id,) = post(fresh, clients[0], r=2)
    fresh.claim_many([job_id], sender=outsider)
    tx = fresh.claim(job_id, sender=p)
    assert fresh.provider_info(p).locked == 2 * COLLATERAL
    assert fresh.draw_weight(p) == weight(bonded) and weight_events(fresh, tx) == []
    advance(chain, 2 * WINDOW + 1)
    fresh.finalize(job_id, sender=outsider)  # never committed: both seats slashed
    bonded -= 2 * COLLATERAL
    info = fresh.provider_info(p)
    assert info.free + info.locked == bonded and fresh.draw_weight(p) == weight(bonded)
    # A change that leaves the weight as it was logs nothing.
    tx = fresh.stake(1, sender=p)
    assert fresh.draw_weight(p) == weight(bonded + 1)
    if weight(bonded + 1) == weight(bonded):
        assert weight_events(fresh, tx) == []


def test_update_provider_moves_the_weight_between_models(fresh, serving, owner, model_id):
    """Serving another model as well keeps the weight; serving none makes it 0; serving again
    restores it (README: weight when the provider serves a model, else 0)."""
    p = serving
    w = fresh.draw_weight(p)
    other = keccak(text="other-model")
    fresh.register_model(other, "other", keccak(text="w2"), 2, sender=owner)
    fresh.update_provider([model_id, other], 1, sender=p)
    assert fresh.draw_weight(p) == w
    fresh.update_provider([other], 1, sender=p)
    assert fresh.draw_weight(p) == w
    fresh.update_provider([model_id], 1, sender=p)
    assert fresh.draw_weight(p) == w


def test_draw_weight_is_zero_while_serving_no_model(fresh, serving, model_id):
    p = serving
    w = fresh.draw_weight(p)
    assert w > 0
    fresh.update_provider([], 1, sender=p)
    assert fresh.draw_weight(p) == 0
    fresh.stake(10**18, sender=p)  # a stake change while serving nothing: still 0
    assert fresh.draw_weight(p) == 0
    fresh.update_provider([model_id], 1, sender=p)
    assert fresh.draw_weight(p) == weight(101 * 10**18)


def test_min_draw_stake_floor(fresh, providers, model_id):
    """Below min_draw_stake the weight is 0; at the floor it is the stake >> 16."""
    p = providers[1]
    fresh.register([model_id], 0, sender=p)
    tx = fresh.stake(MIN_DRAW_STAKE - 1, sender=p)
    assert fresh.draw_weight(p) == 0 and weight_events(fresh, tx) == []
    tx = fresh.stake(1, sender=p)
    assert fresh.draw_weight(p) == MIN_DRAW_STAKE >> 16 and weight_events(fresh, tx) == [(p, MIN_DRAW_STAKE >> 16)]
    tx = fresh.request_unbond(1, sender=p)
    assert fresh.draw_weight(p) == 0 and weight_events(fresh, tx) == [(p, 0)]


def test_set_min_draw_stake_is_owner_only_and_bounded(fresh, owner, outsider):
    tx = fresh.set_min_draw_stake(5 * 10**18, sender=owner)
    (log,) = tx.events.filter(fresh.ParameterChanged)
    assert (log.name, log.old_value, log.new_value) == ("min_draw_stake", MIN_DRAW_STAKE, 5 * 10**18)
    assert fresh.min_draw_stake() == 5 * 10**18
    with ape.reverts(NOT_OWNER):
        fresh.set_min_draw_stake(0, sender=outsider)
    with ape.reverts("params: stake out of bounds"):
        fresh.set_min_draw_stake(2**128, sender=owner)
    fresh.set_min_draw_stake(2**128 - 1, sender=owner)
    fresh.set_min_draw_stake(0, sender=owner)
    assert fresh.min_draw_stake() == 0


def test_reweigh_applies_a_new_floor(fresh, serving, providers, owner, outsider, clients, model_id):
    """A raised floor applies to a provider at its next stake change or when anyone calls
    reweigh(provider); until then its weight (and its draws) stay as they were."""
    p, q = serving, providers[1]
    fresh.register([model_id], 0, sender=q)
    fresh.stake(1_000 * 10**18, sender=q)
    w = fresh.draw_weight(p)
    fresh.set_min_draw_stake(200 * 10**18, sender=owner)
    assert fresh.draw_weight(p) == w  # not re-applied yet
    assert fresh.draw_weight(q) == weight(1_000 * 10**18)
    tx = fresh.reweigh(p, sender=outsider)
    assert fresh.draw_weight(p) == 0 and weight_events(fresh, tx) == [(p, 0)]
    tx = fresh.reweigh(q, sender=outsider)  # above the new floor: unchanged, no event
    assert fresh.draw_weight(q) == weight(1_000 * 10**18) and weight_events(fresh, tx) == []
    # Only q has weight now: it gets every seat.
    (job_id,) = post(fresh, clients[0], r=7)
    tx = fresh.claim_many([job_id], sender=outsider)
    assert drawn_providers(fresh, tx) == {q.address}
    # A lowered floor is applied the same way.
    fresh.set_min_draw_stake(MIN_DRAW_STAKE, sender=owner)
    assert fresh.draw_weight(p) == 0
    fresh.reweigh(p, sender=outsider)
    assert fresh.draw_weight(p) == w
    tx = fresh.reweigh(outsider, sender=outsider)  # anyone, for anyone (no stake: weight 0)
    assert fresh.draw_weight(outsider) == 0 and weight_events(fresh, tx) == []


def test_unbond_request_never_raises_a_weight(fresh, serving, owner, outsider):
    """An unbond request (like a slash) never needs a new tree slot, so it never raises a
    weight: after the owner lowered the floor, a provider weighed 0 under the old one stays 0
    at its unbond request and is weighed again by reweigh or a stake."""
    p = serving
    fresh.set_min_draw_stake(200 * 10**18, sender=owner)
    fresh.reweigh(p, sender=outsider)
    assert fresh.draw_weight(p) == 0
    fresh.set_min_draw_stake(MIN_DRAW_STAKE, sender=owner)
    tx = fresh.request_unbond(10**18, sender=p)
    assert fresh.draw_weight(p) == 0 and weight_events(fresh, tx) == []
    tx = fresh.reweigh(p, sender=outsider)
    assert fresh.draw_weight(p) == weight(99 * 10**18) and weight_events(fresh, tx) == [(p, weight(99 * 10**18))]


def test_provider_that_stops_serving_a_model_is_never_drawn_for_it(staked, providers, owner, outsider, client, chain, token):
    """providers[0] moves from the test model to another: it is never drawn for the test model
    afterwards (28 seats; with its old weight it would miss them all with probability (5/6)**28),
    and it is the only weight of the other model, which draws it for every seat."""
    p = providers[0]
    other = keccak(text="other-model")
    staked.register_model(other, "other", keccak(text="w2"), 2, sender=owner)
    staked.update_provider([other], 1, sender=p)
    ids = post(staked, client, r=7, n=4)
    tx = staked.claim_many(ids, sender=outsider)
    drawn = drawn_providers(staked, tx)
    assert len(tx.events.filter(staked.SeatDrawn)) == 28 and p.address not in drawn
    assert all(staked.seat(j, s).provider != p.address for j in ids for s in range(7))
    (job_id,) = post(staked, client, r=3, model_id=other)
    tx = staked.claim_many([job_id], sender=outsider)
    assert drawn_providers(staked, tx) == {p.address}
    # A redraw of the test model's seats (after half the minimum claim window) still skips it.
    advance(chain, 61)
    tx = staked.claim_many(ids, sender=outsider)
    assert len(tx.events.filter(staked.SeatDrawn)) == 28 and p.address not in drawn_providers(staked, tx)
