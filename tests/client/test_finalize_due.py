"""The SDK's protocol rules the agent uses (client/records.py ``JobInfo.round_seats``,
``JobInfo.finalize_due``) against the contract itself: at each step of a job's life
the rule says "due" exactly when a dry run of ``finalize`` succeeds."""
from __future__ import annotations

from sdk_helpers import REWARD, WINDOWS, advance, distinct, draw, embedding_bytes, seated

from client.errors import ContractError
from client.protocol import JobStatus
from client.transport import translate_errors


def agree(client, job: int) -> bool:
    """The rule's answer, checked to equal the contract's; returns it."""
    info = client.job(job)
    now = client.w3.eth.get_block("latest")["timestamp"]
    try:
        with translate_errors():
            client.w3.eth.call({"from": client.address, **client.marketplace.build_finalize(job).tx})
        contract = True
    except ContractError:
        contract = False
    assert info.finalize_due(now) == contract, (info, now)
    return contract


def test_r3_due_once_every_seat_revealed_or_the_deadlines_pass(client, bots, chain):
    job = client.post("three seats", reward=REWARD, r=3, deadlines=WINDOWS)
    assert client.job(job).round_seats == 3 and not agree(client, job)
    holders = seated(bots, draw(chain, client.marketplace, job, client.signer, distinct))
    result, salts = embedding_bytes(1), {}
    for bot in holders:
        salts[bot.address] = bot.run(job, result)
    assert not agree(client, job)  # committed, nothing revealed
    for bot in holders[:2]:
        bot.reveal(job, result, salts[bot.address])
    assert not agree(client, job)  # one committed seat left to reveal, deadlines ahead
    advance(chain, WINDOWS.claim + WINDOWS.commit + 1)
    assert not agree(client, job)  # past the commit deadline, a committed seat unrevealed
    holders[2].reveal(job, result, salts[holders[2].address])
    assert agree(client, job)  # every seat revealed


def test_r3_past_the_reveal_deadline_is_due_whatever_was_revealed(client, bots, chain):
    job = client.post("late", reward=REWARD, r=3, deadlines=WINDOWS)
    holders = seated(bots, draw(chain, client.marketplace, job, client.signer, distinct))
    holders[0].run(job, embedding_bytes(2))
    assert not agree(client, job)
    advance(chain, WINDOWS.claim + WINDOWS.commit + WINDOWS.reveal + 1)
    assert agree(client, job)


def test_unclaimed_open_jobs_are_due_after_their_claim_deadline(client, bots, chain):
    three = client.post("nobody", reward=REWARD, r=3, deadlines=WINDOWS)
    one = client.post("nobody either", reward=REWARD, r=1, deadlines=WINDOWS)
    assert not agree(client, three) and not agree(client, one)
    advance(chain, WINDOWS.claim + 1)
    assert agree(client, three) and agree(client, one)


def test_r1_claimed_then_due_if_undelivered_never_once_delivered(client, bots, chain):
    undelivered = client.post("claimed only", reward=REWARD, r=1, deadlines=WINDOWS)
    delivered = client.post("delivered", reward=REWARD, r=1, deadlines=WINDOWS)
    bots[0].send(client.marketplace.build_claim_many([undelivered]))
    bots[1].deliver([delivered], [embedding_bytes(3)])
    assert not agree(client, undelivered) and not agree(client, delivered)
    advance(chain, WINDOWS.claim + 1)
    assert agree(client, undelivered)  # the claimant is slashed, the client refunded
    assert client.job(delivered).status == JobStatus.DELIVERED and not agree(client, delivered)


def test_a_challenge_round_has_its_own_seats(client, bots, chain):
    job = client.post("disputed", reward=REWARD, r=1, deadlines=WINDOWS)
    bots[0].deliver([job], [embedding_bytes(4)])
    client.challenge(job)
    info = client.job(job)
    assert info.status == JobStatus.CHALLENGED and info.round_seats == 3 and not agree(client, job)
