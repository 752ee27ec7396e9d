"""Optimistic challenge of r == 1 results: re-execution round, every outcome, every reason."""

import ape
from eth_utils import keccak

from market_helpers import (
    CHALLENGE_WINDOW, CLIENT_BPS, COLLATERAL, FAULT_LOSING_DIGEST, FAULT_LOST_CHALLENGE, FAULT_NO_COMMIT,
    FEE, HONEST_BPS, MIN_WINDOW, REWARD, SEAT, STATUS_CHALLENGED, STATUS_FINALIZED, advance, assert_solvent,
    claim_all, claim_and_deliver, commit_all, draw_seats, draw_seats_until, post, reveal_all,
)

BOND = 4 * REWARD  # (R_CHALLENGE + 1) * reward


def delivered_job(market, client, provider, result=b"bad"):
    (job_id,) = post(market, client, r=1)
    claim_and_deliver(market, provider, [job_id], [result])
    return job_id


def take_round(market, chain, job_id, keeper, providers, original):
    """Draw the re-execution round until its three seats go to three providers other than
    the original one (so that each seat has its own role); they take them. By seat."""
    drawn = draw_seats_until(
        market, chain, job_id, keeper, providers, lambda d: original not in d and len({p.address for p in d}) == 3)
    claim_all(market, job_id, drawn)
    return drawn


def slashes(market, tx):
    return [(log.event_arguments["provider"], log.seat, log.reason) for log in tx.events.filter(market.ProviderSlashed)]


def test_challenge_opens_reexecution_round(staked, client, providers, outsider, token, clients):
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
    assert [staked.seat(job_id, s).provider for s in (1, 2, 3)] == ["0x" + "00" * 20] * 3  # not drawn yet
    tx = staked.claim_many([job_id], sender=clients[1])  # a later block draws the round
    assert [log.seat for log in tx.events.filter(staked.SeatDrawn)] == [1, 2, 3]
    with ape.reverts("jobs: not challengeable"):
        staked.challenge(job_id, sender=outsider)
    with ape.reverts("jobs: not assigned"):
        staked.commit(job_id, keccak(b"x"), sender=p0)


def test_successful_challenge_slashes_provider(staked, client, providers, outsider, treasury, chain, token, everyone):
    p0 = providers[0]
    job_id = delivered_job(staked, client, p0)
    staked.challenge(job_id, sender=outsider)
    p1, p2, p3 = take_round(staked, chain, job_id, outsider, providers, p0)
    commit_all(staked, job_id, [p1, p2, p3], [b"good", b"good", b"other"])
    reveal_all(staked, job_id, [p1, p2, p3], [b"good", b"good", b"other"])
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


def test_failed_challenge_pays_provider_from_bond(staked, client, providers, outsider, treasury, chain, token, everyone):
    p0 = providers[0]
    job_id = delivered_job(staked, client, p0, b"right")
    staked.challenge(job_id, sender=outsider)
    p1, p2, p3 = take_round(staked, chain, job_id, outsider, providers, p0)
    commit_all(staked, job_id, [p1, p2, p3], [b"right"] * 3)
    reveal_all(staked, job_id, [p1, p2, p3], [b"right"] * 3)
    tx = staked.finalize(job_id, sender=outsider)
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.result_digest, log.provider_pay, log.client_refund, log.slashed) == (keccak(b"right"), 5 * REWARD, 0, 0)
    assert staked.balances(p0) == 2 * REWARD  # its pay + one reward for the delay
    assert [staked.balances(p) for p in (p1, p2, p3)] == [REWARD] * 3
    assert staked.balances(outsider) == 0 and staked.balances(treasury) == FEE
    assert staked.provider_info(p0).locked == 0
    assert_solvent(staked, token, everyone, [job_id])


def test_challenge_without_majority_lets_delivery_stand(staked, client, providers, outsider, chain, token, everyone):
    p0 = providers[0]
    job_id = delivered_job(staked, client, p0, b"right")
    staked.challenge(job_id, sender=outsider)
    p1, p2, p3 = take_round(staked, chain, job_id, outsider, providers, p0)
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


def test_reexecution_claims_ignore_pause(staked, client, providers, outsider, owner, chain):
    job_id = delivered_job(staked, client, providers[0])
    staked.set_paused(True, sender=owner)
    staked.challenge(job_id, sender=outsider)
    p, _, _ = draw_seats(staked, chain, job_id, outsider, providers)  # the draw ignores the pause too
    staked.claim(job_id, sender=p)
    assert staked.assignment(job_id, p)[:2] == (True, 1)


def test_original_provider_may_be_drawn_for_the_reexecution_round(staked, client, providers, outsider, chain, token,
                                                                   everyone):
    """Splitting stake must buy nothing, so the original provider weighs like anyone: drawn,
    it takes a round seat with its own collateral and is settled on both seats."""
    p0 = providers[0]
    job_id = delivered_job(staked, client, p0, b"bad")
    staked.challenge(job_id, sender=outsider)
    drawn = draw_seats_until(
        staked, chain, job_id, outsider, providers, lambda d: p0 in d and len({p.address for p in d}) == 3)
    claim_all(staked, job_id, drawn)
    assert staked.assignment(job_id, p0) == (True, 1 + drawn.index(p0), False, False)
    assert staked.provider_info(p0).locked == 2 * COLLATERAL
    commit_all(staked, job_id, drawn, [b"good"] * 3)
    reveal_all(staked, job_id, drawn, [b"good"] * 3)
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == [(p0, 0, FAULT_LOST_CHALLENGE)]
    assert [staked.balances(p) for p in drawn] == [REWARD] * 3  # p0 too, for its round seat
    assert staked.provider_info(p0).locked == 0 and staked.provider_info(p0).free == 10**24 - COLLATERAL
    assert staked.balances(outsider) == BOND - 3 * REWARD
    assert_solvent(staked, token, everyone, [job_id])


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
    staked.claim(open_job, sender=providers[1])
    with ape.reverts("jobs: not challengeable"):  # claimed, nothing delivered yet
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
