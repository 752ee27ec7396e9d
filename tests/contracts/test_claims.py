"""Claiming seats (r >= 2) and delivering (r == 1): single calls revert, batches skip."""

import ape
from eth_utils import keccak

from market_helpers import (
    COLLATERAL, REWARD, STATUS_DELIVERED, WINDOW, advance, post, seal,
)


def skipped(market, tx):
    return [(log.job_id, log.reason) for log in tx.events.filter(market.ItemSkipped)]


def test_claim_locks_collateral_and_fills_seats(staked, client, providers):
    (job_id,) = post(staked, client, r=3)
    for seat, p in enumerate(providers[:3]):
        tx = staked.claim(job_id, sender=p)
        (log,) = tx.events.filter(staked.JobClaimed)
        assert (log.job_id, log.event_arguments["provider"], log.seat) == (job_id, p, seat)
        assert staked.seat(job_id, seat).provider == p
        assert staked.assignment(job_id, p) == (True, seat, False, False)
        info = staked.provider_info(p)
        assert info.locked == COLLATERAL and info.free == 10**24 - COLLATERAL
    assert staked.job(job_id).nclaimed == 3
    assert staked.assignment(job_id, providers[3]) == (False, 0, False, False)
    assert staked.assignment(job_id + 1, providers[0]) == (False, 0, False, False)
    with ape.reverts("jobs: no free seat"):
        staked.claim(job_id, sender=providers[3])


def test_claim_rejections(staked, client, providers, accounts, owner, chain):
    (job_id,) = post(staked, client, r=2)
    (single,) = post(staked, client, r=1)
    with ape.reverts("jobs: unknown job"):
        staked.claim(job_id + 7, sender=providers[0])
    with ape.reverts("jobs: use deliver"):
        staked.claim(single, sender=providers[0])
    staked.claim(job_id, sender=providers[0])
    with ape.reverts("jobs: already assigned"):
        staked.claim(job_id, sender=providers[0])
    stranger = accounts[11]  # registered for nothing
    staked.register([], 0, sender=stranger)
    with ape.reverts("staking: model not served"):
        staked.claim(job_id, sender=stranger)
    staked.request_unbond(10**24, sender=providers[1])  # no free stake left
    with ape.reverts("staking: insufficient free stake"):
        staked.claim(job_id, sender=providers[1])
    staked.set_paused(True, sender=owner)
    with ape.reverts("params: paused"):
        staked.claim(job_id, sender=providers[2])
    staked.set_paused(False, sender=owner)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.claim(job_id, sender=providers[2])


def test_claim_many_skips_lost_races(staked, client, providers):
    ids = post(staked, client, r=2, n=3)
    staked.claim(ids[1], sender=providers[0])
    staked.claim(ids[1], sender=providers[1])
    tx = staked.claim_many([ids[0], ids[1], ids[2], ids[2], 12345], sender=providers[2])
    assert skipped(staked, tx) == [
        (ids[1], "jobs: no free seat"),
        (ids[2], "jobs: already assigned"),
        (12345, "jobs: unknown job"),
    ]
    assert staked.assignment(ids[0], providers[2])[0] and staked.assignment(ids[2], providers[2])[0]


def test_deliver_single_provider(staked, client, providers, model_id):
    (job_id,) = post(staked, client, r=1)
    tx = staked.deliver(job_id, b"embedding", sender=providers[0])
    (log,) = tx.events.filter(staked.ResultRevealed)
    assert (log.event_arguments["provider"], log.seat, log.digest, log.result) == (providers[0], 0, keccak(b"embedding"), b"embedding")
    j = staked.job(job_id)
    assert j.status == STATUS_DELIVERED and j.result_digest == keccak(b"embedding")
    assert j.challenge_end == staked.job(job_id).challenge_end > j.posted_at
    assert staked.provider_info(providers[0]).locked == COLLATERAL
    assert staked.pending_payouts(providers[0]).pay == REWARD
    assert staked.escrow_of(job_id) == 0  # moved to the payout bucket
    with ape.reverts("jobs: not claimable"):
        staked.deliver(job_id, b"again", sender=providers[1])


def test_deliver_rejections(staked, client, providers, owner, accounts, chain):
    (job_id,) = post(staked, client, r=1)
    (multi,) = post(staked, client, r=2)
    with ape.reverts("jobs: unknown job"):
        staked.deliver(job_id + 3, b"x", sender=providers[0])
    with ape.reverts("jobs: not single-provider"):
        staked.deliver(multi, b"x", sender=providers[0])
    with ape.reverts("jobs: empty result"):
        staked.deliver(job_id, b"", sender=providers[0])
    stranger = accounts[11]
    staked.register([], 0, sender=stranger)
    with ape.reverts("staking: model not served"):
        staked.deliver(job_id, b"x", sender=stranger)
    staked.request_unbond(10**24, sender=providers[1])
    with ape.reverts("staking: insufficient free stake"):
        staked.deliver(job_id, b"x", sender=providers[1])
    staked.set_paused(True, sender=owner)
    with ape.reverts("params: paused"):
        staked.deliver(job_id, b"x", sender=providers[0])
    staked.set_paused(False, sender=owner)
    advance(chain, WINDOW + 1)
    with ape.reverts("jobs: claim deadline passed"):
        staked.deliver(job_id, b"x", sender=providers[0])


def test_deliver_many_skips_taken_jobs(staked, client, providers):
    ids = post(staked, client, r=1, n=3)
    staked.deliver(ids[1], b"first", sender=providers[0])
    tx = staked.deliver_many(ids, [b"a", b"b", b"c"], sender=providers[1])
    assert skipped(staked, tx) == [(ids[1], "jobs: not claimable")]
    assert [staked.job(j).result_digest for j in ids] == [keccak(b"a"), keccak(b"first"), keccak(b"c")]
    assert staked.pending_payouts(providers[1]).pay == 2 * REWARD
    with ape.reverts("jobs: length mismatch"):
        staked.deliver_many(ids, [b"a"], sender=providers[1])


def test_commit_and_reveal(staked, client, providers):
    (job_id,) = post(staked, client, r=2)
    a, b = providers[:2]
    staked.claim(job_id, sender=a)
    tx = staked.commit(job_id, seal(job_id, a, b"R"), sender=a)
    (log,) = tx.events.filter(staked.SealCommitted)
    assert (log.event_arguments["provider"], log.seat, log.seal) == (a, 0, seal(job_id, a, b"R"))
    assert staked.seat(job_id, 0).committed and staked.seat(job_id, 0).word == seal(job_id, a, b"R")
    with ape.reverts("jobs: reveal not open"):  # seat 1 not even claimed
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    staked.claim(job_id, sender=b)
    staked.commit(job_id, seal(job_id, b, b"R"), sender=b)
    assert staked.seal_of(job_id, b, b"R", b"\x01" * 32) == seal(job_id, b, b"R")
    tx = staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    (log,) = tx.events.filter(staked.ResultRevealed)
    assert (log.event_arguments["provider"], log.seat, log.digest, log.result) == (a, 0, keccak(b"R"), b"R")
    assert staked.seat(job_id, 0).word == keccak(b"R") and staked.assignment(job_id, a) == (True, 0, True, True)
    assert staked.job(job_id).nrevealed == 1


def test_commit_rejections(staked, client, providers, chain):
    (job_id,) = post(staked, client, r=2)
    a, b, c = providers[:3]
    with ape.reverts("jobs: unknown job"):
        staked.commit(job_id + 9, seal(job_id, a, b"R"), sender=a)
    with ape.reverts("jobs: not assigned"):
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


def test_reveal_rejections(staked, client, providers, chain):
    (job_id,) = post(staked, client, r=2)
    a, b, c = providers[:3]
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
    staked.claim(late, sender=a)
    staked.commit(late, seal(late, a, b"R"), sender=a)
    advance(chain, 3 * WINDOW + 1)
    with ape.reverts("jobs: reveal deadline passed"):
        staked.reveal(late, b"R", b"\x01" * 32, sender=a)


def test_copied_seal_is_useless(staked, client, providers, chain):
    """b copies a's seal; it can only be revealed with a's address, so b is slashed."""
    (job_id,) = post(staked, client, r=2)
    a, b = providers[:2]
    staked.claim(job_id, sender=a)
    staked.claim(job_id, sender=b)
    stolen = seal(job_id, a, b"R")
    staked.commit(job_id, stolen, sender=a)
    staked.commit(job_id, stolen, sender=b)
    staked.reveal(job_id, b"R", b"\x01" * 32, sender=a)
    with ape.reverts("jobs: seal mismatch"):
        staked.reveal(job_id, b"R", b"\x01" * 32, sender=b)


def test_batch_commit_and_reveal_are_all_or_nothing(staked, client, providers):
    ids = post(staked, client, r=2, n=3)
    a, b = providers[:2]
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
    assert staked.seat(job_id, 6).provider == "0x" + "00" * 20
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
