"""Client API against the real marketplace: posting, waiting, results, history, refunds."""
from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pytest
from sdk_helpers import MODEL, PRICE, REWARD, WINDOWS, advance, distinct, draw, embedding_bytes, seated
from rich.console import Console

from client.encoding import decode_embedding
from client.errors import (InsufficientFunds, InvalidInput, InvalidJobState, ResultMismatch, ResultUnavailable,
                           WaitTimeout)
from client.events import (JobClaimed, JobFinalized, JobPosted, ProviderSlashed, ResultRevealed,
                           SealCommitted, SeatDrawn)
from client.progress import stage
from client.protocol import MAX_BATCH, MAX_ID_BATCH, MAX_RESULT_BATCH, Fault, JobStatus, result_digest
from client.records import Deadlines


def test_r3_job_end_to_end_with_a_dishonest_minority(client, bots, chain):
    honest, wrong = embedding_bytes(1), embedding_bytes(2)
    before = client.balances()
    assert client.model(MODEL.model_id) == client.model() == client.models(active_only=True)[0]
    job = client.post("a sentence to embed", reward=REWARD, r=3, deadlines=WINDOWS)
    info = client.job(job)
    assert (info.status, info.r, info.client, info.model_id) == (JobStatus.OPEN, 3, client.address, MODEL.model_id)
    assert info.input_hash == result_digest(b"a sentence to embed")
    assert client.balances().wallet == before.wallet - info.price

    # Seats are drawn by stake: pin a draw with one provider per seat (client.signer draws).
    holders = seated(bots, draw(chain, client.marketplace, job, client.signer))
    assert client.job(job).nclaimed == 0  # drawn, not taken yet
    results = [honest, honest, wrong]
    salts = [bot.run(job, res) for bot, res in zip(holders, results)]
    for bot, res, salt in zip(holders, results, salts):
        bot.reveal(job, res, salt)

    stream = io.StringIO()
    infos = client.wait([job], timeout=30, settle=True, progress=Console(file=stream, width=120))
    assert infos[job].status == JobStatus.FINALIZED
    assert "finalized 1" in stream.getvalue()

    verified = client.result(job)
    assert verified.result == honest and verified.final
    assert verified.providers == (holders[0].address, holders[1].address)
    np.testing.assert_array_equal(client.verify_and_decode(job), decode_embedding(honest))

    history = client.history(job)
    kinds = [type(e) for e in history]
    assert kinds[:4] == [JobPosted, SeatDrawn, SeatDrawn, SeatDrawn] and kinds[-1] == JobFinalized
    assert [(e.seat, e.provider) for e in history if isinstance(e, SeatDrawn)] == [
        (s, b.address) for s, b in enumerate(holders)]
    assert kinds.count(JobClaimed) == kinds.count(SealCommitted) == kinds.count(ResultRevealed) == 3
    [slash] = [e for e in history if isinstance(e, ProviderSlashed)]
    assert (slash.provider, slash.reason) == (holders[2].address, Fault.LOSING_DIGEST)
    assert [e.meta.position for e in history] == sorted(e.meta.position for e in history)
    assert history[0].input == b"a sentence to embed"
    finalized = history[-1]
    assert finalized.provider_pay == 2 * REWARD and finalized.slashed == info.collateral_per_seat


def test_tampered_result_fails_verification(client, bots):
    job = client.post(b"tamper", reward=REWARD, r=1, deadlines=WINDOWS)
    result = embedding_bytes(3)
    bots[0].deliver([job], [result])
    assert client.verify(job, result).digest == result_digest(result)
    tampered = bytearray(result)
    tampered[5] ^= 1
    with pytest.raises(ResultMismatch):
        client.verify(job, bytes(tampered))
    verified = client.result(job)
    assert verified.status == JobStatus.DELIVERED and not verified.final
    assert verified.providers == (bots[0].address,)


def test_batch_post_spans_transactions_and_delivers(client, bots, chain):
    texts = [f"sentence number {i}" for i in range(MAX_BATCH + 3)]
    estimate = client.estimate(reward=REWARD, r=1, count=len(texts))
    before = client.balances().wallet
    ids = client.post_texts(texts, reward=REWARD, r=1, deadlines=WINDOWS)
    assert len(ids) == len(set(ids)) == len(texts)
    assert client.balances().wallet == before - estimate.total
    assert [client.history(i)[0].input for i in (ids[0], ids[-1])] == [texts[0].encode(), texts[-1].encode()]

    results = [embedding_bytes(100 + i) for i in range(len(ids))]
    bots[0].send(bots[0].market.build_claim_many(ids))  # r = 1: claim, then deliver from a later block
    for start in range(0, len(ids), MAX_BATCH):
        bots[0].send(bots[0].market.build_deliver_many(ids[start:start + MAX_BATCH], results[start:start + MAX_BATCH]))
    infos = client.wait(ids, timeout=30)
    assert {i.status for i in infos.values()} == {JobStatus.DELIVERED}
    fetched = client.results(ids)
    assert [fetched[i].result for i in ids] == results
    posted_at = client.history(ids[0])[0].meta.block_number
    assert client.results(ids, from_block=posted_at).keys() == set(ids)  # a narrower scan
    # Reveals the caller already read are used as they are: no scan (none after 10**9)...
    reveals = client.marketplace.job_events(ids, posted_at, events=["ResultRevealed"])
    given = client.results(ids[1:], from_block=10**9, reveals=reveals)
    assert [given[i].result for i in ids[1:]] == results[1:]
    # ...but only those that match the settled digest
    forged = dataclasses.replace(reveals[1], job_id=ids[0])  # another job's bytes
    with pytest.raises(ResultUnavailable):
        client.results(ids[:1], from_block=10**9, reveals=[forged])
    assert client.results(ids[:1], from_block=posted_at, reveals=[forged])[ids[0]].result == results[0]
    with pytest.raises(ResultUnavailable):  # one that starts after the deliveries misses them
        client.results(ids[:1], from_block=chain.blocks.head.number + 1)

    advance(chain, client.params().challenge_window + 1)
    client.wait(ids, timeout=30, until="settled")  # r = 1 deliveries settle lazily
    assert all(r.final for r in client.results(ids).values())


def test_wait_times_out_with_last_views(client):
    job = client.post(b"nobody claims this", reward=REWARD, r=3, deadlines=WINDOWS)
    with pytest.raises(WaitTimeout) as caught:
        client.wait([job], timeout=0)
    assert caught.value.jobs[job].status == JobStatus.OPEN
    assert isinstance(caught.value, TimeoutError)
    with pytest.raises(ResultUnavailable):
        client.result(job)


def test_cancel_refund_and_withdraw(client, chain):
    first, second = client.post_many([b"cancel me", b"expire me"], reward=REWARD, r=2, deadlines=WINDOWS)
    price = client.job(first).price
    wallet = client.balances().wallet

    cancelled = client.cancel(first)
    assert (cancelled.status, cancelled.client_refund) == (JobStatus.CANCELLED, price)
    assert client.finalize([second]) == []  # not due yet: left alone

    advance(chain, WINDOWS.claim + 1)
    [expired] = client.finalize([second])
    assert (expired.job_id, expired.status, expired.client_refund) == (second, JobStatus.CANCELLED, price)
    assert client.balances().deposited == 2 * price

    withdrawn = client.withdraw()
    assert withdrawn.pay_amount == 2 * price
    assert client.balances().wallet == wallet + 2 * price


def test_deposited_balance_pays_for_posts(client):
    price = client.estimate(reward=REWARD, r=2, count=3).total
    client.deposit(price)
    wallet = client.balances().wallet
    client.post_many([b"a", b"b", b"c"], reward=REWARD, r=2, deadlines=WINDOWS)
    balances = client.balances()
    assert (balances.deposited, balances.wallet) == (0, wallet)


@pytest.mark.parametrize("bad, message", [
    (b"x" * 2049, "must be 1..2048 bytes, got 2049"),
    (b"", "must be 1..2048 bytes, got 0"),
    (b"\xff\xfe not utf-8", "not UTF-8 (invalid start byte at byte 0)"),
    ("   \n\t ", "no text: only whitespace, control or format characters"),
    ("\x00\x07\u200b\x1b", "no text"),  # controls and a zero-width (format) character
    ("\ue000\uf8ff", "no text"),  # private use
    ("\u0301\u0308", "no text"),  # combining marks alone: stripped with their accents
    ("\ufffd", "no text"),
    ("\ud800", "text is not encodable as UTF-8"),
    (42, "expected str or bytes, got int"),
])
def test_inputs_no_provider_would_serve_are_refused_before_sending(client, bad, message):
    nonce = client.marketplace.w3.eth.get_transaction_count(client.address)
    with pytest.raises(InvalidInput, match=f"input 1: {re.escape(message)}"):
        client.post_many(["fine", bad], reward=REWARD)
    assert client.marketplace.w3.eth.get_transaction_count(client.address) == nonce  # nothing sent
    assert client.post("x" * 2048, reward=REWARD) and client.post("é!", reward=REWARD)


def test_windows_the_marketplace_would_refuse_are_refused_before_sending(client):
    """The contract's minimum windows (owner-set per network) and MAX_WINDOW, checked first."""
    assert client.params().min_windows == Deadlines(120, 120, 120)
    nonce = client.marketplace.w3.eth.get_transaction_count(client.address)
    with pytest.raises(InvalidInput, match="minimums: claim 1 s < 120 s, reveal 119 s < 120 s"):
        client.post("x", reward=REWARD, deadlines=Deadlines(claim=1, reveal=119))
    with pytest.raises(InvalidInput, match="at most MAX_WINDOW"):
        client.post("x", reward=REWARD, deadlines=Deadlines(commit=30 * 86_400 + 1))
    assert client.marketplace.w3.eth.get_transaction_count(client.address) == nonce  # nothing sent
    assert client.post("x", reward=REWARD, deadlines=Deadlines(120, 120, 120))


def test_estimate_counts_the_providers_that_take_the_reward(client, bots):
    """Each provider's price is on chain: the smallest reward it takes."""
    at_price = client.estimate(reward=PRICE, r=3, model_id=MODEL.model_id)
    assert at_price.providers == len(bots) and at_price.enough_providers
    below = client.estimate(reward=PRICE - 1, r=1)
    assert below.providers == 0 and not below.enough_providers


def test_client_side_input_errors(client):
    with pytest.raises(InvalidInput):
        client.post(b"x" * 2049, reward=REWARD)
    with pytest.raises(InvalidInput):
        client.post_texts([""], reward=REWARD)
    with pytest.raises(InsufficientFunds):
        client.post(b"too expensive", reward=10**30, r=1)
    market = client.marketplace  # batch bounds, per kind of batch call
    with pytest.raises(InvalidInput, match=f"claim_many: 1..{MAX_ID_BATCH} items"):
        market.build_claim_many(list(range(1, MAX_ID_BATCH + 2)))
    market.build_claim_many(list(range(1, MAX_ID_BATCH + 1)))
    with pytest.raises(InvalidInput, match=f"reveal_many: 1..{MAX_RESULT_BATCH} items"):
        market.build_reveal_many([1] * (MAX_RESULT_BATCH + 1), [b"r"] * (MAX_RESULT_BATCH + 1),
                                 [b"s" * 32] * (MAX_RESULT_BATCH + 1))
    with pytest.raises(InvalidInput, match=f"post_jobs: 1..{MAX_BATCH} items"):
        market.build_post_jobs(b"m" * 32, [b"x"] * (MAX_BATCH + 1), 1, REWARD, 60, 60, 60)


def test_successful_challenge_replaces_a_wrong_delivery(client, bots, sdk_market, chain):
    job = client.post(b"challenged sentence", reward=REWARD, r=1, deadlines=WINDOWS)
    wrong, right = embedding_bytes(20), embedding_bytes(21)
    bots[0].deliver([job], [wrong])
    assert client.result(job).result == wrong  # provisional, still challengeable

    challenged = client.challenge(job)
    assert challenged.bond == sdk_market.challenge_bond(job) == 4 * REWARD
    assert client.job(job).status == JobStatus.CHALLENGED
    with pytest.raises(ResultUnavailable):
        client.result(job)
    # The round's seats 1..3 are drawn among all four providers (the deliverer included):
    # pin a draw of the three others, one seat each.
    drawn = draw(chain, sdk_market, job, client.signer, lambda d: distinct(d) and bots[0].address not in d)
    assert list(sdk_market.round_seats(job)) == [1, 2, 3]
    holders = seated(bots, drawn)
    salts = [bot.run(job, right) for bot in holders]
    for bot, salt in zip(holders, salts):
        bot.reveal(job, right, salt)

    infos = client.wait([job], timeout=30, until="settled", settle=True)
    assert infos[job].status == JobStatus.FINALIZED and infos[job].result_digest == result_digest(right)
    verified = client.result(job)
    assert verified.result == right and verified.providers == tuple(b.address for b in holders)
    with pytest.raises(ResultMismatch):
        client.verify(job, wrong)
    [slash] = [e for e in client.history(job) if isinstance(e, ProviderSlashed)]
    assert (slash.provider, slash.reason) == (bots[0].address, Fault.LOST_CHALLENGE)
    assert client.balances().stake_credits > 0  # the challenger's honest share of the slash


def test_r1_claimed_and_not_delivered_is_refunded_at_the_claim_deadline(client, bots, chain):
    """r = 1 is claim, then deliver: a claimant that never delivers is slashed (no commit)
    and the client refunded once the claim deadline passed; until then the job is its."""
    first, second = client.post_many([b"claimed, never delivered", b"this one too"], reward=REWARD, r=1,
                                     deadlines=WINDOWS)
    price = client.job(first).price
    bots[0].send(bots[0].market.build_claim_many([first, second]))
    info = client.job(first)
    assert (info.status, info.nclaimed, stage(info)) == (JobStatus.OPEN, 1, "delivering")
    with pytest.raises(InvalidJobState, match="jobs: already claimed"):
        client.cancel(first)
    assert client.finalize([first]) == []  # not due before the claim deadline

    advance(chain, WINDOWS.claim + 1)
    [settled] = client.finalize([first])
    assert (settled.status, settled.provider_pay, settled.client_refund, settled.slashed) == (
        JobStatus.UNRESOLVED, 0, price, info.collateral_per_seat)
    [slash] = [e for e in client.history(first) if isinstance(e, ProviderSlashed)]
    assert (slash.provider, slash.seat, slash.reason) == (bots[0].address, 0, Fault.NO_COMMIT)
    infos = client.wait([second], timeout=30, until="settled", settle=True)  # found due by itself
    assert infos[second].status == JobStatus.UNRESOLVED
    with pytest.raises(ResultUnavailable):
        client.result(first)
    balances = client.balances()
    assert balances.deposited == 2 * price and balances.stake_credits > 0  # refunds + the client's slash share
