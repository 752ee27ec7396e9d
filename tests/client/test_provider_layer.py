"""The agent-facing layer: call builders for every provider entry point, typed views,
event decoding from receipts and from bounded log scans."""
from __future__ import annotations

from sdk_helpers import (MODEL, PRICE, REWARD, STAKE, WINDOWS, advance, distinct, draw_together, embedding_bytes,
                         seated)

from client.events import (ItemSkipped, JobClaimed, JobFinalized, PayoutsReleased, ProviderUpdated,
                           ResultRevealed, SealCommitted, StakeWithdrawn, UnbondRequested, WeightChanged)
from client.protocol import JobStatus, draw_weight, new_salt, result_digest, seal_result


def test_registration_and_stake_lifecycle(bots, sdk_market, chain):
    bot, m = bots[3], sdk_market
    info = m.provider(bot.address)
    assert (info.registered, info.price, info.free, info.locked) == (True, PRICE, STAKE, 0)
    assert info.model_ids == (MODEL.model_id,)

    assert m.draw_weight(bot.address) == draw_weight(STAKE, m.min_draw_stake())
    # Unbonding stake leaves the draw weight: it follows bonded (free + locked) stake.
    weight, unbond = m.decode_receipt(bot.send(m.build_request_unbond(STAKE // 2)))
    assert isinstance(unbond, UnbondRequested) and unbond.amount == STAKE // 2
    assert isinstance(weight, WeightChanged) and weight.provider == bot.address
    assert weight.weight == draw_weight(STAKE // 2) == m.draw_weight(bot.address)
    assert m.provider(bot.address).unbonding == STAKE // 2
    # Serving no model, it has no weight anywhere.
    weight, updated = m.decode_receipt(bot.send(m.build_update_provider([], 7)))
    assert isinstance(updated, ProviderUpdated) and updated.model_ids == () and updated.price == 7
    assert isinstance(weight, WeightChanged) and weight.weight == 0 == m.draw_weight(bot.address)
    advance(chain, m.params().unbond_delay + 1)
    [withdrawn] = m.decode_receipt(bot.send(m.build_withdraw_stake()))
    assert isinstance(withdrawn, StakeWithdrawn) and withdrawn.amount == STAKE // 2
    assert m.provider(bot.address).total_stake == STAKE // 2


def test_batch_claim_commit_reveal_finalize(client, bots, sdk_market, chain):
    m = sdk_market
    ids = client.post_many([b"one", b"two"], reward=REWARD, r=3, deadlines=WINDOWS)
    # Both jobs drawn to the same three providers, one seat each (other draws undone).
    first, second = draw_together(chain, m, ids, client.signer,
                                  lambda d: distinct(d[0]) and distinct(d[1]) and set(d[0]) == set(d[1]))
    seats = {j: seated(bots, d) for j, d in zip(ids, (first, second))}
    holders = seated(bots, first)
    for bot in holders:
        events = m.decode_receipt(bot.send(m.build_claim_many(ids)))
        assert [(type(e), e.job_id, e.seat) for e in events] == [
            (JobClaimed, j, seats[j].index(bot)) for j in ids]
    # The fourth provider was drawn for neither: skipped, not reverted.
    [idle] = [b for b in bots if b not in holders]
    lost = m.decode_receipt(idle.send(m.build_claim_many(ids)))
    assert [(type(e), e.reason) for e in lost] == [(ItemSkipped, "jobs: not drawn")] * 2
    assert m.assignment(ids[0], idle.address).assigned is False
    assert all(s.claimed for j in ids for s in m.round_seats(j).values())

    results = [embedding_bytes(10), embedding_bytes(11)]
    salts = {bot.address: [new_salt(), new_salt()] for bot in holders}
    for bot in holders:
        seals = [seal_result(j, bot.address, r, s) for j, r, s in zip(ids, results, salts[bot.address])]
        events = m.decode_receipt(bot.send(m.build_commit_many(ids, seals)))
        assert [e.seal for e in events if isinstance(e, SealCommitted)] == seals
    last = seats[ids[1]][2]
    assignment = m.assignment(ids[1], last.address)
    assert (assignment.assigned, assignment.seat, assignment.committed, assignment.revealed) == (True, 2, True, False)
    assert m.seat(ids[1], 2).word == seal_result(ids[1], last.address, results[1], salts[last.address][1])
    for bot in holders:
        bot.send(m.build_reveal_many(ids, results, salts[bot.address]))
    assert m.seat(ids[0], 0).word == result_digest(results[0])

    settled = m.decode_receipt(client.signer.send(m.build_finalize_many(ids).tx))
    finals = [e for e in settled if isinstance(e, JobFinalized)]
    assert [(e.job_id, e.status, e.result_digest) for e in finals] == [
        (j, JobStatus.FINALIZED, result_digest(r)) for j, r in zip(ids, results)]
    assert m.escrow_of(ids[0]) == 0 and m.balance_of(holders[0].address) == 2 * REWARD

    # Bounded log scans (one block per request here) find the same events, in order.
    scanned = m.get_events(client.start_block, events=["ResultRevealed"], job_ids=ids, chunk=1)
    assert [(e.job_id, e.provider) for e in scanned] == [(j, b.address) for b in holders for j in ids]
    assert all(isinstance(e, ResultRevealed) for e in scanned)


def test_single_provider_payouts_release_lazily(client, bots, sdk_market, chain):
    m, bot = sdk_market, bots[0]
    job = client.post(b"lazy", reward=REWARD, r=1, deadlines=WINDOWS)
    bot.deliver([job], [embedding_bytes(5)])
    pending = m.pending_payouts(bot.address)
    assert (pending.pay, pending.collateral) == (REWARD, m.job(job).collateral_per_seat)
    assert pending.matures_at == m.job(job).challenge_end

    advance(chain, m.params().challenge_window + 1)
    assert m.job(job).status == JobStatus.FINALIZED  # no settlement transaction needed
    [released] = m.decode_receipt(client.signer.send(m.build_release_payouts(bot.address).tx))
    assert isinstance(released, PayoutsReleased) and released.pay == REWARD
    assert m.balance_of(bot.address) == REWARD and m.pending_payouts(bot.address).pay == 0
