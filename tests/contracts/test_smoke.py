from market_helpers import (
    REWARD, STATUS_FINALIZED, advance, post, run_round, WINDOW,
)


def test_r3_lifecycle(staked, clients, providers, token, treasury, chain):
    m = staked
    client = clients[0]
    before = token.balanceOf(client)
    (job,) = post(m, client, r=3)
    run_round(m, job, providers[:3], [b"A", b"A", b"B"])
    m.finalize(job, sender=client)
    j = m.job(job)
    assert j.status == STATUS_FINALIZED
    print(j)
    print(m.balances(providers[0]), m.stake_credits(client), m.provider_info(providers[2]))


def test_r1_lifecycle(staked, clients, providers, chain):
    m = staked
    (job,) = post(m, clients[0], r=1)
    m.deliver(job, b"result", sender=providers[0])
    advance(chain, 3601)
    m.finalize(job, sender=providers[0])
    assert m.job(job).status == STATUS_FINALIZED
    assert m.balances(providers[0]) == REWARD
