"""``Marketplace.gas_by_step``: gas per function from receipts, marketplace and token
transactions alike, with the jobs each batched entry point moved."""
from __future__ import annotations

from sdk_helpers import REWARD, WINDOWS

from client.marketplace import StepGas


def test_gas_by_step_sums_receipts_per_function(client, bots, sdk_market, token, chain):
    first = chain.blocks.head.number + 1
    approve = client.signer.send(token.build_approve(sdk_market.address, 10**20).tx)
    ids = client.post_many([b"one", b"two", b"three"], reward=REWARD, r=2, deadlines=WINDOWS)
    claims = [bots[0].send(sdk_market.build_claim_many(ids[:2])), bots[1].send(sdk_market.build_claim_many(ids))]

    steps = sdk_market.gas_by_step(first)
    assert steps["approve"] == StepGas("approve", txs=1, items=0, gas=approve["gasUsed"])
    assert (steps["post_jobs"].txs, steps["post_jobs"].items) == (1, 3)
    assert steps["claim_many"] == StepGas("claim_many", txs=2, items=5, gas=sum(c["gasUsed"] for c in claims))
    assert set(steps) == {"approve", "post_jobs", "claim_many"}
    assert set(sdk_market.gas_by_step(first, claims[0]["blockNumber"] - 1)) == {"approve", "post_jobs"}
