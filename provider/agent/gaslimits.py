"""Gas limits for the job steps whose items all cost alike, learned from the agent's own
receipts instead of estimated.

eth_estimateGas runs a transaction on the node once more before it is sent: for the
agent's batches (64 results, or 256 seals) that doubled the node's work per job, and a
node simulating in its pending block (anvil) re-runs every queued transaction for each
estimate. Every item of a delivery batch, every seat of a commit or reveal batch (one
commit or reveal covers each seat the provider holds in the job), and every job of a
claim batch of r = 1 jobs (seat 0, no draw) writes the same slots, so after one batch of
a kind in which every item went through, the limit is items (seats) x the most gas an
item has cost x HEADROOM + FIXED (the transaction's own cost, a new payout bucket, a
first lock of stake) and the estimate is skipped. Claims that may draw seats (r >= 2, a
challenge round) stay estimated: a draw's cost depends on the weight tree and on how
many seats come to us; the sender says so by giving no kind (`JobSteps.send`).

What the estimate also did is catch a revert before sending: deliver_many and
claim_many skip the items that fail, but a commit or reveal batch is all or nothing. A
batch sent with a learned limit that fails (a missed deadline, or out of gas should an
item cost more than any before) makes the next batch of its kind be estimated again,
which finds the failing item (JobSteps.send_all_or_each): a failure costs one
transaction, not one per batch.
"""

from __future__ import annotations

import math

LEARNED = ("deliver", "commit", "reveal", "claim")  # kinds whose gas limits are learned
HEADROOM = 1.5
FIXED = 100_000
INTRINSIC = 21_000  # every transaction's base cost, not an item's


class GasLimits:
    def __init__(self) -> None:
        self._per_item: dict[str, int] = {}

    def limit(self, kind: str, items: int) -> int | None:
        """The gas limit for a batch of `items` (seats, for commits and reveals), or
        None: estimate it."""
        per_item = self._per_item.get(kind)
        return None if per_item is None else math.ceil(per_item * items * HEADROOM) + FIXED

    def learn(self, kind: str, gas_used: int, items: int, won: int) -> None:
        """A mined batch of `items` moved `won` of them with `gas_used`: only a batch
        with none skipped tells what an item costs."""
        if kind in LEARNED and 0 < items == won:
            per_item = math.ceil((gas_used - INTRINSIC) / items)
            self._per_item[kind] = max(self._per_item.get(kind, 0), per_item)

    def forget(self, kind: str) -> None:
        """A batch of `kind` failed: estimate the next one."""
        self._per_item.pop(kind, None)
