"""Drawn seats (issue 12, findings 1 and 2): stake-weighted sortition that spare addresses
cannot buy, whose weights are fixed before its randomness exists.

The statistical tests draw ~1,150 seats per case; their bounds are 4.5 standard
deviations wide (a false alarm about once in 150,000 runs), and each would fail by far
if splitting stake, a same-block stake change or a racing claim bought seats."""

import math

import pytest
from eth_utils import keccak

from tests.conftest import TEST_MODEL_ID, TOKEN_SUPPLY
from tests.contracts.market_helpers import REWARD, STATUS_CHALLENGED, WINDOW, post, round_seats

TOKEN = 10**18
BATCHES = 12  # x 32 jobs x 3 seats
SIGMAS = 4.5


def _post_batches(market, client, batches=BATCHES, r=3, model_id=TEST_MODEL_ID):
    ids = []
    for b in range(batches):
        tx = market.post_jobs(model_id, [b"job %d %d" % (b, i) for i in range(32)], r, REWARD, WINDOW, WINDOW, WINDOW,
                              sender=client)
        ids.append([log.job_id for log in tx.events.filter(market.JobPosted)])
    return ids


def _draw_all(market, batches, keeper):
    """Draw every job's seats (one claim_many per batch, from a later block); the
    drawn addresses, seat by seat, job by job."""
    drawn = []
    for ids in batches:
        tx = market.claim_many(ids, sender=keeper)
        by_job = {}
        for log in tx.events.filter(market.SeatDrawn):
            by_job.setdefault(log.job_id, []).append(log.event_arguments["provider"])
        drawn.extend(by_job[j] for j in ids)
    return drawn


def _within(count, n, p):
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= SIGMAS * sd, f"{count} of {n}, expected {n * p:.1f} +- {SIGMAS * sd:.1f}"


def _join(market, provider, stake, model_id=TEST_MODEL_ID):
    market.register([model_id], 0, sender=provider)
    market.stake(stake, sender=provider)


@pytest.fixture
def own_model(funded, owner):
    """A model nobody serves yet: the session's `staked` providers serve TEST_MODEL_ID
    only, so its draws see exactly the stakes a test gives."""
    model_id = keccak(text="drawn-seats-test-model")
    funded.register_model(model_id, "drawn-seats", keccak(text="weights"), 1, sender=owner)
    return model_id


@pytest.fixture
def fresh(accounts, owner, token, funded):
    """fresh(n): n new accounts with gas money and tokens approved for the market, none
    registered (the session's `staked` fixture registers the usual providers)."""
    def make(n):
        made = []
        for _ in range(n):
            a = accounts.generate_test_account()
            owner.transfer(a, 10**18)
            token.mint(a, TOKEN_SUPPLY, sender=owner)
            token.approve(funded, 2**256 - 1, sender=a)
            made.append(a)
        return made
    return make


@pytest.mark.parametrize("split", [1, 3])
def test_a_stake_share_wins_the_same_seats_however_it_is_split(funded, fresh, own_model, clients, outsider, split):
    """30% of the stake, at one address or over three: each seat goes to the attacker with
    probability 0.3 and a majority of 3 seats with 3s^2 - 2s^3 = 0.216."""
    providers = fresh(3 + split)
    honest, attacker = providers[:3], providers[3:]
    for p in honest:
        _join(funded, p, 700 * TOKEN, own_model)
    for p in attacker:
        _join(funded, p, 900 * TOKEN // split, own_model)
    ours = {p.address for p in attacker}
    drawn = _draw_all(funded, _post_batches(funded, clients[0], model_id=own_model), outsider)
    seats = sum(a in ours for job in drawn for a in job)
    majorities = sum(sum(a in ours for a in job) >= 2 for job in drawn)
    s = 0.3
    ok, why = _within(seats, 3 * len(drawn), s)
    assert ok, f"attacker seats: {why}"
    ok, why = _within(majorities, len(drawn), 3 * s**2 - 2 * s**3)
    assert ok, f"attacker majorities: {why}"
    # Every seat went to a provider with stake, never to the keeper or nobody.
    assert all(a in ours or a in {p.address for p in honest} for job in drawn for a in job)


def test_draws_follow_the_stake_shares(funded, fresh, own_model, clients, outsider):
    """Unequal stakes 1:2:3:4: each provider's seat count matches its share (chi-square
    with 3 degrees of freedom below 21.1, p = 1e-4)."""
    providers = fresh(4)
    stakes = {p.address: k * 100 * TOKEN for k, p in enumerate(providers, start=1)}
    for p in providers:
        _join(funded, p, stakes[p.address], own_model)
    drawn = [a for job in _draw_all(funded, _post_batches(funded, clients[0], model_id=own_model), outsider)
             for a in job]
    total = sum(stakes.values())
    chi2 = sum((drawn.count(a) - len(drawn) * w / total) ** 2 / (len(drawn) * w / total) for a, w in stakes.items())
    assert chi2 < 21.1, {a: drawn.count(a) for a in stakes}


def test_seats_are_drawn_with_replacement(funded, fresh, own_model, clients, outsider):
    """Two providers of equal stake, r = 3: a job's three seats all go to one of them a
    quarter of the time (2 x 0.5^3), as independent draws must."""
    for p in fresh(2):
        _join(funded, p, 100 * TOKEN, own_model)
    drawn = _draw_all(funded, _post_batches(funded, clients[0], model_id=own_model), outsider)
    ok, why = _within(sum(len(set(job)) == 1 for job in drawn), len(drawn), 0.25)
    assert ok, why


def test_only_drawn_providers_take_seats(staked, client, providers, outsider):
    """Every provider tries to claim; exactly the drawn ones take exactly their seats."""
    job_id = post(staked, client, r=3)[0]
    staked.claim_many([job_id], sender=outsider)
    drawn = [staked.seat(job_id, s).provider for s in range(3)]
    for p in providers:
        tx = staked.claim_many([job_id], sender=p)
        took = [log.seat for log in tx.events.filter(staked.JobClaimed)]
        assert took == [s for s in range(3) if drawn[s] == p.address]
        if not took:
            assert [log.reason for log in tx.events.filter(staked.ItemSkipped)] == ["jobs: not drawn"]
    assert all(staked.seat(job_id, s).claimed for s in range(3))


def test_a_stake_raised_in_the_drawing_block_does_not_count(staked, project, token, owner, clients, outsider):
    """Weights are read as of the block's start: a provider that stakes 10^6 times the
    others' stake and claims in the same transaction wins no seat; from the next block
    on it wins nearly all."""
    funded = staked  # six providers with 10^24 each
    bundler = owner.deploy(project.Bundler, funded, token)
    token.mint(bundler, 2 * TOKEN_SUPPLY, sender=owner)
    bundler.join(TEST_MODEL_ID, TOKEN, sender=owner)
    first, second = _post_batches(funded, clients[0], batches=2)
    tx = bundler.stake_and_claim(10**12 * TOKEN, first, sender=owner)
    same_block = [log.event_arguments["provider"] for log in tx.events.filter(funded.SeatDrawn)]
    assert len(same_block) == 96 and bundler.address not in same_block
    tx = funded.claim_many(second, sender=outsider)
    next_block = [log.event_arguments["provider"] for log in tx.events.filter(funded.SeatDrawn)]
    assert next_block.count(bundler.address) >= 90


def test_a_stake_dropped_in_the_drawing_block_still_counts(funded, fresh, own_model, project, token, owner, clients):
    """The mirror image: unbonding right before the draw cannot dodge it (or shift the
    ranges onto another address): the draw sees the weight the block started with."""
    for p in fresh(2):
        _join(funded, p, TOKEN, own_model)
    bundler = owner.deploy(project.Bundler, funded, token)
    token.mint(bundler, TOKEN_SUPPLY, sender=owner)
    bundler.join(own_model, 10**9 * TOKEN, sender=owner)
    (ids,) = _post_batches(funded, clients[0], batches=1, model_id=own_model)
    tx = bundler.unbond_and_claim(10**9 * TOKEN - TOKEN, ids, sender=owner)
    assert [log.event_arguments["provider"] for log in tx.events.filter(funded.SeatDrawn)].count(bundler.address) >= 90


def test_finding1_challenge_and_claims_in_one_transaction_take_no_seat(
        staked, project, token, owner, client, providers, outsider):
    """Audit finding 1: a contract challenged and claimed two re-execution seats in the
    same transaction, deciding the challenge. Now a round's seats are drawn from a block
    after the challenge: the bundle's claim is skipped and takes nothing."""
    job_id = post(staked, client, r=1)[0]
    staked.claim(job_id, sender=providers[0])
    staked.deliver(job_id, b"honest result", sender=providers[0])
    bundler = owner.deploy(project.Bundler, staked, token)
    token.mint(bundler, TOKEN_SUPPLY, sender=owner)
    bundler.join(TEST_MODEL_ID, 10**24, sender=owner)
    tx = bundler.challenge_and_claim(job_id, sender=owner)
    assert staked.job(job_id).status == STATUS_CHALLENGED
    assert [log.reason for log in tx.events.filter(staked.ItemSkipped)] == ["jobs: draw not ready"]
    assert staked.job(job_id).nclaimed == 0 and not list(tx.events.filter(staked.SeatDrawn))
    # The round is drawn in a later block, by stake: the bundle is one of 7 equal stakes.
    staked.claim_many([job_id], sender=outsider)
    assert round_seats(staked, job_id) == [1, 2, 3]
    assert all(staked.seat(job_id, s).provider != "0x" + "00" * 20 for s in (1, 2, 3))


def test_finding2_sybils_racing_for_seats_get_none(staked, fresh, client, providers):
    """Audit finding 2: the first r addresses to claim took the seats. Five fresh sybil
    addresses with the least drawable stake claim first, in the first block they can;
    the 10^6 times larger honest stake holds every seat."""
    sybils = fresh(5)
    for s in sybils:
        _join(staked, s, TOKEN)
    ids = post(staked, client, r=3, n=8)
    took = 0
    for s in sybils:
        tx = staked.claim_many(ids, sender=s)
        took += len(list(tx.events.filter(staked.JobClaimed)))
    assert took == 0
    honest = {p.address for p in providers}
    assert all(staked.seat(j, s).provider in honest for j in ids for s in range(3))
