"""Claims under the drawn-seats rules, on anvil with in-process agents: an r = 1 job is
claimed first and delivered only from a later block (the result computed meanwhile);
a job whose seats were drawn to others is left alone, then claimed again once its
seats may be redrawn, until a seat whose provider never takes it is filled; a provider
drawn for two seats of a job takes, commits and reveals them in one transaction each
and is paid for both."""

import time

import pytest
from agent_market import REWARD, SENTENCES, SINGLE, Env, assert_clean_transactions, drive

from client.events import ItemSkipped, JobClaimed, ResultRevealed, SealCommitted, SeatDrawn
from client.protocol import JobStatus, redraw_delay
from provider.agent.store import JobState
from tests.support.anvil import funded_account

pytestmark = pytest.mark.anvil


def intents(agent, kind: str, job_id: int) -> list:
    return [t for t in agent.store.txs() if t.kind == kind and job_id in t.meta.get("jobs", [])]


def events(env, tx) -> list:
    return env.market.decode_receipt(env.w3.eth.get_transaction_receipt(tx.mined_hash))


def pooled(env) -> int:
    return sum(len(txs) for txs in env.anvil.rpc("txpool_content")["pending"].values())


def test_an_r1_job_is_claimed_first_and_delivered_from_a_later_block(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(1, tmp_path), env.agent(2, tmp_path)]  # no partition: both race
    [job_id] = env.post(SINGLE[:1], r=1)
    anvil.rpc("evm_setAutomine", False)  # blocks only when the test mines them
    drive(agents, lambda: all(a.store.job(job_id).state is JobState.CLAIMING for a in agents)
          and all(a.store.result(job_id) is not None for a in agents))
    # Each computed its result while its claim waits in the pool, and holds the
    # delivery back until the claim's receipt is in.
    for _ in range(10):
        for agent in agents:
            agent.step()
        time.sleep(0.02)
    assert pooled(env) == 2
    assert all(intents(a, "deliver", job_id) == [] for a in agents)

    anvil.rpc("evm_mine")  # both claims in one block: the first one binds the seat
    winner = env.market.seat(job_id, 0).provider
    drive(agents, lambda: env.status(job_id) is JobStatus.DELIVERED
          and all(a.store.job(job_id).state in (JobState.REVEALED, JobState.LOST) for a in agents),
          anvil=anvil)
    [won] = [a for a in agents if a.txm.address == winner]
    [lost] = [a for a in agents if a is not won]
    assert won.store.job(job_id).state is JobState.REVEALED
    assert won.store.job(job_id).seats == (0,)
    [claim], [deliver] = intents(won, "claim", job_id), intents(won, "deliver", job_id)
    assert deliver.block_number > claim.block_number  # never in the claim's block
    assert [type(e) for e in events(env, deliver)] == [ResultRevealed]
    # The other one lost the race: its item skipped, nothing delivered.
    assert lost.store.job(job_id).state is JobState.LOST
    assert lost.store.job(job_id).reason == "jobs: already claimed"
    assert intents(lost, "deliver", job_id) == []
    [skip] = events(env, intents(lost, "claim", job_id)[0])
    assert isinstance(skip, ItemSkipped) and skip.reason == "jobs: already claimed"
    anvil.rpc("evm_mine")  # the last transactions reach their confirmation
    for agent in agents:
        agent.txm.poll()
        assert_clean_transactions(env, agent.store, agent.txm.address)


def test_a_seat_left_by_a_stopped_provider_is_drawn_again_and_filled(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(1, tmp_path), env.agent(2, tmp_path)]
    env.agent(3, tmp_path)  # registered and staked, then stopped: never claims
    first, undrawn = agents
    stopped = funded_account(3).address
    # Windows long enough for many take windows: each redraw is a draw like any other.
    [job_id] = env.post(SENTENCES[:1], r=2, claim_window=40 * 3600)
    drawn = env.draw(job_id, lambda d: sorted(d) == sorted([first.txm.address, stopped]))

    drive(agents, lambda: undrawn.store.job(job_id).state is JobState.UNDRAWN
          and first.store.job(job_id).state is JobState.COMMITTED)
    assert undrawn.store.job(job_id).reason == "not drawn"
    [skip] = events(env, intents(undrawn, "claim", job_id)[0])
    assert isinstance(skip, ItemSkipped) and skip.reason == "jobs: not drawn"
    # Left alone while the drawn provider may still take its seat.
    for _ in range(20):
        for agent in agents:
            agent.step()
        anvil.rpc("evm_mine")
        time.sleep(0.02)
    assert len(intents(undrawn, "claim", job_id)) == 1
    assert undrawn.store.job(job_id).state is JobState.UNDRAWN
    assert env.market.job(job_id).nclaimed == 1

    # Once the seat's take window is over, the undrawn agent claims again, and its claim
    # draws the untaken seat anew: to it (it takes the seat), or to the first or the
    # stopped provider (it waits another take window), each by stake.
    take_window = redraw_delay(env.market.min_windows().claim)
    for cycle in range(1, 60):
        env.advance(take_window + 2)
        drive(agents, lambda: len(intents(undrawn, "claim", job_id)) == cycle + 1
              and undrawn.store.job(job_id).state not in (JobState.SEEN, JobState.CLAIMING))
        if undrawn.store.job(job_id).state is not JobState.UNDRAWN:
            break
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents), anvil=anvil)

    assert env.status(job_id) is JobStatus.FINALIZED
    info = env.market.job(job_id)
    assert info.nclaimed == info.nrevealed == 2  # every seat filled
    assert env.holders(job_id) == {first.txm.address, undrawn.txm.address}
    assert [a.store.job(job_id).state for a in agents] == [JobState.PAID, JobState.PAID]
    assert undrawn.store.job(job_id).seats == (drawn.index(stopped),)
    claims = intents(undrawn, "claim", job_id)
    # its last claim drew the seat again and took it
    assert [type(e) for e in events(env, claims[-1])] == [SeatDrawn, JobClaimed]
    assert all(any(isinstance(e, ItemSkipped) and e.reason == "jobs: not drawn" for e in events(env, c))
               for c in claims[:-1])
    anvil.rpc("evm_mine")
    for agent in agents:
        agent.txm.poll()
        assert_clean_transactions(env, agent.store, agent.txm.address)


def test_a_provider_drawn_for_two_seats_commits_and_reveals_once_and_is_paid_for_both(
        anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(1, tmp_path), env.agent(2, tmp_path)]
    double, single = agents
    [job_id] = env.post(SENTENCES[:1], r=3)
    drawn = env.draw(job_id, lambda d: d.count(double.txm.address) == 2 and d.count(single.txm.address) == 1)
    mine = [s for s, p in enumerate(drawn) if p == double.txm.address]
    balances = [env.market.balance_of(a.txm.address) for a in agents]

    drive(agents, lambda: double.store.job(job_id).state is JobState.CLAIMED)
    held = env.market.job(job_id).collateral_per_seat * 2
    assert double.store.job(job_id).collateral == held
    assert double.store.stake_at_risk() == held
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents))

    assert env.status(job_id) is JobStatus.FINALIZED
    assert [a.store.job(job_id).state for a in agents] == [JobState.PAID, JobState.PAID]
    assert list(double.store.job(job_id).seats) == mine
    # One claim, one commit and one reveal, each covering both seats.
    for kind, event in (("claim", JobClaimed), ("commit", SealCommitted), ("reveal", ResultRevealed)):
        [tx] = intents(double, kind, job_id)
        assert sorted(e.seat for e in events(env, tx) if isinstance(e, event)) == mine
    assert intents(double, "commit", job_id)[0].meta["units"] == 2  # gas counted per seat
    # Paid per seat.
    paid = [env.market.balance_of(a.txm.address) - before for a, before in zip(agents, balances)]
    assert paid == [2 * REWARD, REWARD]
    assert [a.store.earnings() for a in agents] == [2 * REWARD, REWARD]
    assert double.store.stake_at_risk() == 0
    for agent in agents:
        assert_clean_transactions(env, agent.store, agent.txm.address)


def test_a_claim_sent_after_the_draw_still_draws_when_a_reorg_takes_the_draw(anvil, engine, tmp_path):
    env = Env(anvil, engine)
    agents = [env.agent(i, tmp_path) for i in (1, 2, 3)]
    [job_id] = env.post(SENTENCES[:1], r=3)
    env.draw(job_id, lambda drawn: True)  # someone else's claim drew the seats
    anvil.rpc("evm_setAutomine", False)
    # The agents' claims, estimated with the seats drawn, wait in the pool while a
    # reorg takes the draw's block away.
    drive(agents, lambda: all(a.store.job(job_id).state is JobState.CLAIMING for a in agents))
    anvil.rpc("anvil_reorg", 1, [])
    assert env.market.round_seats(job_id)[0].provider == "0x" + "00" * 20
    anvil.rpc("evm_mine")  # the first claim mined now draws the seats itself
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents), anvil=anvil)
    claims = [intents(a, "claim", job_id) for a in agents]
    assert all(len(c) == 1 and c[0].succeeded for c in claims)  # no claim ran out of gas
    assert any(isinstance(e, SeatDrawn) for c in claims for e in events(env, c[0]))
    assert {a.txm.address: a.store.job(job_id).state for a in agents} == {
        a.txm.address: JobState.PAID if a.txm.address in env.holders(job_id) else JobState.LOST
        for a in agents}


def test_a_claim_re_sent_after_a_reorg_draws_the_seats_it_was_estimated_without(anvil, engine, tmp_path):
    """The re-sent claim batch in a new position: estimated and mined as a later claim of
    a drawn round, then re-mined first by the tx manager (the same signed bytes, so the
    same gas limit) after a reorg took the draw and the claims away."""
    env = Env(anvil, engine)
    agents = [env.agent(i, tmp_path) for i in (1, 2, 3)]
    [job_id] = env.post(SENTENCES[:1], r=3)
    env.draw(job_id, lambda drawn: True)  # the keeper's claim drew the seats
    draw_block = env.w3.eth.block_number
    drive(agents, lambda: all(c and c[0].block_number for c in (intents(a, "claim", job_id) for a in agents)))
    first = {a.txm.address: intents(a, "claim", job_id)[0] for a in agents}
    assert not any(isinstance(e, SeatDrawn) for tx in first.values() for e in events(env, tx))

    anvil.rpc("anvil_reorg", env.w3.eth.block_number - draw_block + 1, [])  # the draw, the claims
    assert env.market.round_seats(job_id)[0].provider == "0x" + "00" * 20
    drive(agents, lambda: all(a.store.job(job_id).state.final for a in agents), anvil=anvil)

    assert env.status(job_id) is JobStatus.FINALIZED
    claims = [intents(a, "claim", job_id) for a in agents]
    # Each claim is the same intent sent again (not a new one), mined in a block of the
    # new chain, and none ran out of gas although the first re-mined one drew the seats.
    assert all(len(c) == 1 and c[0].succeeded and c[0].reorgs >= 1 for c in claims)
    assert all(c[0].id == first[a.txm.address].id and c[0].block_hash != first[a.txm.address].block_hash
               for a, c in zip(agents, claims))
    assert any(isinstance(e, SeatDrawn) for c in claims for e in events(env, c[0]))
    assert {a.txm.address: a.store.job(job_id).state for a in agents} == {
        a.txm.address: JobState.PAID if a.txm.address in env.holders(job_id) else JobState.LOST
        for a in agents}
