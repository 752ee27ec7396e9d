"""``bench.gas_steps.gas_by_step``: gas per function from receipts, marketplace and token
transactions alike, with the jobs each batched entry point moved."""
from __future__ import annotations

from sdk_helpers import REWARD, WINDOWS, draw

from bench.gas_steps import StepGas, gas_by_step


def test_gas_by_step_sums_receipts_per_function(client, bots, sdk_market, token, chain):
    m = sdk_market
    first = chain.blocks.head.number + 1
    approve = client.signer.send(token.build_approve(m.address, 10**20).tx)
    ids = client.post_many([b"one", b"two", b"three"], reward=REWARD, r=2, deadlines=WINDOWS)
    # Draws move no job: ids[0] drawn to one provider for both seats, the others at random.
    draws = []
    draw(chain, m, ids[0], client.signer, lambda d: len(set(d)) == 1, receipts=draws)
    draws.append(client.signer.send(m.build_claim_many(ids[1:]).tx))
    claims = [bot.send(m.build_claim_many(ids)) for bot in bots]
    # A job counts once for each provider taking seats of it (two seats: still one job).
    takers = {j: len({s.provider for s in m.round_seats(j).values()}) for j in ids}
    assert takers[ids[0]] == 1 and all(m.job(j).nclaimed == 2 for j in ids)
    single = client.post(b"r = 1", reward=REWARD, r=1, deadlines=WINDOWS)
    claims.append(bots[0].send(m.build_claim(single)))  # an r = 1 claim logs no event, but moves its job

    steps = gas_by_step(m, first)
    assert steps["approve"] == StepGas("approve", txs=1, items=0, gas=approve["gasUsed"])
    assert (steps["post_jobs"].txs, steps["post_jobs"].items) == (1, 3)
    assert (steps["post_job"].txs, steps["post_job"].items) == (1, 1)
    assert steps["claim_many"] == StepGas("claim_many", txs=6, items=sum(takers.values()),
                                          gas=sum(c["gasUsed"] for c in draws + claims[:4]))
    assert steps["claim"] == StepGas("claim", txs=1, items=1, gas=claims[4]["gasUsed"])
    assert set(steps) == {"approve", "post_jobs", "claim_many", "post_job", "claim"}
    assert set(gas_by_step(m, first, draws[0]["blockNumber"] - 1)) == {"approve", "post_jobs"}
