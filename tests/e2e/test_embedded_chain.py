"""The marketplace end to end on ape's embedded chain: four in-process agents (one
dishonest) serve r = 3 and r = 1 jobs with the real engine; one challenge succeeds
(against the dishonest deliverer) and one fails (against an honest one); the client
verifies every result through the SDK, bit for bit equal to the engine's bytes.

Seats are drawn by stake; each draw's block is picked (scripts.demo.pin_draw, chain
snapshots) so that every run gives the dishonest agent the same seats: one of three on
every r = 3 job and in the upheld challenge's round, none in the convicting round."""

import pytest

from client import Client
from client.accounts import load_account
from client.events import JobFinalized, ProviderSlashed
from client.protocol import BPS, R_CHALLENGE, Fault, JobStatus
from client.records import Deadlines
from provider.agent.store import JobState, TxStatus
from scripts.demo import advance_time, drive, pin_draw, start_agents
from scripts.deploy import ModelEntry, deploy

REWARD = 10**16
FUNDS = 10**21
WINDOWS = Deadlines(claim=900, commit=900, reveal=900)
MAJORITY_TEXTS = [
    "A man is playing a guitar.", "The new phone has a larger screen.",
    "Children are playing football in the park.", "The recipe needs two cups of flour.",
    "The train to Berlin was delayed by an hour.", "Solar panels convert sunlight into power.",
    "She is reading a novel on the beach.", "The museum opens at nine in the morning.",
]
SINGLE_TEXTS = [
    "Dogs are loyal companions.", "Interest rates rose again this quarter.",
    "The volcano erupted overnight.", "He repaired the bicycle's flat tyre.",
    "A violin concert was held in the cathedral.", "The server crashed during the update.",
    "Fresh bread smells wonderful.", "The team won the championship final.",
    "Snow covered the mountain villages.", "The spacecraft landed on Mars.",
]
CONVICTED_TEXT = "The liar delivers this one."
UPHELD_TEXT = "An honest provider delivers this one."


@pytest.fixture
def market(accounts, engine):
    owner, treasury = accounts[0], accounts[1]
    info = engine.model_info
    deployed = deploy(owner, [ModelEntry(info.model_id, info.name, info.weights_digest, info.format_version)],
                      treasury=treasury, record=False)
    for account in accounts[2:11]:
        deployed.pay_token.mint(account, FUNDS, sender=owner)
    return deployed


def clean_transactions(agent) -> bool:
    """Every intent confirmed, nonces contiguous and equal to the account's chain nonce:
    nothing sent twice, nothing skipped."""
    intents = agent.store.txs()
    nonces = [t.nonce for t in intents]
    w3 = agent.agent.txm.w3
    return (all(t.status is TxStatus.CONFIRMED for t in intents)
            and nonces == list(range(nonces[0], nonces[0] + len(nonces)))
            and w3.eth.get_transaction_count(agent.address) == nonces[-1] + 1)


def test_many_jobs_with_a_dishonest_provider_and_two_challenges(accounts, chain, engine, market, tmp_path):
    start = chain.blocks.head.number
    address = market.marketplace.address
    client = Client.connect(account=accounts[2], marketplace=address, poll_interval=0.01)
    challenger = Client.connect(account=accounts[10], marketplace=address, poll_interval=0.01)
    lie = engine.embed(["a cached answer instead of the real one"])[0]
    signers = {name: load_account(accounts[i]) for name, i in
               (("a", 4), ("b", 5), ("c", 6), ("m", 7))}
    agents = start_agents(client.w3, address, start, [engine], signers, tmp_path,
                          network="ethereum:local:test", stake=10**20,
                          result_hooks={"m": lambda job_id, result: lie})
    a, b, c, m = agents
    names = {agent.address: agent.name for agent in agents}
    names_index = {agent.name: i for i, agent in enumerate(agents)}
    market_sdk = client.marketplace

    def status(job_id):
        return market_sdk.job(job_id).status

    def known(job_ids):  # every agent knows whether it delivered or lost each job
        return all(x.store.job(j).state in (JobState.LOST, JobState.REVEALED)
                   for x in agents for j in job_ids)

    def m_seats(count):
        return lambda drawn: drawn.count(m.address) == count

    # Seats drawn by stake (a quarter of it is m's): m holds one seat of every r = 3 job.
    majority = client.post_texts(MAJORITY_TEXTS, reward=REWARD, r=3, deadlines=WINDOWS)
    for job_id in majority:
        pin_draw(client, job_id, m_seats(1))
    drive([m, a, b, c], lambda: all(status(j).settled for j in majority), what="r = 3 jobs settled")
    singles = client.post_texts(SINGLE_TEXTS, reward=REWARD, r=1, deadlines=WINDOWS)
    drive(agents, lambda: known(singles), what="r = 1 jobs delivered")

    # The dishonest provider claims one job first and delivers; a challenge convicts it
    # (its round drawn to the honest three).
    [convicted] = client.post_texts([CONVICTED_TEXT], reward=REWARD, r=1, deadlines=WINDOWS)
    drive([m, a, b, c], lambda: known([convicted]), what="m's delivery")
    challenger.challenge(convicted)
    pin_draw(challenger, convicted, m_seats(0))
    drive(agents, lambda: status(convicted).settled, what="the convicting round")

    # An honest delivery challenged: m, drawn for one seat of the round, lies again; the
    # delivery stands.
    [upheld] = client.post_texts([UPHELD_TEXT], reward=REWARD, r=1, deadlines=WINDOWS)
    drive([a, b, c, m], lambda: known([upheld]), what="a's delivery")
    challenger.challenge(upheld)
    upheld_round = pin_draw(challenger, upheld, m_seats(1))
    drive(agents, lambda: status(upheld).settled, what="the upholding round")

    advance_time(client.params().challenge_window + 1)  # the other deliveries become final
    texts = dict(zip(majority + singles + [convicted, upheld],
                     MAJORITY_TEXTS + SINGLE_TEXTS + [CONVICTED_TEXT, UPHELD_TEXT]))
    drive(agents, lambda: all(x.store.job(j).state.final for x in agents for j in texts
                              if x.store.job(j) is not None), what="agents settling")

    # Every result, verified by the SDK against the chain, is the engine's exact bytes.
    results = client.results(list(texts))
    expected = dict(zip(texts, engine.embed(list(texts.values()))))
    assert {j: r.result for j, r in results.items()} == expected
    assert all(r.final for r in results.values())

    slashes = [e for e in market_sdk.get_events(start, events=["ProviderSlashed"])
               if isinstance(e, ProviderSlashed)]
    assert {names[e.provider] for e in slashes} == {"m"}
    by_job = {}
    for e in slashes:
        by_job.setdefault(e.job_id, []).append(e)
    assert set(by_job) == set(majority) | {convicted, upheld}
    for job_id in majority:  # m lost its seat on every r = 3 job, the other seats were paid
        seated = [names[market_sdk.seat(job_id, s).provider] for s in range(3)]
        assert seated.count("m") == 1 and [e.reason for e in by_job[job_id]] == [Fault.LOSING_DIGEST]
        assert [agents[names_index[n]].store.job(job_id).state for n in seated] == [
            JobState.SLASHED if n == "m" else JobState.PAID for n in seated]
        for idle in {"a", "b", "c"} - set(seated):  # drawn for no seat: it never held the job
            assert agents[names_index[idle]].store.job(job_id).state is JobState.LOST
    assert [(e.reason, e.seat) for e in by_job[convicted]] == [(Fault.LOST_CHALLENGE, 0)]
    [lie] = by_job[upheld]
    assert lie.reason is Fault.LOSING_DIGEST and upheld_round[lie.seat - 1] == m.address
    assert m.store.job(convicted).state is JobState.SLASHED
    assert a.store.job(upheld).state is JobState.PAID

    # Challenger accounting: each round's pay (R_CHALLENGE rewards) comes out of its
    # bond, the rest returns; only the successful challenge earns the honest share.
    params = client.params()
    finals = {e.job_id: e for e in market_sdk.get_events(start, events=["JobFinalized"])
              if isinstance(e, JobFinalized)}
    assert finals[convicted].client_refund > 0 and finals[upheld].client_refund == 0
    spent = FUNDS - challenger.pay_token().balance_of(challenger.address)
    assert spent - market_sdk.balance_of(challenger.address) == 2 * R_CHALLENGE * REWARD
    assert market_sdk.stake_credits_of(challenger.address) == (
        by_job[convicted][0].amount * params.slash_honest_bps // BPS)
    assert {status(j) for j in texts} == {JobStatus.FINALIZED}
    assert all(clean_transactions(agent) for agent in agents)
