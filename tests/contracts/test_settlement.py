"""finalize for r >= 2: majority, every fault, no majority, timeouts; per-seat settlement of a
provider holding several seats; r = 1 claims never delivered; slash split; solvency.

Seats are drawn (market_helpers.take_seats), so each test gives its roles to the providers
drawn for the seats (one provider per seat unless the test wants otherwise)."""

import ape

from market_helpers import (
    CLIENT_BPS, COLLATERAL, FAULT_LOSING_DIGEST, FAULT_NO_COMMIT, FAULT_NO_REVEAL, FEE, HONEST_BPS,
    MIN_WINDOW, REWARD, SALT, SEAT, STATUS_CHALLENGED, STATUS_FINALIZED, STATUS_OPEN, STATUS_UNRESOLVED,
    WINDOW, advance, assert_solvent, claim_and_deliver, commit_all, draw_seats, draw_seats_until, post,
    reveal_all, seal, take_seats,
)
from eth_utils import keccak

STAKE = 10**24


def slashes(market, tx):
    return [(log.event_arguments["provider"], log.seat, log.amount, log.reason) for log in tx.events.filter(market.ProviderSlashed)]


def test_unanimous_round_pays_everyone(staked, client, providers, treasury, outsider, chain, token, everyone):
    (job_id,) = post(staked, client, r=3)
    seated = take_seats(staked, chain, job_id, outsider, providers)
    commit_all(staked, job_id, seated, [b"R"] * 3)
    reveal_all(staked, job_id, seated, [b"R"] * 3)
    tx = staked.finalize(job_id, sender=outsider)
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.result_digest, log.provider_pay, log.client_refund, log.slashed) == (
        STATUS_FINALIZED, keccak(b"R"), 3 * REWARD, 0, 0)
    for p in seated:
        assert staked.balances(p) == REWARD
        assert staked.provider_info(p).locked == 0 and staked.provider_info(p).free == STAKE
    for p in providers:
        if p not in seated:
            assert staked.balances(p) == 0 and staked.provider_info(p).free == STAKE
    assert staked.balances(treasury) == 3 * FEE and staked.balances(client) == 0
    j = staked.job(job_id)
    assert j.status == STATUS_FINALIZED and j.result_digest == keccak(b"R") and staked.escrow_of(job_id) == 0
    assert_solvent(staked, token, everyone, [job_id])
    with ape.reverts("jobs: already settled"):
        staked.finalize(job_id, sender=outsider)


def test_losing_digest_is_slashed_and_split(staked, client, providers, treasury, outsider, chain, token, everyone):
    (job_id,) = post(staked, client, r=3)
    a, b, c = take_seats(staked, chain, job_id, outsider, providers)
    commit_all(staked, job_id, [a, b, c], [b"R", b"R", b"wrong"])
    reveal_all(staked, job_id, [a, b, c], [b"R", b"R", b"wrong"])
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
    a, b, c = take_seats(staked, chain, job_id, outsider, providers)
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
    a, b, c, d = take_seats(staked, chain, job_id, outsider, providers)
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
    a, b, c = draw_seats(staked, chain, job_id, outsider, providers)
    for p in (a, b):  # c never takes the third seat
        staked.claim(job_id, sender=p)
    commit_all(staked, job_id, [a, b], [b"R", b"R"])
    advance(chain, 2 * WINDOW + 1)  # past the commit deadline
    reveal_all(staked, job_id, [a, b], [b"R", b"R"])
    tx = staked.finalize(job_id, sender=outsider)  # before the reveal deadline
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund) == (STATUS_FINALIZED, 2 * REWARD, SEAT)
    assert slashes(staked, tx) == []  # a drawn seat nobody took is not anybody's fault
    assert staked.provider_info(c).locked == 0 and staked.provider_info(c).free == STAKE


def test_nobody_committed_after_commit_deadline(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    take_seats(staked, chain, job_id, outsider, providers)
    advance(chain, 2 * WINDOW + 1)
    tx = staked.finalize(job_id, sender=outsider)
    assert [s[3] for s in slashes(staked, tx)] == [FAULT_NO_COMMIT, FAULT_NO_COMMIT]
    assert staked.balances(client) == 2 * SEAT


def test_provider_holding_two_seats_is_settled_per_seat(staked, client, providers, outsider, chain, token, everyone):
    """Drawn with replacement: a provider drawn for two seats takes both in one claim (collateral
    and JobClaimed per seat), commits and reveals both with one call, and is paid twice."""
    (job_id,) = post(staked, client, r=3)
    seated = draw_seats_until(staked, chain, job_id, outsider, providers, lambda d: len(set(d)) == 2)
    double = max(set(seated), key=seated.count)
    single = next(p for p in seated if p != double)
    mine = [s for s, p in enumerate(seated) if p == double]
    tx = staked.claim(job_id, sender=double)
    assert [(log.event_arguments["provider"], log.seat) for log in tx.events.filter(staked.JobClaimed)] == [(double, s) for s in mine]
    assert staked.provider_info(double).locked == 2 * COLLATERAL
    staked.claim(job_id, sender=single)
    assert staked.job(job_id).nclaimed == 3
    tx = staked.commit(job_id, seal(job_id, double, b"R"), sender=double)
    assert [log.seat for log in tx.events.filter(staked.SealCommitted)] == mine
    staked.commit(job_id, seal(job_id, single, b"wrong"), sender=single)
    tx = staked.reveal(job_id, b"R", SALT, sender=double)
    assert [log.seat for log in tx.events.filter(staked.ResultRevealed)] == mine
    staked.reveal(job_id, b"wrong", SALT, sender=single)
    tx = staked.finalize(job_id, sender=outsider)
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.result_digest, log.provider_pay, log.client_refund) == (STATUS_FINALIZED, keccak(b"R"), 2 * REWARD, SEAT)
    assert slashes(staked, tx) == [(single, seated.index(single), COLLATERAL, FAULT_LOSING_DIGEST)]
    assert staked.balances(double) == 2 * REWARD and staked.provider_info(double).locked == 0
    # The honest share goes once per paid seat's provider entry: the double seat holder gets two.
    each = COLLATERAL * HONEST_BPS // 10_000 // 2
    assert staked.stake_credits(double) == 2 * each
    assert_solvent(staked, token, everyone, [job_id])


def test_provider_holding_two_seats_is_slashed_per_seat(staked, client, providers, outsider, chain, token, everyone):
    (job_id,) = post(staked, client, r=3)
    seated = draw_seats_until(staked, chain, job_id, outsider, providers, lambda d: len(set(d)) == 2)
    double = max(set(seated), key=seated.count)
    single = next(p for p in seated if p != double)
    staked.claim(job_id, sender=double)
    staked.claim(job_id, sender=single)
    commit_all(staked, job_id, [single], [b"R"])  # the double seat holder never commits
    advance(chain, 2 * WINDOW + 1)
    reveal_all(staked, job_id, [single], [b"R"])
    tx = staked.finalize(job_id, sender=outsider)
    mine = [s for s, p in enumerate(seated) if p == double]
    assert slashes(staked, tx) == [(double, s, COLLATERAL, FAULT_NO_COMMIT) for s in mine]
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund, log.slashed) == (STATUS_UNRESOLVED, 0, 3 * SEAT, 2 * COLLATERAL)
    info = staked.provider_info(double)
    assert info.locked == 0 and info.free == STAKE - 2 * COLLATERAL
    assert staked.provider_info(single).locked == 0
    assert_solvent(staked, token, everyone, [job_id])


def test_seat_taken_after_committing_commits_on_its_own(staked, client, providers, outsider, chain, token, everyone):
    """A provider that committed may be drawn again for a seat its drawn provider left untaken
    (drawn again after half the minimum claim window) and take it, as an agent takes every seat
    drawn to it. The new seat commits on its own (its seal may differ), and each reveal opens
    the committed seats its opening matches: the honest holder is paid for both seats."""
    (job_id,) = post(staked, client, r=3)
    a, b, c = draw_seats(staked, chain, job_id, outsider, providers)
    for p in (a, b):  # c never takes seat 2
        staked.claim(job_id, sender=p)
    commit_all(staked, job_id, [a, b], [b"R", b"R"])
    advance(chain, MIN_WINDOW // 2)
    draw_seats_until(staked, chain, job_id, outsider, providers, lambda d: d[2] == a)
    tx = staked.claim(job_id, sender=a)
    assert [log.seat for log in tx.events.filter(staked.JobClaimed)] == [2]
    other_salt = b"\x02" * 32
    tx = staked.commit(job_id, seal(job_id, a, b"R", other_salt), sender=a)
    assert [log.seat for log in tx.events.filter(staked.SealCommitted)] == [2]
    with ape.reverts("jobs: already committed"):
        staked.commit(job_id, seal(job_id, a, b"R"), sender=a)
    assert staked.job(job_id).ncommitted == 3
    tx = staked.reveal(job_id, b"R", SALT, sender=a)  # all committed: reveals open
    assert [log.seat for log in tx.events.filter(staked.ResultRevealed)] == [0]
    tx = staked.reveal(job_id, b"R", other_salt, sender=a)
    assert [log.seat for log in tx.events.filter(staked.ResultRevealed)] == [2]
    with ape.reverts("jobs: already revealed"):
        staked.reveal(job_id, b"R", SALT, sender=a)
    staked.reveal(job_id, b"R", SALT, sender=b)
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == []
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund) == (STATUS_FINALIZED, 3 * REWARD, 0)
    assert staked.balances(a) == 2 * REWARD and staked.balances(b) == REWARD
    assert staked.provider_info(a).locked == 0
    assert_solvent(staked, token, everyone, [job_id])


def test_reveal_needs_an_opening_of_a_committed_seat(staked, client, providers, outsider, chain):
    """Two seats committed apart with different seals: an opening that matches neither is a seal
    mismatch and reveals nothing."""
    (job_id,) = post(staked, client, r=3)
    a, b, c = draw_seats(staked, chain, job_id, outsider, providers)
    for p in (a, b):
        staked.claim(job_id, sender=p)
    commit_all(staked, job_id, [a, b], [b"R", b"R"])
    advance(chain, MIN_WINDOW // 2)
    draw_seats_until(staked, chain, job_id, outsider, providers, lambda d: d[2] == a)
    staked.claim(job_id, sender=a)
    staked.commit(job_id, seal(job_id, a, b"R", b"\x02" * 32), sender=a)
    with ape.reverts("jobs: seal mismatch"):
        staked.reveal(job_id, b"R", b"\x03" * 32, sender=a)
    with ape.reverts("jobs: seal mismatch"):
        staked.reveal(job_id, b"other", SALT, sender=a)
    assert staked.job(job_id).nrevealed == 0


def test_r1_claimed_but_undelivered_is_slashed_at_its_deadline(staked, client, providers, outsider, chain, token, everyone):
    (job_id,) = post(staked, client, r=1)
    p = providers[0]
    staked.claim(job_id, sender=p)
    assert staked.provider_info(p).locked == COLLATERAL
    deadline = staked.job(job_id).claim_deadline  # the delivery deadline too
    advance(chain, deadline - 2 - chain.blocks.head.timestamp)  # the next block is at the deadline
    with ape.reverts("jobs: not finalizable yet"):  # at the deadline: p may still deliver
        staked.finalize(job_id, sender=outsider)
    advance(chain, 1)
    tx = staked.finalize(job_id, sender=outsider)
    assert slashes(staked, tx) == [(p, 0, COLLATERAL, FAULT_NO_COMMIT)]
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund, log.slashed) == (STATUS_UNRESOLVED, 0, SEAT, COLLATERAL)
    info = staked.provider_info(p)
    assert info.locked == 0 and info.free == STAKE - COLLATERAL
    # No honest side: client share plus the honest share to the client, the rest to the treasury.
    assert staked.balances(client) == SEAT
    assert staked.stake_credits(client) == COLLATERAL * (CLIENT_BPS + HONEST_BPS) // 10_000
    assert staked.job(job_id).status == STATUS_UNRESOLVED and staked.job(job_id).challenge_end == 0
    assert_solvent(staked, token, everyone, [job_id])


def test_reexecution_round_is_not_cut_short_at_its_claim_deadline(staked, client, providers, outsider, chain):
    """A challenged r = 1 job's re-execution round runs its commit and reveal windows: its seats
    cannot be slashed for not committing while the commit window is still open (the r = 1
    delivery deadline rule must not apply to the round)."""
    (job_id,) = post(staked, client, r=1)
    claim_and_deliver(staked, providers[0], [job_id], [b"R"])
    staked.challenge(job_id, sender=outsider)
    take_seats(staked, chain, job_id, outsider, providers)
    info = staked.job(job_id)
    assert info.status == STATUS_CHALLENGED and info.nclaimed == 3
    advance(chain, MIN_WINDOW)  # past the round's claim deadline, well inside its commit window
    assert chain.blocks.head.timestamp > info.claim_deadline and chain.blocks.head.timestamp < info.commit_deadline
    with ape.reverts("jobs: not finalizable yet"):
        staked.finalize(job_id, sender=outsider)


def test_finalize_many_skips_what_is_not_due(staked, client, providers, outsider, chain):
    done, pending = post(staked, client, r=2, n=2)
    seated = take_seats(staked, chain, done, outsider, providers)
    commit_all(staked, done, seated, [b"R", b"R"])
    reveal_all(staked, done, seated, [b"R", b"R"])
    tx = staked.finalize_many([done, pending, done, 99], sender=outsider)
    reasons = [(log.job_id, log.reason) for log in tx.events.filter(staked.ItemSkipped)]
    assert reasons == [(pending, "jobs: not finalizable yet"), (done, "jobs: already settled"), (99, "jobs: unknown job")]
    assert len(tx.events.filter(staked.JobFinalized)) == 1
    assert staked.job(pending).status == STATUS_OPEN
    with ape.reverts("jobs: unknown job"):
        staked.finalize(99, sender=outsider)


def test_recovery_never_blocked_by_pause(staked, client, providers, owner, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    seated = take_seats(staked, chain, job_id, outsider, providers)
    commit_all(staked, job_id, seated, [b"R", b"R"])
    staked.set_paused(True, sender=owner)
    reveal_all(staked, job_id, seated, [b"R", b"R"])
    staked.finalize(job_id, sender=outsider)
    staked.withdraw(sender=seated[0])
    assert staked.balances(seated[0]) == 0
