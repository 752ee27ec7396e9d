"""Optimistic challenge of r == 1 results: re-execution round, every outcome, every reason."""

import ape
from eth_utils import keccak

from market_helpers import (
    CHALLENGE_WINDOW, CLIENT_BPS, COLLATERAL, FAULT_LOSING_DIGEST, FAULT_LOST_CHALLENGE, FAULT_NO_COMMIT,
    FEE, HONEST_BPS, MIN_WINDOW, REWARD, SEAT, STATUS_CHALLENGED, STATUS_FINALIZED, advance, assert_solvent,
    claim_all, commit_all, post, reveal_all, run_round,
)

BOND = 4 * REWARD  # (R_CHALLENGE + 1) * reward


def delivered_job(market, client, provider, result=b"bad"):
    (job_id,) = post(market, client, r=1)
    market.deliver(job_id, result, sender=provider)
    return job_id


def slashes(market, tx):
    return [(log.event_arguments["provider"], log.seat, log.reason) for log in tx.events.filter(market.ProviderSlashed)]


def test_challenge_opens_reexecution_round(staked, client, providers, outsider, token):
    p0 = providers[0]
    job_id = delivered_job(staked, client, p0)
    assert staked.challenge_bond(job_id) == BOND
    before = token.balanceOf(outsider)
    tx = staked.challenge(job_id, sender=outsider)
    (log,) = tx.events.filter(staked.JobChallenged)
    j = staked.job(job_id)
    start = log.claim_deadline - MIN_WINDOW  # the round runs on the protocol's minimum windows
    assert (log.challenger, log.bond, log.commit_deadline, log.reveal_deadline) == (
        outsider, BOND, start + 2 * MIN_WINDOW, start + 3 * MIN_WINDOW)
    assert j.status == STATUS_CHALLENGED and j.challenger == outsider and j.nclaimed == 0
    assert (j.claim_deadline, j.result_digest) == (log.claim_deadline, keccak(b"bad"))
    assert token.balanceOf(outsider) == before - BOND
    assert staked.escrow_of(job_id) == SEAT + BOND
    assert staked.pending_payouts(p0).pay == 0  # taken back out of the bucket
    assert staked.provider_info(p0).locked == COLLATERAL  # still at stake
    with ape.reverts("jobs: original provider"):
        staked.claim(job_id, sender=p0)
    with ape.reverts("jobs: not challengeable"):
        staked.challenge(job_id, sender=outsider)
    with ape.reverts("jobs: not assigned"):
        staked.commit(job_id, keccak(b"x"), sender=p0)


def test_successful_challenge_slashes_provider(staked, client, providers, outsider, treasury, token, everyone):
    p0, p1, p2, p3 = providers[:4]
    job_id = delivered_job(staked, client, p0)
    staked.challenge(job_id, sender=outsider)
    run_round(staked, job_id, [p1, p2, p3], [b"good", b"good", b"other"])
    assert staked.assignment(job_id, p1) == (True, 1, True, True)
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == [(p3, 3, FAULT_LOSING_DIGEST), (p0, 0, FAULT_LOST_CHALLENGE)]
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.result_digest, log.provider_pay, log.client_refund, log.slashed) == (
        STATUS_FINALIZED, keccak(b"good"), 2 * REWARD, SEAT, 2 * COLLATERAL)
    assert staked.job(job_id).result_digest == keccak(b"good")
    assert staked.balances(p1) == staked.balances(p2) == REWARD and staked.balances(p0) == 0
    assert staked.balances(outsider) == BOND - 2 * REWARD
    assert staked.stake_credits(outsider) == 2 * COLLATERAL * HONEST_BPS // 10_000
    assert staked.stake_credits(client) == 2 * COLLATERAL * CLIENT_BPS // 10_000
    assert staked.balances(client) == SEAT and staked.balances(treasury) == 0
    assert staked.provider_info(p0).locked == 0 and staked.provider_info(p0).free == 10**24 - COLLATERAL
    assert_solvent(staked, token, everyone, [job_id])


def test_failed_challenge_pays_provider_from_bond(staked, client, providers, outsider, treasury, token, everyone):
    p0, p1, p2, p3 = providers[:4]
    job_id = delivered_job(staked, client, p0, b"right")
    staked.challenge(job_id, sender=outsider)
    run_round(staked, job_id, [p1, p2, p3], [b"right"] * 3)
    tx = staked.finalize(job_id, sender=outsider)
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.result_digest, log.provider_pay, log.client_refund, log.slashed) == (keccak(b"right"), 5 * REWARD, 0, 0)
    assert staked.balances(p0) == 2 * REWARD  # its pay + one reward for the delay
    assert [staked.balances(p) for p in (p1, p2, p3)] == [REWARD] * 3
    assert staked.balances(outsider) == 0 and staked.balances(treasury) == FEE
    assert staked.provider_info(p0).locked == 0
    assert_solvent(staked, token, everyone, [job_id])


def test_challenge_without_majority_lets_delivery_stand(staked, client, providers, outsider, chain, token, everyone):
    p0, p1, p2, p3 = providers[:4]
    job_id = delivered_job(staked, client, p0, b"right")
    staked.challenge(job_id, sender=outsider)
    claim_all(staked, job_id, [p1, p2, p3])
    commit_all(staked, job_id, [p1, p2], [b"right", b"X"])  # p3 never commits
    advance(chain, 2 * MIN_WINDOW + 1)
    reveal_all(staked, job_id, [p1, p2], [b"right", b"X"])
    tx = staked.finalize(job_id, sender=outsider)  # all committed seats revealed
    assert slashes(staked, tx) == [(p3, 3, FAULT_NO_COMMIT)]
    assert staked.balances(p1) == REWARD and staked.balances(p2) == 0  # confirmed / released
    assert staked.provider_info(p2).locked == 0
    assert staked.balances(p0) == 2 * REWARD and staked.balances(outsider) == 2 * REWARD
    assert staked.stake_credits(p0) == COLLATERAL * HONEST_BPS // 10_000  # honest side of a failed challenge
    assert staked.job(job_id).result_digest == keccak(b"right")
    assert_solvent(staked, token, everyone, [job_id])


def test_unclaimed_challenge_round_settles(staked, client, providers, outsider, owner, chain, token, everyone):
    p0 = providers[0]
    job_id = delivered_job(staked, client, p0)
    staked.challenge(job_id, sender=outsider)
    with ape.reverts("jobs: not finalizable yet"):
        staked.finalize(job_id, sender=outsider)
    advance(chain, 2 * MIN_WINDOW + 1)
    staked.finalize(job_id, sender=outsider)
    assert staked.balances(p0) == 2 * REWARD and staked.balances(outsider) == BOND - REWARD
    assert staked.job(job_id).status == STATUS_FINALIZED
    assert_solvent(staked, token, everyone, [job_id])


def test_reexecution_claims_ignore_pause(staked, client, providers, outsider, owner):
    job_id = delivered_job(staked, client, providers[0])
    staked.set_paused(True, sender=owner)
    staked.challenge(job_id, sender=outsider)
    staked.claim(job_id, sender=providers[1])
    assert staked.assignment(job_id, providers[1])[:2] == (True, 1)


def test_challenge_bond_from_balance(staked, client, providers, token):
    job_id = delivered_job(staked, client, providers[0])
    staked.deposit(BOND, sender=client)
    before = token.balanceOf(client)
    staked.challenge(job_id, sender=client)
    assert token.balanceOf(client) == before and staked.balances(client) == 0


def test_challenge_rejections(staked, client, providers, outsider, chain):
    (open_job,) = post(staked, client, r=1)
    (multi,) = post(staked, client, r=2)
    with ape.reverts("jobs: unknown job"):
        staked.challenge(open_job + 1, sender=outsider)
    with ape.reverts("jobs: not challengeable"):
        staked.challenge(open_job, sender=outsider)
    with ape.reverts("jobs: not challengeable"):
        staked.challenge(multi, sender=outsider)
    job_id = delivered_job(staked, client, providers[0])
    with ape.reverts("jobs: challenge window open"):
        staked.finalize(job_id, sender=outsider)
    advance(chain, CHALLENGE_WINDOW + 1)
    with ape.reverts("jobs: challenge window closed"):
        staked.challenge(job_id, sender=outsider)
    assert staked.job(job_id).status == STATUS_FINALIZED  # settled lazily
    with ape.reverts("jobs: already settled"):
        staked.finalize(job_id, sender=outsider)
