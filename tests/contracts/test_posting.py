"""Posting jobs: escrow, events, stored hashes, ids, validation; client cancel."""

import ape
import pytest
from eth_utils import keccak

from market_helpers import (
    MIN_WINDOW, REWARD, SEAT, STATUS_CANCELLED, STATUS_OPEN, WINDOW, advance, assert_solvent, claim_and_deliver,
    draw_seats, post,
)


def test_post_job_escrows_full_price_and_emits_input(staked, client, token, model_id):
    before = token.balanceOf(client)
    tx = staked.post_job(model_id, b"hello world", 3, REWARD, 120, 240, 360, sender=client)
    (log,) = tx.events.filter(staked.JobPosted)
    job_id = log.job_id
    now = staked.job(job_id).posted_at
    assert job_id == staked.next_batch_id() - 1 << 8
    assert (log.client, log.model_id, log.r, log.reward, log.input) == (client, model_id, 3, REWARD, b"hello world")
    assert (log.claim_deadline, log.commit_deadline, log.reveal_deadline) == (now + 120, now + 360, now + 720)
    assert token.balanceOf(client) == before - 3 * SEAT
    assert staked.escrow_of(job_id) == 3 * SEAT == staked.job_price(3, REWARD, 1)
    j = staked.job(job_id)
    assert j.status == STATUS_OPEN and j.input_hash == keccak(b"hello world") and j.client == client
    assert (j.claim_deadline, j.commit_deadline, j.reveal_deadline) == (now + 120, now + 360, now + 720)
    assert j.fee_per_seat == SEAT - REWARD and j.collateral_per_seat == 5 * REWARD


def test_post_jobs_batch_ids_are_consecutive(staked, client, token):
    before = token.balanceOf(client)
    ids = post(staked, client, r=2, n=5)
    assert ids == list(range(ids[0], ids[0] + 5)) and ids[0] % 256 == 0
    assert token.balanceOf(client) == before - 5 * 2 * SEAT
    for i, job_id in enumerate(ids):
        assert staked.job(job_id).input_hash == keccak(b"input %d" % i)
    with ape.reverts("jobs: unknown job"):
        staked.job(ids[-1] + 1)


def test_post_uses_internal_balance_before_transfer(staked, client, token, everyone):
    staked.deposit(SEAT, sender=client)  # covers one seat; the rest is pulled
    before = token.balanceOf(client)
    (job_id,) = post(staked, client, r=3)
    assert staked.balances(client) == 0
    assert token.balanceOf(client) == before - 2 * SEAT
    staked.deposit(10 * SEAT, sender=client)
    before = token.balanceOf(client)
    post(staked, client, r=3)
    assert staked.balances(client) == 7 * SEAT and token.balanceOf(client) == before
    assert_solvent(staked, token, everyone, [job_id, job_id + 256])


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"r": 0}, "jobs: bad redundancy"),
        ({"r": 8}, "jobs: bad redundancy"),
        ({"reward": 0}, "jobs: bad reward"),
        ({"reward": 2**96}, "jobs: bad reward"),
        ({"windows": (0, WINDOW, WINDOW)}, "jobs: window too short"),
        ({"windows": (WINDOW, MIN_WINDOW - 1, WINDOW)}, "jobs: window too short"),
        ({"windows": (WINDOW, WINDOW, 0)}, "jobs: window too short"),
        ({"windows": (30 * 86_400 + 1, WINDOW, WINDOW)}, "jobs: bad window"),
        ({"model_id": keccak(text="nope")}, "models: unknown model"),
    ],
)
def test_post_rejects_bad_terms(staked, client, kwargs, reason):
    with ape.reverts(reason):
        post(staked, client, **kwargs)


def test_post_rejects_empty_batch_and_empty_input(staked, client, model_id):
    with ape.reverts("jobs: empty batch"):
        staked.post_jobs(model_id, [], 1, REWARD, WINDOW, WINDOW, WINDOW, sender=client)
    with ape.reverts("jobs: empty input"):
        staked.post_job(model_id, b"", 1, REWARD, WINDOW, WINDOW, WINDOW, sender=client)
    with ape.reverts("jobs: empty input"):
        staked.post_jobs(model_id, [b"x", b""], 1, REWARD, WINDOW, WINDOW, WINDOW, sender=client)


def test_post_rejects_inactive_model_and_pause(staked, client, owner, model_id):
    staked.set_model_active(model_id, False, sender=owner)
    with ape.reverts("models: inactive"):
        post(staked, client)
    staked.set_model_active(model_id, True, sender=owner)
    staked.set_paused(True, sender=owner)
    with ape.reverts("params: paused"):
        post(staked, client)


def test_post_without_allowance_reverts_in_token(staked, token, accounts):
    stranger = accounts[11]  # funded, never approved the market
    token.mint(stranger, 10 * SEAT, sender=stranger)
    with ape.reverts("erc20: insufficient allowance"):
        post(staked, stranger)


def test_client_cancels_unclaimed_job(staked, client, token, providers, everyone):
    (job_id,) = post(staked, client, r=3)
    tx = staked.cancel(job_id, sender=client)
    (log,) = tx.events.filter(staked.JobFinalized)
    assert (log.status, log.client_refund, log.provider_pay) == (STATUS_CANCELLED, 3 * SEAT, 0)
    assert staked.job(job_id).status == STATUS_CANCELLED and staked.escrow_of(job_id) == 0
    assert staked.balances(client) == 3 * SEAT
    assert_solvent(staked, token, everyone, [job_id])
    with ape.reverts("jobs: already claimed"):
        staked.cancel(job_id, sender=client)
    with ape.reverts("jobs: not claimable"):
        staked.claim(job_id, sender=providers[0])


def test_cancel_rejections(staked, client, clients, providers, outsider, chain):
    (job_id,) = post(staked, client, r=3)
    with ape.reverts("jobs: unknown job"):
        staked.cancel(job_id + 1, sender=client)
    with ape.reverts("jobs: not client"):
        staked.cancel(job_id, sender=clients[1])
    p, _, _ = draw_seats(staked, chain, job_id, outsider, providers)
    staked.claim(job_id, sender=p)
    with ape.reverts("jobs: already claimed"):
        staked.cancel(job_id, sender=client)
    (single,) = post(staked, client, r=1)
    claim_and_deliver(staked, providers[0], [single], [b"result"])
    with ape.reverts("jobs: already claimed"):
        staked.cancel(single, sender=client)


def test_unclaimed_job_expires_to_full_refund(staked, client, outsider, chain):
    (job_id,) = post(staked, client, r=2)
    with ape.reverts("jobs: not finalizable yet"):
        staked.finalize(job_id, sender=outsider)
    advance(chain, WINDOW + 1)
    tx = staked.finalize(job_id, sender=outsider)
    assert tx.events.filter(staked.JobFinalized)[0].status == STATUS_CANCELLED
    assert staked.balances(client) == 2 * SEAT
