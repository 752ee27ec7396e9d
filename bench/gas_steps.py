"""Gas per contract function over a block range, from receipts: what the demo's gas table
and the benches report. One RPC call per block and per transaction: meant for
benchmarks and reports, not hot paths."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address

from client.abi_codec import abi_tables
from client.contract import Contract
from client.events import (Event, ItemSkipped, JobChallenged, JobClaimed, JobFinalized, JobPosted, ResultRevealed,
                           SealCommitted)
from client.marketplace import Marketplace, Token
from client.transport import translate_errors

# The event that marks one job moved by each (batched) entry point. ``gas_by_step`` counts
# the jobs a successful transaction moved: for entry points taking job ids, the distinct
# ids of its calldata less those skipped (ItemSkipped; an r = 1 claim logs nothing, and a
# claim, commit or reveal logs one event per seat its sender holds); for posts, the events.
ITEM_EVENTS: dict[str, type[Event]] = {
    "post_job": JobPosted, "post_jobs": JobPosted, "claim": JobClaimed, "claim_many": JobClaimed,
    "commit": SealCommitted, "commit_many": SealCommitted, "reveal": ResultRevealed,
    "reveal_many": ResultRevealed, "deliver": ResultRevealed, "deliver_many": ResultRevealed,
    "finalize": JobFinalized, "finalize_many": JobFinalized, "challenge": JobChallenged,
}


@dataclass
class StepGas:
    """Gas of one contract function over a block range (see ``gas_by_step``)."""

    function: str
    txs: int = 0
    items: int = 0  # jobs moved (events of ITEM_EVENTS); 0 for non-job steps
    gas: int = 0


def gas_by_step(market: Marketplace, from_block: int, to_block: int | None = None) -> dict[str, StepGas]:
    """Gas per function of every transaction to ``market`` or its tokens in blocks
    ``[from_block, to_block]`` (default: to the head), from their receipts; ``items``
    counts the jobs each entry point of ``ITEM_EVENTS`` moved."""
    w3 = market.w3
    contracts: dict[str, Contract] = {market.address: market}
    for token in {market.pay_token(), market.stake_token()}:
        contracts[to_checksum_address(token)] = Token(w3, token)
    steps: dict[str, StepGas] = {}
    with translate_errors():
        last = w3.eth.block_number if to_block is None else to_block
        for number in range(from_block, last + 1):
            for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
                contract = contracts.get(tx.get("to") and to_checksum_address(tx["to"]))
                if contract is None:
                    continue
                calldata = bytes(tx.get("input", tx.get("data", b"")))  # eth-tester says "data"
                function = contract.function_of(calldata) or "unknown"
                receipt = w3.eth.get_transaction_receipt(tx["hash"])
                step = steps.setdefault(function, StepGas(function))
                step.txs += 1
                step.gas += receipt["gasUsed"]
                if function in ITEM_EVENTS and contract is market and receipt["status"] == 1:
                    step.items += _items_moved(market, function, calldata, receipt)
    return steps


def _items_moved(market: Marketplace, function: str, calldata: bytes, receipt: Any) -> int:
    """Jobs a successful transaction of an ITEM_EVENTS entry point moved (see there)."""
    events = market.decode_receipt(receipt)
    fn = abi_tables(market.CONTRACT)[0][function]
    if not fn.inputs or fn.inputs[0] not in ("uint256", "uint256[]"):  # posts: no ids in
        return sum(isinstance(e, ITEM_EVENTS[function]) for e in events)
    first = abi_decode(fn.inputs, bytes(calldata[4:]))[0]
    ids = set(first) if isinstance(first, (list, tuple)) else {first}
    return len(ids - {e.job_id for e in events if isinstance(e, ItemSkipped)})
