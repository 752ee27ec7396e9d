"""Gas limits for r = 1 delivery batches, learned from the agent's own receipts.

deliver_many skips an item another provider took or a job that moved on (ItemSkipped)
instead of reverting, so its eth_estimateGas only sizes the gas limit, at the price of
the node running the whole batch (64 results) once more: at r = 1 that was a third of
anvil's work in the e2e bench. The first batch is estimated; after one where every item
was delivered, the limit is items x the most gas an item has cost x HEADROOM + FIXED
(a new payout bucket, the transaction's own cost). Every delivery writes the same slots,
so that is far above what a batch uses. A batch that fails anyway (a revert such as a
paused marketplace) makes the next one be estimated again, so a failure an estimate
would have caught costs one transaction, not one per batch.

Claims are estimated always: a seat's cost depends on which seat it is (and claim
batches are few, MAX_ID_BATCH jobs each).
"""

from __future__ import annotations

import math

LEARNED = ("deliver",)  # job steps whose gas limits are learned
HEADROOM = 1.5
FIXED = 100_000
INTRINSIC = 21_000  # every transaction's base cost, not an item's


class GasLimits:
    def __init__(self) -> None:
        self._per_item: dict[str, int] = {}

    def limit(self, kind: str, items: int) -> int | None:
        """The gas limit for a batch of `items`, or None: estimate it."""
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
