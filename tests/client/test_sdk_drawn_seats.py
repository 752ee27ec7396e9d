"""Drawn seats through the SDK, against the real marketplace: the draw and its events,
one provider holding several seats, redraws, draw weights and their floor, and the
same-block rules (a draw needs a later block than the post's; an r = 1 delivery a later
block than its claim's)."""
from __future__ import annotations

from dataclasses import astuple

import pytest
from sdk_helpers import MODEL, PRICE, REWARD, STAKE, WINDOWS, advance, draw, embedding_bytes, seated

from client.events import (ItemSkipped, JobClaimed, ParameterChanged, ResultRevealed, SealCommitted, SeatDrawn,
                           WeightChanged)
from client.protocol import (DEFAULT_MIN_DRAW_STAKE, JobStatus, draw_weight, redraw_delay, result_digest,
                             seal_result)

ZERO = "0x" + "00" * 20


def test_a_claim_draws_every_seat_and_a_provider_may_hold_several(client, bots, sdk_market, chain):
    m = sdk_market
    job = client.post(b"drawn", reward=REWARD, r=3, deadlines=WINDOWS)
    assert {s: seat.provider for s, seat in m.round_seats(job).items()} == {0: ZERO, 1: ZERO, 2: ZERO}
    # The keeper's claim draws all three seats, and it was drawn for none of them.
    kept = []
    drawn = draw(chain, m, job, client.signer, lambda d: len(set(d)) == 2 and d[0] == d[2], receipts=kept)
    events = m.decode_receipt(kept[0])
    assert [(type(e), e.seat, e.provider) for e in events if isinstance(e, SeatDrawn)] == [
        (SeatDrawn, s, p) for s, p in enumerate(drawn)]
    assert [(e.caller, e.reason) for e in events if isinstance(e, ItemSkipped)] == [
        (client.address, "jobs: not drawn")]
    assert not any(seat.claimed for seat in m.round_seats(job).values())
    double, single = seated(bots, drawn[:2])

    # One claim takes both seats drawn to `double` (collateral per seat); one commit and
    # one reveal cover both; each seat is paid on its own.
    collateral = m.job(job).collateral_per_seat
    claimed = m.decode_receipt(double.send(m.build_claim(job)))
    assert [(type(e), e.seat) for e in claimed] == [(JobClaimed, 0), (JobClaimed, 2)]
    assert m.provider(double.address).locked == 2 * collateral
    assert [seat.claimed for seat in m.round_seats(job).values()] == [True, False, True]
    assert m.job(job).nclaimed == 2
    assignment = m.assignment(job, double.address)
    assert (assignment.assigned, assignment.seat) == (True, 0)
    result = embedding_bytes(30)
    salts = {double.address: double.run(job, result, claim=False), single.address: single.run(job, result)}
    committed = m.job_events([job], kept[0]["blockNumber"], events=["SealCommitted"])
    assert [(e.provider, e.seat) for e in committed if isinstance(e, SealCommitted)] == [
        (double.address, 0), (double.address, 2), (single.address, 1)]
    assert m.seat(job, 2).word == seal_result(job, double.address, result, salts[double.address])
    revealed = m.decode_receipt(double.reveal(job, result, salts[double.address]))
    assert [(type(e), e.seat) for e in revealed] == [(ResultRevealed, 0), (ResultRevealed, 2)]
    single.reveal(job, result, salts[single.address])

    [final] = client.finalize([job])
    assert (final.status, final.result_digest, final.provider_pay) == (JobStatus.FINALIZED, result_digest(result),
                                                                      3 * REWARD)
    assert (m.balance_of(double.address), m.balance_of(single.address)) == (2 * REWARD, REWARD)
    assert client.result(job).providers == (double.address, single.address)  # each provider once


def test_seats_not_taken_are_drawn_again_after_half_the_min_claim_window(client, bots, sdk_market, chain):
    m = sdk_market
    job = client.post(b"nobody takes these", reward=REWARD, r=3, deadlines=WINDOWS)
    kept = []
    draw(chain, m, job, client.signer, lambda d: True, receipts=kept)
    drawn_at = chain.provider.web3.eth.get_block(kept[0]["blockNumber"])["timestamp"]
    delay = redraw_delay(client.params().min_windows.claim)
    assert delay == 60

    def keeper_claim_at(timestamp: int) -> list:
        chain.pending_timestamp = timestamp
        return m.decode_receipt(client.signer.send(m.build_claim_many([job]).tx))

    assert not any(isinstance(e, SeatDrawn) for e in keeper_claim_at(drawn_at + delay))  # still the same draw
    redrawn = keeper_claim_at(drawn_at + delay + 1)
    assert sorted(e.seat for e in redrawn if isinstance(e, SeatDrawn)) == [0, 1, 2]
    # A taken seat stays: only the others are drawn again, a delay after the last draw.
    holder = seated(bots, [m.seat(job, 0).provider])[0]
    holder.send(m.build_claim(job))
    taken = {s for s, seat in m.round_seats(job).items() if seat.claimed}
    again = keeper_claim_at(drawn_at + 2 * delay + 2)
    assert sorted(e.seat for e in again if isinstance(e, SeatDrawn)) == sorted({0, 1, 2} - taken)
    assert all(m.seat(job, s).provider == holder.address for s in taken)


def test_draw_weights_follow_bonded_stake_and_the_owner_s_floor(client, bots, sdk_market, owner, signer_for):
    m = sdk_market
    params = client.params()
    assert params.min_draw_stake == m.min_draw_stake() == DEFAULT_MIN_DRAW_STAKE
    accounts = [b.address for b in bots]
    assert m.draw_weights(accounts) == {a: draw_weight(STAKE) for a in accounts}
    estimate = client.estimate(reward=PRICE, r=3)
    assert (estimate.providers, estimate.taker_share) == (4, 1.0)

    # One provider asks more than the reward: its quarter of the weight draws seats it won't take.
    bots[3].send(m.build_update_provider([MODEL.model_id], PRICE + 1))
    estimate = client.estimate(reward=PRICE, r=3)
    assert (estimate.providers, estimate.taker_share, estimate.enough_providers) == (3, 0.75, True)
    assert client.estimate(reward=PRICE, r=1).taker_share == 1.0  # r = 1 is first come

    # The owner raises the floor above every stake: it applies at each provider's next
    # stake change, or when anyone calls reweigh.
    [changed] = m.decode_receipt(signer_for(owner).send(m.build("set_min_draw_stake", STAKE + 1).tx))
    assert isinstance(changed, ParameterChanged) and (changed.name, changed.new_value) == ("min_draw_stake", STAKE + 1)
    assert m.draw_weight(bots[0].address) == draw_weight(STAKE)
    [weight] = m.decode_receipt(client.signer.send(m.build_reweigh(bots[0].address).tx))
    assert isinstance(weight, WeightChanged) and (weight.provider, weight.weight) == (bots[0].address, 0)
    assert m.draw_weight(bots[0].address) == draw_weight(STAKE, STAKE + 1) == 0
    estimate = client.estimate(reward=PRICE, r=3)
    assert (estimate.providers, estimate.taker_share) == (2, pytest.approx(2 / 3))  # a weightless one is never drawn
    assert client.estimate(reward=PRICE, r=1).providers == 3  # ...but may still claim r = 1 jobs


def test_a_claim_in_the_post_s_block_cannot_draw(client, other_client, bots, sdk_market, chain):
    """A post and a claim mined together (automine off): the seed, the parent block's
    hash, was known when the client posted, so the claim skips "jobs: draw not ready";
    the next block's claim draws. (eth-tester takes one transaction per sender in a
    block, so "jobs: claimed in this block" is left to the contract tests.)"""
    m, w3 = sdk_market, client.w3
    client.deposit(m.job_price(3, REWARD))  # the post below needs no token transfer
    posted = m.call("next_batch_id") << 8

    def unmined(signer, call):  # signed here: Signer.send would wait for the receipt
        tx = {**call.tx, "gas": 2_000_000, "nonce": w3.eth.get_transaction_count(signer.address),
              "chainId": w3.eth.chain_id, **signer._fees()}
        return w3.eth.send_raw_transaction(signer.account.sign_transaction(tx).raw_transaction)

    chain.provider.auto_mine = False
    try:
        hashes = [unmined(client.signer, m.build_post_job(MODEL.model_id, b"posted with a claim", 3, REWARD,
                                                           *astuple(WINDOWS))),
                  unmined(other_client.signer, m.build_claim_many([posted]))]
        chain.mine()
    finally:
        chain.provider.auto_mine = True
    post, early = [client.signer.wait(h) for h in hashes]
    assert post["blockNumber"] == early["blockNumber"] and post["status"] == early["status"] == 1
    assert [(e.job_id, e.reason) for e in m.decode_receipt(early)] == [(posted, "jobs: draw not ready")]
    assert m.round_seats(posted)[0].provider == ZERO
    assert [e.seat for e in other_client.send(m.build_claim_many([posted])).of(SeatDrawn)] == [0, 1, 2]


def test_r1_claim_binds_the_seat_to_its_claimant(client, bots, sdk_market):
    m, bot = sdk_market, bots[0]
    job = client.post(b"claim, then deliver", reward=REWARD, r=1, deadlines=WINDOWS)
    assert m.decode_receipt(bot.send(m.build_claim_many([job]))) == []  # an r = 1 claim logs nothing...
    assert (m.seat(job, 0).provider, m.seat(job, 0).claimed) == (bot.address, True)  # ...its seat shows it
    assert (m.job(job).nclaimed, m.assignment(job, bot.address).assigned) == (1, True)
    taken = m.decode_receipt(bots[1].send(m.build_claim_many([job])))
    assert [(e.job_id, e.reason) for e in taken] == [(job, "jobs: already claimed")]
    copied = m.decode_receipt(bots[1].send(m.build_deliver_many([job], [embedding_bytes(40)])))
    assert [(e.job_id, e.reason) for e in copied] == [(job, "jobs: not your seat")]
    delivered = m.decode_receipt(bot.send(m.build_deliver_many([job], [embedding_bytes(40)])))
    assert [(type(e), e.provider, e.seat) for e in delivered] == [(ResultRevealed, bot.address, 0)]
    assert m.job(job).status == JobStatus.DELIVERED
    again = m.decode_receipt(bot.send(m.build_deliver_many([job], [embedding_bytes(41)])))
    assert [(e.job_id, e.reason) for e in again] == [(job, "jobs: not open")]
