"""Claiming seats (drawn for r >= 2, first come for r == 1) and delivering (r == 1):
single calls revert, batches skip."""

import ape
from eth_utils import keccak, to_hex

from market_helpers import (
    CLIENT_BPS, COLLATERAL, FAULT_NO_COMMIT, HONEST_BPS, MIN_WINDOW, REWARD, SALT, SEAT, STATUS_CANCELLED, STATUS_DELIVERED,
    STATUS_UNRESOLVED, WINDOW, advance, assert_solvent, claim_and_deliver, draw_seats, draw_seats_until, post, seal,
)

ZERO = "0x" + "00" * 20
REDRAW_AFTER = MIN_WINDOW // 2  # untaken seats are drawn again this long after their draw


def skipped(market, tx):
    return [(log.job_id, log.reason) for log in tx.events.filter(market.ItemSkipped)]


def drawn_seats(market, tx):
    return [(log.event_arguments["provider"], log.seat) for log in tx.events.filter(market.SeatDrawn)]


def same_block(chain, *calls):
    """Mine (method, args, sender) calls as transactions of one new block, in order; return
    their receipts (a strict call that fails is a failed receipt, not an exception).
    Every other transaction here is its own block: this sends signed transactions straight
    into the pending block of ape's local test chain (py-evm) and mines it once."""
    provider = chain.provider
    nonces, hashes = {}, []
    for method, args, sender in calls:
        nonce = nonces.get(sender.address, sender.nonce)
        nonces[sender.address] = nonce + 1
        txn = method.as_transaction(*args, sender=sender, gas=2_000_000, nonce=nonce)
        raw = sender.sign_transaction(txn).serialize_transaction()
        hashes.append(provider.tester.backend.send_raw_transaction(raw))  # into the pending block
    provider.tester.ethereum_tester.mine_blocks(1)
    receipts = [provider.get_receipt(to_hex(h)) for h in hashes]
    assert len({r.block_number for r in receipts}) == 1
    return receipts


def test_claim_locks_collateral_and_fills_seats(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=3)
    drawn = draw_seats(staked, chain, job_id, outsider, providers)
    for seat, p in enumerate(drawn):
        assert staked.seat(job_id, seat).provider == p and not staked.seat(job_id, seat).claimed
        assert staked.assignment(job_id, p) == (False, 0, False, False)  # drawn, not taken
        tx = staked.claim(job_id, sender=p)
        (log,) = tx.events.filter(staked.JobClaimed)
        assert (log.job_id, log.event_arguments["provider"], log.seat) == (job_id, p, seat)
        assert staked.seat(job_id, seat).provider == p and staked.seat(job_id, seat).claimed
        assert staked.assignment(job_id, p) == (True, seat, False, False)
        info = staked.provider_info(p)
        assert info.locked == COLLATERAL and info.free == 10**24 - COLLATERAL
    assert staked.job(job_id).nclaimed == 3
    other = next(p for p in providers if p not in drawn)
    assert staked.assignment(job_id, other) == (False, 0, False, False)
    assert staked.assignment(job_id + 1, drawn[0]) == (False, 0, False, False)
    with ape.reverts("jobs: not drawn"):  # every seat taken: nothing left for anyone
        staked.claim(job_id, sender=other)


def test_claim_rejections(staked, client, providers, owner, outsider, chain):
    (job_id,) = post(staked, client, r=4)
    with ape.reverts("jobs: unknown job"):
        staked.claim(job_id + 7, sender=providers[0])
    a, b, c, d = draw_seats(staked, chain, job_id, outsider, providers)
    staked.claim(job_id, sender=a)
    with ape.reverts("jobs: not drawn"):  # its seat is taken: nothing more drawn to it
        staked.claim(job_id, sender=a)
    staked.set_paused(True, sender=owner)
    with ape.reverts("params: paused"):
        staked.claim(job_id, sender=b)
    staked.set_paused(False, sender=owner)
    staked.update_provider([], 0, sender=b)  # stopped serving the model after its draw
    with ape.reverts("staking: model not served"):
        staked.claim(job_id, sender=b)
    staked.request_unbond(10**24, sender=c)  # no free stake left
    with ape.reverts("staking: insufficient free stake"):
        staked.claim(job_id, sender=c)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.claim(job_id, sender=d)


def test_single_provider_claim_rejections(staked, client, providers, owner, accounts, chain):
    (job_id,) = post(staked, client, r=1)
    stranger = accounts[11]  # registered for nothing
    staked.register([], 0, sender=stranger)
    with ape.reverts("staking: model not served"):
        staked.claim(job_id, sender=stranger)
    staked.request_unbond(10**24, sender=providers[1])  # no free stake left
    with ape.reverts("staking: insufficient free stake"):
        staked.claim(job_id, sender=providers[1])
    staked.set_paused(True, sender=owner)
    with ape.reverts("params: paused"):
        staked.claim(job_id, sender=providers[0])
    staked.set_paused(False, sender=owner)
    tx = staked.claim(job_id, sender=providers[0])
    assert not tx.events.filter(staked.JobClaimed)  # r == 1: the claim shows in seat(job, 0) only
    assert staked.provider_info(providers[0]).locked == COLLATERAL
    assert (staked.seat(job_id, 0).provider, staked.seat(job_id, 0).claimed) == (providers[0], True)
    for p in (providers[2], providers[0]):
        with ape.reverts("jobs: already claimed"):
            staked.claim(job_id, sender=p)
    (late,) = post(staked, client, r=1)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.claim(late, sender=providers[2])


def test_claim_many_skips_what_it_cannot_take(staked, client, providers, outsider, chain):
    ids = post(staked, client, r=2, n=3)
    for p in dict.fromkeys(draw_seats(staked, chain, ids[1], outsider, providers)):
        staked.claim(ids[1], sender=p)  # full
    (p, _) = draw_seats(staked, chain, ids[0], outsider, providers)
    draw_seats_until(staked, chain, ids[2], outsider, providers, lambda d: p in d)
    tx = staked.claim_many([ids[0], ids[1], ids[2], ids[2], 12345], sender=p)
    assert skipped(staked, tx) == [
        (ids[1], "jobs: not drawn"),
        (ids[2], "jobs: not drawn"),  # its seats there are taken by the first item
        (12345, "jobs: unknown job"),
    ]
    assert staked.assignment(ids[0], p)[0] and staked.assignment(ids[2], p)[0]


def test_not_drawn_caller_is_skipped_and_its_draw_stands(staked, client, providers, outsider):
    (job_id,) = post(staked, client, r=2)
    tx = staked.claim_many([job_id], sender=outsider)  # draws, then finds no seat of its own
    assert skipped(staked, tx) == [(job_id, "jobs: not drawn")]
    drawn = drawn_seats(staked, tx)
    assert [seat for _, seat in drawn] == [0, 1]
    assert [(staked.seat(job_id, s).provider, staked.seat(job_id, s).claimed) for s in (0, 1)] == [
        (provider, False) for provider, _ in drawn]
    other = next(p for p in providers if p.address not in {provider for provider, _ in drawn})
    with ape.reverts("jobs: not drawn"):
        staked.claim(job_id, sender=other)
    tx = staked.claim_many([job_id], sender=other)
    assert skipped(staked, tx) == [(job_id, "jobs: not drawn")] and drawn_seats(staked, tx) == []  # not redrawn
    assert staked.job(job_id).nclaimed == 0


def test_strict_claim_by_a_caller_not_drawn_undoes_its_draw(staked, client, outsider):
    (job_id,) = post(staked, client, r=2)
    with ape.reverts("jobs: not drawn"):
        staked.claim(job_id, sender=outsider)
    assert staked.seat(job_id, 0).provider == staked.seat(job_id, 1).provider == ZERO
    tx = staked.claim_many([job_id], sender=outsider)
    assert [seat for _, seat in drawn_seats(staked, tx)] == [0, 1]  # drawn now, for the first time


def test_draw_not_ready_in_the_post_block(staked, client, providers, outsider, chain, model_id):
    job_id = staked.next_batch_id() << 8
    posted, keeper, strict = same_block(
        chain,
        (staked.post_job, [model_id, b"in", 2, REWARD, WINDOW, WINDOW, WINDOW], client),
        (staked.claim_many, [[job_id]], outsider),
        (staked.claim, [job_id], providers[0]),
    )
    assert [log.job_id for log in posted.events.filter(staked.JobPosted)] == [job_id]
    assert skipped(staked, keeper) == [(job_id, "jobs: draw not ready")] and drawn_seats(staked, keeper) == []
    assert strict.failed and staked.seat(job_id, 0).provider == ZERO
    tx = staked.claim_many([job_id], sender=outsider)  # the next block draws
    assert [seat for _, seat in drawn_seats(staked, tx)] == [0, 1]


def test_draw_not_ready_in_the_challenge_block(staked, client, providers, outsider, clients, chain):
    (job_id,) = post(staked, client, r=1)
    claim_and_deliver(staked, providers[0], [job_id], [b"res"])
    challenged, keeper = same_block(
        chain, (staked.challenge, [job_id], outsider), (staked.claim_many, [[job_id]], clients[1]))
    assert not challenged.failed
    assert skipped(staked, keeper) == [(job_id, "jobs: draw not ready")] and drawn_seats(staked, keeper) == []
    tx = staked.claim_many([job_id], sender=clients[1])
    assert [seat for _, seat in drawn_seats(staked, tx)] == [1, 2, 3]


def test_provider_drawn_for_two_seats_takes_both_with_one_claim(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    p, _ = draw_seats_until(staked, chain, job_id, outsider, providers, lambda d: d[0] == d[1])
    tx = staked.claim(job_id, sender=p)
    assert [(log.event_arguments["provider"], log.seat) for log in tx.events.filter(staked.JobClaimed)] == [
        (p, 0), (p, 1)]
    assert staked.provider_info(p).locked == 2 * COLLATERAL and staked.job(job_id).nclaimed == 2
    assert staked.assignment(job_id, p) == (True, 0, False, False)
    tx = staked.commit(job_id, seal(job_id, p, b"R"), sender=p)  # one seal for both seats
    assert [log.seat for log in tx.events.filter(staked.SealCommitted)] == [0, 1]
    assert staked.job(job_id).ncommitted == 2
    tx = staked.reveal(job_id, b"R", SALT, sender=p)  # every seat committed: reveals open
    assert [(log.seat, log.digest) for log in tx.events.filter(staked.ResultRevealed)] == [
        (0, keccak(b"R")), (1, keccak(b"R"))]
    tx = staked.finalize(job_id, sender=outsider)
    assert tx.events.filter(staked.JobFinalized)[0].provider_pay == 2 * REWARD
    assert staked.balances(p) == 2 * REWARD and staked.provider_info(p).locked == 0


def test_untaken_seats_are_drawn_again_after_half_the_min_claim_window(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=3)
    a, b, c = draw_seats(staked, chain, job_id, outsider, providers)
    drawn_at = chain.blocks.head.timestamp
    staked.claim(job_id, sender=a)
    chain.pending_timestamp = drawn_at + REDRAW_AFTER
    tx = staked.claim_many([job_id], sender=outsider)
    assert chain.blocks.head.timestamp == drawn_at + REDRAW_AFTER
    assert drawn_seats(staked, tx) == []  # not yet
    assert [staked.seat(job_id, s).provider for s in (0, 1, 2)] == [a, b, c]
    tx = staked.claim_many([job_id], sender=outsider)  # one second later
    assert chain.blocks.head.timestamp > drawn_at + REDRAW_AFTER
    redrawn = drawn_seats(staked, tx)
    assert [seat for _, seat in redrawn] == [1, 2]  # the taken seat keeps its holder
    assert (staked.seat(job_id, 0).provider, staked.seat(job_id, 0).claimed) == (a, True)
    by_address = {p.address: p for p in providers}
    holder = by_address[staked.seat(job_id, 1).provider]
    tx = staked.claim(job_id, sender=holder)
    assert 1 in [log.seat for log in tx.events.filter(staked.JobClaimed)]


def test_claim_deadline_ends_claiming_of_drawn_seats(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    a, b = draw_seats(staked, chain, job_id, outsider, providers)
    staked.claim(job_id, sender=a)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.claim(job_id, sender=b)
    tx = staked.claim_many([job_id], sender=outsider)
    assert skipped(staked, tx) == [(job_id, "jobs: claim deadline passed")] and drawn_seats(staked, tx) == []
    assert staked.job(job_id).nclaimed == 1


def test_deliver_single_provider(staked, client, providers):
    (job_id,) = post(staked, client, r=1)
    staked.claim(job_id, sender=providers[0])
    assert staked.provider_info(providers[0]).locked == COLLATERAL  # locked at the claim
    tx = staked.deliver(job_id, b"embedding", sender=providers[0])
    (log,) = tx.events.filter(staked.ResultRevealed)
    assert (log.event_arguments["provider"], log.seat, log.digest, log.result) == (providers[0], 0, keccak(b"embedding"), b"embedding")
    j = staked.job(job_id)
    assert j.status == STATUS_DELIVERED and j.result_digest == keccak(b"embedding")
    assert j.challenge_end == staked.job(job_id).challenge_end > j.posted_at
    assert staked.provider_info(providers[0]).locked == COLLATERAL
    assert staked.pending_payouts(providers[0]).pay == REWARD
    assert staked.escrow_of(job_id) == 0  # moved to the payout bucket
    for p in (providers[1], providers[0]):
        with ape.reverts("jobs: not open"):
            staked.deliver(job_id, b"again", sender=p)


def test_deliver_rejections(staked, client, providers, owner, chain):
    (job_id,) = post(staked, client, r=1)
    (multi,) = post(staked, client, r=2)
    p0, p1 = providers[:2]
    with ape.reverts("jobs: unknown job"):
        staked.deliver(job_id + 3, b"x", sender=p0)
    with ape.reverts("jobs: not single-provider"):
        staked.deliver(multi, b"x", sender=p0)
    with ape.reverts("jobs: not your seat"):  # nobody claimed it
        staked.deliver(job_id, b"x", sender=p0)
    staked.claim(job_id, sender=p0)
    with ape.reverts("jobs: not your seat"):
        staked.deliver(job_id, b"x", sender=p1)
    with ape.reverts("jobs: use deliver"):  # an r == 1 seat never commits
        staked.commit(job_id, seal(job_id, p0, b"x"), sender=p0)
    with ape.reverts("jobs: empty result"):
        staked.deliver(job_id, b"", sender=p0)
    staked.set_paused(True, sender=owner)
    with ape.reverts("params: paused"):
        staked.deliver(job_id, b"x", sender=p0)
    staked.set_paused(False, sender=owner)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.deliver(job_id, b"x", sender=p0)


def test_deliver_in_the_claims_block_is_skipped(staked, client, providers, chain):
    (job_id,) = post(staked, client, r=1)
    p = providers[0]
    claimed, batch, strict = same_block(
        chain,
        (staked.claim, [job_id], p),
        (staked.deliver_many, [[job_id], [b"res"]], p),
        (staked.deliver, [job_id, b"res"], p),
    )
    assert not claimed.failed and skipped(staked, batch) == [(job_id, "jobs: claimed in this block")]
    assert strict.failed and staked.job(job_id).nclaimed == 1 and staked.pending_payouts(p).pay == 0
    staked.deliver(job_id, b"res", sender=p)  # any later block
    assert staked.job(job_id).status == STATUS_DELIVERED and staked.pending_payouts(p).pay == REWARD


def test_copied_delivery_is_not_your_seat(staked, client, providers, chain):
    """A copier re-sends the claimant's exact deliver calldata ahead of it in the same block:
    skipped (or reverted); the claimant still delivers and is paid."""
    (job_id,) = post(staked, client, r=1)
    p, copier = providers[:2]
    staked.claim(job_id, sender=p)
    copied_batch, copied, original = same_block(
        chain,
        (staked.deliver_many, [[job_id], [b"res"]], copier),
        (staked.deliver, [job_id, b"res"], copier),
        (staked.deliver, [job_id, b"res"], p),
    )
    assert copied.transaction.data == original.transaction.data
    assert skipped(staked, copied_batch) == [(job_id, "jobs: not your seat")] and copied.failed
    assert not original.failed
    (log,) = original.events.filter(staked.ResultRevealed)
    assert log.event_arguments["provider"] == p
    assert staked.pending_payouts(p).pay == REWARD and staked.pending_payouts(copier).pay == 0
    assert staked.provider_info(copier).locked == 0


def test_claimed_single_job_not_delivered_is_slashed_at_finalize(staked, client, providers, outsider, chain, token,
                                                                 everyone):
    (job_id,) = post(staked, client, r=1)
    p = providers[0]
    staked.claim(job_id, sender=p)
    with ape.reverts("jobs: not finalizable yet"):
        staked.finalize(job_id, sender=outsider)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.deliver(job_id, b"late", sender=p)
    tx = staked.finalize(job_id, sender=outsider)
    assert [(log.event_arguments["provider"], log.seat, log.reason) for log in tx.events.filter(
        staked.ProviderSlashed)] == [(p, 0, FAULT_NO_COMMIT)]
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.provider_pay, log.client_refund, log.slashed) == (STATUS_UNRESOLVED, 0, SEAT, COLLATERAL)
    assert staked.balances(client) == SEAT and staked.escrow_of(job_id) == 0
    assert staked.stake_credits(client) == COLLATERAL * (CLIENT_BPS + HONEST_BPS) // 10_000  # no honest side
    info = staked.provider_info(p)
    assert (info.locked, info.free) == (0, 10**24 - COLLATERAL)
    assert staked.job(job_id).status == STATUS_UNRESOLVED
    assert_solvent(staked, token, everyone, [job_id])


def test_cancel_refused_once_claimed(staked, client, providers, outsider, chain):
    (single,) = post(staked, client, r=1)
    staked.claim(single, sender=providers[0])  # claimed, not delivered
    with ape.reverts("jobs: already claimed"):
        staked.cancel(single, sender=client)
    (multi,) = post(staked, client, r=2)
    a, _ = draw_seats(staked, chain, multi, outsider, providers)
    staked.claim(multi, sender=a)
    with ape.reverts("jobs: already claimed"):
        staked.cancel(multi, sender=client)


def test_cancel_allowed_after_a_draw_nobody_took(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    a, _ = draw_seats(staked, chain, job_id, outsider, providers)
    tx = staked.cancel(job_id, sender=client)
    assert tx.events.filter(staked.JobFinalized)[0].status == STATUS_CANCELLED
    with ape.reverts("jobs: not claimable"):
        staked.claim(job_id, sender=a)


def test_commit_and_reveal(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    a, b = draw_seats(staked, chain, job_id, outsider, providers)
    staked.claim(job_id, sender=a)
    tx = staked.commit(job_id, seal(job_id, a, b"R"), sender=a)
    (log,) = tx.events.filter(staked.SealCommitted)
    assert (log.event_arguments["provider"], log.seat, log.seal) == (a, 0, seal(job_id, a, b"R"))
    assert staked.seat(job_id, 0).committed and staked.seat(job_id, 0).word == seal(job_id, a, b"R")
    with ape.reverts("jobs: reveal not open"):  # seat 1 not even claimed
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    staked.claim(job_id, sender=b)
    staked.commit(job_id, seal(job_id, b, b"R"), sender=b)
    tx = staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    (log,) = tx.events.filter(staked.ResultRevealed)
    assert (log.event_arguments["provider"], log.seat, log.digest, log.result) == (a, 0, keccak(b"R"), b"R")
    assert staked.seat(job_id, 0).word == keccak(b"R") and staked.assignment(job_id, a) == (True, 0, True, True)
    assert staked.job(job_id).nrevealed == 1


def test_commit_rejections(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    a, b = draw_seats(staked, chain, job_id, outsider, providers)
    c = next(p for p in providers if p not in (a, b))
    with ape.reverts("jobs: unknown job"):
        staked.commit(job_id + 9, seal(job_id, a, b"R"), sender=a)
    with ape.reverts("jobs: not assigned"):  # drawn, not taken yet
        staked.commit(job_id, seal(job_id, a, b"R"), sender=a)
    staked.claim(job_id, sender=a)
    with ape.reverts("jobs: empty seal"):
        staked.commit(job_id, bytes(32), sender=a)
    staked.commit(job_id, seal(job_id, a, b"R"), sender=a)
    with ape.reverts("jobs: already committed"):
        staked.commit(job_id, seal(job_id, a, b"S"), sender=a)
    staked.claim(job_id, sender=b)
    with ape.reverts("jobs: not assigned"):
        staked.commit(job_id, seal(job_id, c, b"R"), sender=c)
    advance(chain, 2 * WINDOW + 1)
    with ape.reverts("jobs: commit deadline passed"):
        staked.commit(job_id, seal(job_id, b, b"R"), sender=b)
    advance(chain, WINDOW)
    staked.finalize(job_id, sender=c)  # b never committed, a never revealed
    with ape.reverts("jobs: not active"):
        staked.commit(job_id, seal(job_id, b, b"R"), sender=b)


def test_reveal_rejections(staked, client, providers, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    a, b = draw_seats(staked, chain, job_id, outsider, providers)
    c = next(p for p in providers if p not in (a, b))
    staked.claim(job_id, sender=a)
    staked.claim(job_id, sender=b)
    staked.commit(job_id, seal(job_id, a, b"R"), sender=a)
    with ape.reverts("jobs: unknown job"):
        staked.reveal(job_id + 5, b"R", b"\x01" * 32, sender=a)
    with ape.reverts("jobs: not assigned"):
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=c)
    with ape.reverts("jobs: not committed"):
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=b)
    with ape.reverts("jobs: reveal not open"):
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    advance(chain, 2 * WINDOW + 1)  # commit deadline passed: reveals open without b
    with ape.reverts("jobs: seal mismatch"):
        staked.reveal(job_id, b"other", b"\x01" * 32, sender=a)
    with ape.reverts("jobs: seal mismatch"):
        staked.reveal(job_id, b"R", b"\x02" * 32, sender=a)
    staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    with ape.reverts("jobs: already revealed"):
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    (late,) = post(staked, client, r=2)
    d, _ = draw_seats(staked, chain, late, outsider, providers)
    staked.claim(late, sender=d)
    staked.commit(late, seal(late, d, b"R"), sender=d)
    advance(chain, 3 * WINDOW + 1)
    with ape.reverts("jobs: reveal deadline passed"):
        staked.reveal(late, b"R", b"\x01" * 32, sender=d)


def test_copied_seal_is_useless(staked, client, providers, outsider, chain):
    """b copies a's seal; it can only be revealed with a's address, so b is slashed."""
    (job_id,) = post(staked, client, r=2)
    a, b = draw_seats(staked, chain, job_id, outsider, providers)
    staked.claim(job_id, sender=a)
    staked.claim(job_id, sender=b)
    stolen = seal(job_id, a, b"R")
    staked.commit(job_id, stolen, sender=a)
    staked.commit(job_id, stolen, sender=b)
    staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    with ape.reverts("jobs: seal mismatch"):
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=b)


def test_batch_commit_and_reveal_are_all_or_nothing(staked, client, providers, outsider, chain):
    ids = post(staked, client, r=2, n=3)
    a, b = providers[:2]
    for p in providers[2:]:
        staked.request_unbond(10**24, sender=p)  # only a and b can be drawn
    for j in ids:
        draw_seats(staked, chain, j, outsider, [a, b])  # a and b: one seat each
    staked.claim_many(ids, sender=a)
    staked.claim_many(ids[:2], sender=b)
    seals = [seal(j, a, b"R%d" % j) for j in ids]
    with ape.reverts("jobs: length mismatch"):
        staked.commit_many(ids, seals[:2], sender=a)
    with ape.reverts("jobs: not assigned"):
        staked.commit_many(ids, [seal(j, b, b"R%d" % j) for j in ids], sender=b)
    assert not staked.assignment(ids[0], b)[2]  # nothing committed
    staked.commit_many(ids, seals, sender=a)
    staked.commit_many(ids[:2], [seal(j, b, b"R%d" % j) for j in ids[:2]], sender=b)
    results = [b"R%d" % j for j in ids]
    with ape.reverts("jobs: length mismatch"):
        staked.reveal_many(ids, results, [b"\x01" * 32] * 2, sender=a)
    with ape.reverts("jobs: reveal not open"):  # ids[2] has a free seat
        staked.reveal_many(ids, results, [b"\x01" * 32] * 3, sender=a)
    staked.reveal_many(ids[:2], results[:2], [b"\x01" * 32] * 2, sender=a)
    assert all(staked.assignment(j, a)[3] for j in ids[:2])


def test_seat_view_bounds(staked, client):
    (job_id,) = post(staked, client, r=2)
    assert staked.seat(job_id, 6).provider == ZERO
    with ape.reverts("jobs: bad seat"):
        staked.seat(job_id, 7)


def test_batch_bounds(staked, providers):
    """Id-only batches take MAX_ID_BATCH items, result batches MAX_RESULT_BATCH; one more
    reverts (the bound is the calldata check of the DynArray)."""
    unknown = [10**6 + i for i in range(257)]
    tx = staked.claim_many(unknown[:256], sender=providers[0])
    assert len(skipped(staked, tx)) == 256
    assert len(skipped(staked, staked.finalize_many(unknown[:256], sender=providers[0]))) == 256
    assert len(skipped(staked, staked.deliver_many(unknown[:64], [b"r"] * 64, sender=providers[0]))) == 64
    for call, args in ((staked.claim_many, (unknown,)), (staked.finalize_many, (unknown,)),
                       (staked.deliver_many, (unknown[:65], [b"r"] * 65))):
        with ape.reverts():
            call(*args, sender=providers[0])
