"""Regression tests for the audit findings of issue 12, one section per finding.

Each test failed on the contracts before its fix. Findings 1-3 (seat sortition, the
r = 1 mempool copy) are not covered here yet.
"""

import ape
import pytest
from eth_utils import keccak

from market_helpers import (
    CHALLENGE_WINDOW, CLIENT_BPS, COLLATERAL, FEE, HONEST_BPS, REWARD, SEAT, advance, assert_solvent, claim_all,
    claim_and_deliver, commit_all, draw_seats_until, post, reveal_all, take_seats,
)

BOND = 4 * REWARD


def commit_and_reveal(market, job_id, providers, results):
    commit_all(market, job_id, providers, results)
    reveal_all(market, job_id, providers, results)


def take_seats_without(market, chain, job_id, keeper, providers, excluded):
    """take_seats, with the round drawn until no seat goes to `excluded` (e.g. the original
    provider of a challenged job, whose stake the test follows)."""
    drawn = draw_seats_until(
        market, chain, job_id, keeper, providers, lambda d: excluded not in d and len({p.address for p in d}) == len(d))
    claim_all(market, job_id, drawn)
    return drawn


@pytest.fixture
def fresh(project, owner, treasury, token, providers, model_id):
    """A marketplace nobody has staked in (the session one has staked providers)."""
    m = owner.deploy(project.Marketplace, token, token, treasury)
    m.register_model(model_id, "test-model", keccak(text="weights"), 1, sender=owner)
    for p in providers:
        token.mint(p, 10**30, sender=p)
        token.approve(m, 2**256 - 1, sender=p)
    return m


# ---------------------------------------------------------------- 4: windows a chain can honour

MIN_WINDOWS = (120, 120, 120)  # the defaults: 10 blocks of a 12 s chain per phase
MONTH = 30 * 86_400


def test_windows_a_chain_cannot_honour_are_refused(staked, owner, client, model_id):
    """With 1 s windows nobody can commit or reveal in time on a chain with 2 s or 12 s
    blocks: honest seats were slashed and the client collected the slashes."""
    assert staked.min_windows() == MIN_WINDOWS
    for windows in [(1, 1, 1), (120, 120, 119), (119, 600, 600), (600, 1, 600), (0, 600, 600)]:
        with ape.reverts("jobs: window too short"):
            staked.post_job(model_id, b"x", 3, REWARD, *windows, sender=client)
        with ape.reverts("jobs: window too short"):
            staked.post_jobs(model_id, [b"x", b"y"], 1, REWARD, *windows, sender=client)
    post(staked, client, r=3, windows=MIN_WINDOWS)  # the minimums themselves are fine
    tx = staked.set_min_windows(12, 24, 36, sender=owner)  # a chain with 1 s blocks
    assert [(e.name, e.new_value) for e in tx.events.filter(staked.ParameterChanged)] == [
        ("min_claim_window", 12), ("min_commit_window", 24), ("min_reveal_window", 36)]
    post(staked, client, r=3, windows=(12, 24, 36))
    with ape.reverts("jobs: window too short"):
        post(staked, client, r=3, windows=(12, 24, 35))


def test_reexecution_round_is_timed_by_the_protocol(staked, owner, client, providers, outsider, chain, token,
                                                    everyone):
    """The round after a challenge reused the client's windows (1 s: a trap for the
    re-executors; 30 days: months of frozen collateral). It runs on the protocol's
    minimum windows as of the challenge."""
    p0 = providers[0]
    (job_id,) = post(staked, client, r=1, windows=(MONTH, MONTH, MONTH))
    claim_and_deliver(staked, p0, [job_id], [b"bad"])
    tx = staked.challenge(job_id, sender=outsider)
    now = chain.blocks.head.timestamp
    (log,) = tx.events.filter(staked.JobChallenged)
    deadlines = (now + 120, now + 240, now + 360)
    assert (log.claim_deadline, log.commit_deadline, log.reveal_deadline) == deadlines
    staked.set_min_windows(600, 600, 600, sender=owner)  # no effect on a running round
    j = staked.job(job_id)
    assert (j.claim_deadline, j.commit_deadline, j.reveal_deadline) == deadlines
    commit_and_reveal(staked, job_id, take_seats(staked, chain, job_id, outsider, providers), [b"good"] * 3)
    staked.finalize(job_id, sender=outsider)
    assert staked.job(job_id).result_digest == keccak(b"good")
    # The next challenge's round takes the new minimums.
    (other,) = post(staked, client, r=1, windows=(600, 600, 600))
    claim_and_deliver(staked, p0, [other], [b"res"])
    tx = staked.challenge(other, sender=outsider)
    now = chain.blocks.head.timestamp
    (log,) = tx.events.filter(staked.JobChallenged)
    assert (log.claim_deadline, log.commit_deadline, log.reveal_deadline) == (now + 600, now + 1200, now + 1800)
    assert_solvent(staked, token, everyone, [job_id, other])


# ---------------------------------------------------------------- 5: settlement terms snapshotted at post


def test_owner_cannot_route_a_pending_slash_to_itself(staked, owner, client, providers, treasury, outsider, chain,
                                                      token, everyone):
    """The split and the treasury a job settles with are those of its post: an owner who
    sets the split to 100% treasury and itself as treasury before finalize gains nothing."""
    (job_id,) = post(staked, client, r=3)
    a, b, c = take_seats(staked, chain, job_id, outsider, providers)
    commit_and_reveal(staked, job_id, [a, b, c], [b"R", b"R", b"wrong"])
    staked.set_slash_split(0, 0, sender=owner)
    staked.set_treasury(owner, sender=owner)
    staked.finalize(job_id, sender=outsider)
    to_client = COLLATERAL * CLIENT_BPS // 10_000
    each = COLLATERAL * HONEST_BPS // 10_000 // 2
    assert staked.stake_credits(client) == to_client
    assert staked.stake_credits(a) == staked.stake_credits(b) == each
    assert staked.stake_credits(treasury) == COLLATERAL - to_client - 2 * each
    assert staked.balances(treasury) == 2 * FEE
    assert staked.stake_credits(owner) == staked.balances(owner) == 0
    # Jobs posted now settle on the new terms.
    (later,) = post(staked, client, r=3)
    commit_and_reveal(staked, later, take_seats(staked, chain, later, outsider, providers), [b"R", b"R", b"wrong"])
    staked.finalize(later, sender=outsider)
    assert staked.stake_credits(owner) == COLLATERAL and staked.balances(owner) == 2 * FEE
    assert_solvent(staked, token, everyone, [job_id, later])


def test_challenge_settles_on_the_terms_of_the_post(staked, owner, client, providers, treasury, outsider, chain,
                                                    token, everyone):
    """A challenged r = 1 job: slash split, treasury share and fee follow the post's terms."""
    p0 = providers[0]
    (convicted,) = post(staked, client, r=1)
    claim_and_deliver(staked, p0, [convicted], [b"bad"])
    (upheld,) = post(staked, client, r=1)
    claim_and_deliver(staked, p0, [upheld], [b"good"])
    staked.challenge(convicted, sender=outsider)
    staked.challenge(upheld, sender=outsider)
    staked.set_slash_split(0, 0, sender=owner)
    staked.set_treasury(owner, sender=owner)
    for job_id in (convicted, upheld):
        commit_and_reveal(staked, job_id, take_seats_without(staked, chain, job_id, outsider, providers, p0),
                          [b"good"] * 3)
    staked.finalize(convicted, sender=outsider)
    staked.finalize(upheld, sender=outsider)
    to_client = COLLATERAL * CLIENT_BPS // 10_000
    to_honest = COLLATERAL * HONEST_BPS // 10_000
    assert staked.stake_credits(client) == to_client
    assert staked.stake_credits(outsider) == to_honest
    assert staked.stake_credits(treasury) == COLLATERAL - to_client - to_honest
    assert staked.balances(treasury) == FEE  # the upheld delivery's fee
    assert staked.stake_credits(owner) == staked.balances(owner) == 0
    assert_solvent(staked, token, everyone, [convicted, upheld])


def test_single_provider_fees_go_to_the_treasury_of_their_post(staked, owner, client, providers, treasury, chain,
                                                               token, everyone):
    """r = 1 fees wait in payout buckets; a treasury change does not redirect them."""
    p = providers[0]
    ids = post(staked, client, r=1, n=2)
    claim_and_deliver(staked, p, ids, [b"res", b"res"])
    staked.set_treasury(owner, sender=owner)
    advance(chain, CHALLENGE_WINDOW + 1)
    staked.release_payouts(p, sender=client)
    assert staked.balances(treasury) == 2 * FEE and staked.balances(owner) == 0
    (later,) = post(staked, client, r=1)
    claim_and_deliver(staked, p, [later], [b"res"])
    advance(chain, CHALLENGE_WINDOW + 1)
    staked.release_payouts(p, sender=client)
    assert staked.balances(owner) == FEE and staked.balances(treasury) == 2 * FEE
    assert_solvent(staked, token, everyone, [*ids, later])


# ---------------------------------------------------------------- 6: packed stake fields cannot overflow

MAX_STAKE = 2**128 - 1


def test_unbonding_sum_cannot_carry_into_ready_at(fresh, providers, model_id, token, chain):
    """stake 2**128 - 1, unbond it, stake again, unbond again: the second unbonding sum
    carried into ready_at and 2**128 units left every ledger. The total stake is capped
    instead: the second stake is refused and the first comes back whole."""
    p = providers[0]
    fresh.register([model_id], 0, sender=p)
    token.mint(p, 2 * MAX_STAKE, sender=p)
    before = token.balanceOf(p)
    fresh.stake(MAX_STAKE, sender=p)
    ready = fresh.request_unbond(MAX_STAKE, sender=p).events.filter(fresh.UnbondRequested)[0].ready_at
    with ape.reverts("staking: amount too large"):
        fresh.stake(MAX_STAKE, sender=p)
    with ape.reverts("staking: amount too large"):
        fresh.stake(1, sender=p)
    info = fresh.provider_info(p)
    assert (info.free, info.locked, info.unbonding, info.unbond_ready_at) == (0, 0, MAX_STAKE, ready)
    advance(chain, 3 * 86_400 + 1)
    fresh.withdraw_stake(sender=p)
    assert token.balanceOf(p) == before and token.balanceOf(fresh) == 0
    fresh.stake(MAX_STAKE, sender=p)  # the cap is on what is held, not on the history


def test_a_provider_at_the_stake_cap_cannot_block_finalize(fresh, owner, clients, providers, model_id, token, chain):
    """A provider whose free stake filled its 128-bit field made the unlock of its
    collateral revert ('staking: amount too large'), and with it the whole job's finalize.
    The cap is on free + locked + unbonding, so every unlock and release fits."""
    a, b = providers[:2]
    client = clients[0]
    for p in (a, b):
        fresh.register([model_id], 0, sender=p)
        fresh.stake(10**24, sender=p)
    token.mint(client, 10**30, sender=client)
    token.approve(fresh, 2**256 - 1, sender=client)
    (job_id,) = post(fresh, client, r=2)
    (single,) = post(fresh, client, r=1)
    claim_and_deliver(fresh, a, [single], [b"R"])
    commit_and_reveal(fresh, job_id, take_seats(fresh, chain, job_id, client, [a, b]), [b"R", b"R"])  # a: one seat
    info = fresh.provider_info(a)
    token.mint(a, MAX_STAKE, sender=a)
    with ape.reverts("staking: amount too large"):
        fresh.stake(MAX_STAKE - info.free, sender=a)  # fills the free field: was accepted
    fresh.stake(MAX_STAKE - info.free - info.locked, sender=a)  # up to the cap
    fresh.finalize(job_id, sender=client)
    advance(chain, CHALLENGE_WINDOW + 1)
    fresh.release_payouts(a, sender=client)
    info = fresh.provider_info(a)
    assert (info.free, info.locked) == (MAX_STAKE, 0)
    assert fresh.balances(a) == 2 * REWARD


# ---------------------------------------------------------------- 7: griefing and rough edges



def test_a_dust_challenge_cannot_freeze_unbonding_stake(staked, client, providers, outsider, chain, token, everyone):
    """A 1-unit r = 1 job with 30-day windows, delivered and challenged, kept its
    provider's collateral locked for months, and withdraw_stake refused all unbonding
    stake while anything was locked. Only the job's collateral stays locked now."""
    p0 = providers[0]
    (job_id,) = post(staked, client, r=1, reward=1, windows=(MONTH, MONTH, MONTH))
    claim_and_deliver(staked, p0, [job_id], [b"res"])
    staked.challenge(job_id, sender=outsider)
    reexecutors = take_seats_without(staked, chain, job_id, outsider, providers, p0)
    commit_and_reveal(staked, job_id, reexecutors, [b"other"] * 3)  # nobody finalizes yet
    (multi,) = post(staked, client, r=2, reward=1, windows=(MONTH, MONTH, MONTH))
    draw_seats_until(staked, chain, multi, outsider, providers, lambda d: d.count(p0) == 1)
    staked.claim(multi, sender=p0)  # and a seat that stays open for months
    free = staked.provider_info(p0).free
    staked.request_unbond(free, sender=p0)
    advance(chain, 3 * 86_400 + 1)
    before = token.balanceOf(p0)
    staked.withdraw_stake(sender=p0)
    assert token.balanceOf(p0) == before + free
    info = staked.provider_info(p0)
    assert (info.free, info.locked, info.unbonding) == (0, 10, 0)  # the dust jobs' collateral: 5 x 1 each
    # The jobs still settle against what stays locked.
    staked.finalize(job_id, sender=outsider)
    advance(chain, 2 * MONTH + 1)
    staked.finalize(multi, sender=outsider)
    assert staked.provider_info(p0).locked == 0
    assert_solvent(staked, token, everyone, [job_id, multi])


def test_withdraw_stake_releases_matured_payouts(staked, client, providers, treasury, chain):
    p = providers[0]
    (job_id,) = post(staked, client, r=1)
    claim_and_deliver(staked, p, [job_id], [b"res"])
    staked.request_unbond(10**18, sender=p)
    advance(chain, 3 * 86_400 + 1)
    tx = staked.withdraw_stake(sender=p)
    (log,) = tx.events.filter(staked.PayoutsReleased)
    assert (log.pay, log.fees, log.collateral) == (REWARD, FEE, COLLATERAL)
    assert staked.balances(p) == REWARD and staked.pending_payouts(p).pay == 0
    assert staked.provider_info(p).locked == 0


def test_slash_shares_and_returned_bonds_are_logged_per_recipient(staked, client, providers, treasury, outsider,
                                                                  chain):
    (job_id,) = post(staked, client, r=3)
    a, b, c = take_seats(staked, chain, job_id, outsider, providers)
    commit_and_reveal(staked, job_id, [a, b, c], [b"R", b"R", b"wrong"])
    tx = staked.finalize(job_id, sender=outsider)
    to_client = COLLATERAL * CLIENT_BPS // 10_000
    each = COLLATERAL * HONEST_BPS // 10_000 // 2
    shares = [(e.job_id, e.account, e.amount) for e in tx.events.filter(staked.SlashShareCredited)]
    assert shares == [(job_id, a, each), (job_id, b, each), (job_id, client, to_client),
                      (job_id, treasury, COLLATERAL - to_client - 2 * each)]
    p0 = providers[0]
    (single,) = post(staked, client, r=1)
    claim_and_deliver(staked, p0, [single], [b"bad"])
    staked.challenge(single, sender=outsider)
    commit_and_reveal(staked, single, take_seats_without(staked, chain, single, outsider, providers, p0), [b"good"] * 3)
    tx = staked.finalize(single, sender=outsider)
    (log,) = tx.events.filter(staked.BondReturned)
    assert (log.job_id, log.challenger, log.amount) == (single, outsider, BOND - 3 * REWARD)
    assert staked.balances(outsider) == log.amount
    shares = {e.account: e.amount for e in tx.events.filter(staked.SlashShareCredited)}
    honest = COLLATERAL * HONEST_BPS // 10_000
    assert shares == {str(client): to_client, str(outsider): honest, str(treasury): COLLATERAL - to_client - honest}


def test_ownership_transfer_takes_two_steps(market, owner, outsider, treasury):
    tx = market.transfer_ownership(outsider, sender=owner)
    assert tx.events.filter(market.OwnershipTransferStarted)[0].new_owner == outsider
    assert market.owner() == owner and market.pending_owner() == outsider
    market.set_paused(True, sender=owner)  # still the owner's
    with ape.reverts("ownable_2step: caller is not the new owner"):
        market.accept_ownership(sender=treasury)
    tx = market.accept_ownership(sender=outsider)
    assert tx.events.filter(market.OwnershipTransferred)[0].new_owner == outsider
    assert market.owner() == outsider and market.pending_owner() == "0x" + "00" * 20
    with ape.reverts("ownable: caller is not the owner"):
        market.set_paused(False, sender=owner)
