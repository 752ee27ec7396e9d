"""finalize for r >= 2: majority, every fault, no majority, timeouts; slash split; solvency."""

import ape

from market_helpers import (
    CLIENT_BPS, COLLATERAL, FAULT_LOSING_DIGEST, FAULT_NO_COMMIT, FAULT_NO_REVEAL, FEE, HONEST_BPS,
    REWARD, SEAT, STATUS_FINALIZED, STATUS_UNRESOLVED, WINDOW, advance, assert_solvent, claim_all,
    commit_all, post, reveal_all, run_round,
)
from eth_utils import keccak

STAKE = 10**24


def slashes(market, tx):
    return [(log.event_arguments["provider"], log.seat, log.amount, log.reason) for log in tx.events.filter(market.ProviderSlashed)]


def test_unanimous_round_pays_everyone(staked, client, providers, treasury, outsider, token, everyone):
    (job_id,) = post(staked, client, r=3)
    run_round(staked, job_id, providers[:3], [b"R"] * 3)
    tx = staked.finalize(job_id, sender=outsider)
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.result_digest, log.provider_pay, log.client_refund, log.slashed) == (
        STATUS_FINALIZED, keccak(b"R"), 3 * REWARD, 0, 0)
    for p in providers[:3]:
        assert staked.balances(p) == REWARD
        assert staked.provider_info(p).locked == 0 and staked.provider_info(p).free == STAKE
    assert staked.balances(treasury) == 3 * FEE and staked.balances(client) == 0
    j = staked.job(job_id)
    assert j.status == STATUS_FINALIZED and j.result_digest == keccak(b"R") and staked.escrow_of(job_id) == 0
    assert_solvent(staked, token, everyone, [job_id])
    with ape.reverts("jobs: already settled"):
        staked.finalize(job_id, sender=outsider)


def test_losing_digest_is_slashed_and_split(staked, client, providers, treasury, outsider, token, everyone):
    (job_id,) = post(staked, client, r=3)
    a, b, c = providers[:3]
    run_round(staked, job_id, [a, b, c], [b"R", b"R", b"wrong"])
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == [(c, 2, COLLATERAL, FAULT_LOSING_DIGEST)]
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.provider_pay, log.client_refund, log.slashed) == (2 * REWARD, SEAT, COLLATERAL)
    to_client = COLLATERAL * CLIENT_BPS // 10_000
    each = COLLATERAL * HONEST_BPS // 10_000 // 2
    assert staked.stake_credits(client) == to_client and staked.balances(client) == SEAT
    assert staked.stake_credits(a) == staked.stake_credits(b) == each
    assert staked.stake_credits(treasury) == COLLATERAL - to_client - 2 * each
    info = staked.provider_info(c)
    assert info.locked == 0 and info.free == STAKE - COLLATERAL
    assert_solvent(staked, token, everyone, [job_id])


def test_timeouts_slash_non_committers_and_non_revealers(staked, client, providers, outsider, chain, token, everyone):
    (job_id,) = post(staked, client, r=3)
    a, b, c = providers[:3]
    claim_all(staked, job_id, [a, b, c])
    commit_all(staked, job_id, [a, b], [b"R", b"R"])  # c never commits
    advance(chain, 2 * WINDOW + 1)
    reveal_all(staked, job_id, [a], [b"R"])  # b never reveals
    with ape.reverts("jobs: not finalizable yet"):  # b may still reveal
        staked.finalize(job_id, sender=outsider)
    advance(chain, WINDOW)
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == [(b, 1, COLLATERAL, FAULT_NO_REVEAL), (c, 2, COLLATERAL, FAULT_NO_COMMIT)]
    # 1 reveal of 3 is no strict majority: unresolved, a released unpaid.
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund) == (STATUS_UNRESOLVED, 0, 3 * SEAT)
    assert staked.provider_info(a).locked == 0 and staked.balances(a) == 0 and staked.stake_credits(a) == 0
    # No honest side: the honest share goes to the client.
    assert staked.stake_credits(client) == 2 * COLLATERAL * (CLIENT_BPS + HONEST_BPS) // 10_000
    assert staked.job(job_id).result_digest == bytes(32)
    assert_solvent(staked, token, everyone, [job_id])


def test_no_majority_only_non_revealers_slashed(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=4)
    a, b, c, d = providers[:4]
    claim_all(staked, job_id, [a, b, c, d])
    commit_all(staked, job_id, [a, b, c, d], [b"X", b"X", b"Y", b"Y"])
    reveal_all(staked, job_id, [a, b, c], [b"X", b"X", b"Y"])
    advance(chain, 3 * WINDOW + 1)
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == [(d, 3, COLLATERAL, FAULT_NO_REVEAL)]  # 2 of 4 is not a strict majority
    assert staked.job(job_id).status == STATUS_UNRESOLVED
    assert staked.balances(client) == 4 * SEAT
    for p in (a, b, c):
        assert staked.provider_info(p).locked == 0 and staked.balances(p) == 0


def test_due_early_once_committed_seats_revealed(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=3)
    a, b = providers[:2]
    claim_all(staked, job_id, [a, b])  # the third seat stays free
    commit_all(staked, job_id, [a, b], [b"R", b"R"])
    advance(chain, 2 * WINDOW + 1)  # past the commit deadline
    reveal_all(staked, job_id, [a, b], [b"R", b"R"])
    tx = staked.finalize(job_id, sender=outsider)  # before the reveal deadline
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund) == (STATUS_FINALIZED, 2 * REWARD, SEAT)


def test_nobody_committed_after_commit_deadline(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    claim_all(staked, job_id, providers[:2])
    advance(chain, 2 * WINDOW + 1)
    tx = staked.finalize(job_id, sender=outsider)
    assert [s[3] for s in slashes(staked, tx)] == [FAULT_NO_COMMIT, FAULT_NO_COMMIT]
    assert staked.balances(client) == 2 * SEAT


def test_finalize_many_skips_what_is_not_due(staked, client, providers, outsider, chain):
    done, pending = post(staked, client, r=2, n=2)
    run_round(staked, done, providers[:2], [b"R", b"R"])
    tx = staked.finalize_many([done, pending, done, 99], sender=outsider)
    reasons = [(log.job_id, log.reason) for log in tx.events.filter(staked.ItemSkipped)]
    assert reasons == [(pending, "jobs: not finalizable yet"), (done, "jobs: already settled"), (99, "jobs: unknown job")]
    assert len(tx.events.filter(staked.JobFinalized)) == 1
    with ape.reverts("jobs: unknown job"):
        staked.finalize(99, sender=outsider)


def test_recovery_never_blocked_by_pause(staked, client, providers, owner, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    claim_all(staked, job_id, providers[:2])
    commit_all(staked, job_id, providers[:2], [b"R", b"R"])
    staked.set_paused(True, sender=owner)
    reveal_all(staked, job_id, providers[:2], [b"R", b"R"])
    staked.finalize(job_id, sender=outsider)
    staked.withdraw(sender=providers[0])
    assert staked.balances(providers[0]) == 0
