"""Lazy settlement of r == 1 deliveries: payout buckets, release timing, withdraw.

A delivery is preceded by the provider's claim in an earlier block (claim binds the seat and
locks its collateral; the delivery moves the collateral and the escrow into the bucket)."""

import ape

from market_helpers import (
    CHALLENGE_WINDOW, COLLATERAL, FEE, REWARD, SALT, STATUS_DELIVERED, STATUS_FINALIZED, STATUS_OPEN, advance,
    assert_solvent, claim_and_deliver, post, seal,
)

STAKE = 10**24


def deliver(market, client, provider, n=1):
    """Post n r = 1 jobs; the provider claims them (claim / claim_many), then delivers
    (deliver / deliver_many) from the next block."""
    ids = post(market, client, r=1, n=n)
    claim_and_deliver(market, provider, ids, [b"res"] * n)
    return ids


def test_pay_waits_for_the_challenge_window(staked, client, providers, treasury, chain, token, everyone):
    p = providers[0]
    ids = deliver(staked, client, p, n=3)
    pending = staked.pending_payouts(p)
    assert (pending.pay, pending.fees, pending.collateral) == (3 * REWARD, 3 * FEE, 3 * COLLATERAL)
    assert pending.matures_at == staked.job(ids[0]).challenge_end
    staked.release_payouts(p, sender=client)  # too early: nothing moves
    assert staked.balances(p) == 0 and staked.provider_info(p).locked == 3 * COLLATERAL
    with ape.reverts("accounting: nothing to withdraw"):
        staked.withdraw(sender=p)
    assert_solvent(staked, token, everyone, ids)
    advance(chain, CHALLENGE_WINDOW + 1)
    assert all(staked.job(j).status == STATUS_FINALIZED for j in ids)
    tx = staked.release_payouts(p, sender=client)
    (log,) = tx.events.filter(staked.PayoutsReleased)
    assert (log.pay, log.fees, log.collateral) == (3 * REWARD, 3 * FEE, 3 * COLLATERAL)
    assert staked.balances(p) == 3 * REWARD and staked.balances(treasury) == 3 * FEE
    info = staked.provider_info(p)
    assert info.locked == 0 and info.free == STAKE
    assert staked.pending_payouts(p).pay == 0
    assert_solvent(staked, token, everyone, ids)


def test_withdraw_releases_and_collects_in_one_call(staked, client, providers, chain, token):
    p = providers[0]
    deliver(staked, client, p, n=2)
    advance(chain, CHALLENGE_WINDOW + 1)
    before = token.balanceOf(p)
    tx = staked.withdraw(sender=p)
    (log,) = tx.events.filter(staked.Withdrawn)
    assert (log.pay_amount, log.stake_amount) == (2 * REWARD, 0)
    assert token.balanceOf(p) == before + 2 * REWARD and staked.balances(p) == 0


def test_buckets_rotate_and_never_release_early(staked, client, providers, chain, token, everyone):
    p = providers[0]
    ids = deliver(staked, client, p)  # bucket 1 opens
    advance(chain, CHALLENGE_WINDOW // 2)
    ids += deliver(staked, client, p)  # still bucket 1: it now matures with this job
    advance(chain, CHALLENGE_WINDOW // 2 + 10)
    ids += deliver(staked, client, p)  # bucket 1 closed (window elapsed) -> bucket 2 opens
    staked.release_payouts(p, sender=client)
    assert staked.balances(p) == 0  # bucket 1's last job is still inside its window
    advance(chain, CHALLENGE_WINDOW // 2)
    staked.release_payouts(p, sender=client)
    assert staked.balances(p) == 2 * REWARD  # bucket 1 released, bucket 2 still pending
    assert staked.pending_payouts(p).pay == REWARD
    advance(chain, CHALLENGE_WINDOW)
    ids += deliver(staked, client, p)  # bucket 3 opens in bucket 1's (empty) slot
    assert staked.balances(p) == 2 * REWARD and staked.pending_payouts(p).pay == 2 * REWARD
    advance(chain, CHALLENGE_WINDOW + 10)
    ids += deliver(staked, client, p)  # bucket 4 reuses bucket 2's slot: releases it first
    assert staked.balances(p) == 3 * REWARD and staked.pending_payouts(p).pay == 2 * REWARD
    assert_solvent(staked, token, everyone, ids)


def test_challenge_removes_only_its_job_from_the_bucket(staked, client, providers, outsider):
    p = providers[0]
    a, b = deliver(staked, client, p, n=2)
    staked.challenge(b, sender=outsider)
    pending = staked.pending_payouts(p)
    assert (pending.pay, pending.fees, pending.collateral) == (REWARD, FEE, COLLATERAL)
    assert staked.provider_info(p).locked == 2 * COLLATERAL


def test_claimed_collateral_moves_into_the_bucket_at_delivery(staked, client, providers, token, everyone):
    p = providers[0]
    (job_id,) = post(staked, client, r=1)
    staked.claim(job_id, sender=p)
    assert staked.provider_info(p).locked == COLLATERAL and staked.pending_payouts(p).collateral == 0
    staked.deliver(job_id, b"res", sender=p)
    pending = staked.pending_payouts(p)
    assert (pending.pay, pending.fees, pending.collateral) == (REWARD, FEE, COLLATERAL)
    assert staked.provider_info(p).locked == COLLATERAL  # locked once, at the claim
    assert_solvent(staked, token, everyone, [job_id])


def test_r1_claimant_cannot_skip_the_challenge_window(staked, client, providers, outsider):
    """r = 1 has no commit-reveal: the claimant's only way to be paid is a delivery, whose pay
    waits out the challenge window while anyone may challenge it. Committing and revealing on
    the claimed seat and finalizing must not pay it at once, out of a challenger's reach."""
    p = providers[0]
    (job_id,) = post(staked, client, r=1)
    staked.claim(job_id, sender=p)
    with ape.reverts("jobs: use deliver"):
        staked.commit(job_id, seal(job_id, p, b"res"), sender=p)
    with ape.reverts("jobs: use deliver"):
        staked.reveal(job_id, b"res", SALT, sender=p)
    with ape.reverts("jobs: not finalizable yet"):
        staked.finalize(job_id, sender=outsider)
    assert staked.job(job_id).status == STATUS_OPEN and staked.balances(p) == 0
    staked.deliver(job_id, b"res", sender=p)
    assert staked.job(job_id).status == STATUS_DELIVERED and staked.balances(p) == 0
    assert staked.pending_payouts(p).pay == REWARD
