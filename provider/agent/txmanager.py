"""The one owner of the provider account's nonce (in the spirit of Chainlink's txmgr).

Every transaction is first an *intent* in the store with its nonce, then each signed
version is stored before it is sent. So after a crash nothing is lost or sent twice:
`reconcile` (run at start, then by every poll) finds receipts of known hashes, marks
a nonce that another transaction used, re-sends byte for byte what the node no longer
has (or never got), confirms receipts, notices receipts that a reorg removed, and
replaces stuck transactions at the same nonce with a fee bump, up to a hard fee cap.
Confirmed is not final: within `reorg_window` blocks a confirmed transaction whose
block a reorg took away is re-opened and sent again at its nonce, so the account's
nonces never gap (its `reorgs` count tells the job logic to re-check what it applied).

The account must be used by this agent only: a second sender would take its nonces.

Over 300 lines on purpose: sending, tracking, re-sending and reorg checks all hold the
one nonce lock and read each other's state of an intent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import Web3Exception

from client.chain import block_hash, estimate_gas, headers, known_tx, mined_receipt, nonce, send_raw
from client.transport import TRANSIENT_ERRORS, Backoff, retry
from provider.agent.config import TxConfig
from provider.agent.errors import TxError, TxTimeout, TxWouldRevert
from provider.agent.metrics import Metrics
from provider.agent.service import Service
from provider.agent.store import Broadcast, Store, TxRecord, TxStatus

log = logging.getLogger("verinfer.agent.tx")

# Answers to eth_sendRawTransaction that mean "the node already has exactly this one".
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "already exists")
# Polls in a row that must see a nonce counted without our receipt before it counts as taken.
NONCE_TAKEN_POLLS = 3


def _ceil_pct(value: int, percent: int) -> int:
    return -(-value * percent // 100)


class TxManager(Service):
    """Sends, tracks, re-sends and replaces the account's transactions."""

    name = "txmanager"

    def __init__(
        self,
        w3: Web3,
        signer: LocalAccount,
        store: Store,
        config: TxConfig,
        *,
        metrics: Metrics | None = None,
        reorg_window: int = 64,
        receipt_logs: Collection[str] = (),
    ):
        """`reorg_window`: how many blocks back a confirmed transaction is still
        re-checked (the watcher's `reorg_window`: deeper reorgs stop the agent).
        `receipt_logs`: kinds of transaction whose receipts' events the caller reads
        (`receipt`): fetched with their logs, once."""
        super().__init__()
        self.w3, self.signer, self.store, self.config = w3, signer, store, config
        self.reorg_window = reorg_window
        self._lock = threading.RLock()
        self._next_nonce: int | None = None
        self._head: int | None = None  # head block number at the last poll
        # tx id -> consecutive polls that saw its nonce counted with none of its hashes mined
        self._nonce_suspects: dict[int, int] = {}
        self.chain_id: int | None = None
        self._receipt_logs = frozenset(receipt_logs)
        # tx id -> its receipt with logs, from the poll that confirmed it, until `receipt` takes it
        self._confirmed_receipts: dict[int, Any] = {}
        metrics = metrics or Metrics()
        self._sent = metrics.counter("verinfer_tx_broadcasts_total", "Signed transactions sent")
        self._replaced = metrics.counter("verinfer_tx_replaced_total", "Fee-bumped replacements")
        self._reorged = metrics.counter("verinfer_tx_reorged_total",
                                        "Mined transactions a reorg took out of the chain")
        self._done = metrics.counter("verinfer_tx_confirmed_total", "Confirmed transactions")
        self._fees = metrics.counter("verinfer_tx_fees_wei_total", "Wei paid for gas")

    @property
    def address(self) -> str:
        return self.signer.address

    @property
    def next_nonce(self) -> int | None:
        return self._next_nonce

    def tx(self, tx_id: int) -> TxRecord | None:
        """The intent as stored now."""
        return self.store.tx(tx_id)

    def reorged(self) -> list[TxRecord]:
        """Open intents a reorg took out of a block (re-sent at their nonces), in nonce order."""
        return self.store.reorged_txs()

    def receipt(self, tx: TxRecord) -> Any | None:
        """The receipt, logs included, of a confirmed intent of a `receipt_logs` kind; None
        while it is not mined (anymore: a reorg can take it out of the chain after it was
        confirmed). The poll that confirmed it fetched it: it is handed over while its
        block is still in the chain (a header read), not fetched again."""
        held = self._confirmed_receipts.pop(tx.id, None)
        if (held is not None and bytes(held["transactionHash"]) == tx.mined_hash
                and block_hash(self.w3, held["blockNumber"]) == bytes(held["blockHash"])):
            return held
        return None if tx.mined_hash is None else mined_receipt(self.w3, tx.mined_hash)

    # ---- lifecycle -------------------------------------------------------------------

    def setup(self) -> None:
        self.reconcile()

    def run_forever(self) -> None:
        delays = Backoff().delays()
        while not self.stop_event.is_set():
            try:
                self.poll()
                delay = self.config.poll_interval
                delays = Backoff().delays()
            except TRANSIENT_ERRORS as err:
                delay = next(delays)
                log.warning("tx poll: rpc unavailable",
                            extra={"error": type(err).__name__, "retry_in": round(delay, 2)})
            except Exception:  # a bad answer for one poll must not stop the agent
                delay = next(delays)
                log.exception("tx poll failed")
            self.stop_event.wait(delay)

    def reconcile(self) -> None:
        """Bring stored intents in line with the chain and decide the next nonce."""

        def once() -> None:
            with self._lock:
                self.chain_id = self.w3.eth.chain_id
                self._poll()
                on_chain = nonce(self.w3, self.address, "pending")
                stored = self.store.max_nonce()
                self._next_nonce = max(on_chain, 0 if stored is None else stored + 1)

        retry(once, what="reconcile transactions", stop=self.stop_event)
        log.info("tx manager ready", extra={
            "address": self.address, "next_nonce": self._next_nonce,
            "open": len(self.store.open_txs()),
        })

    # ---- sending ---------------------------------------------------------------------

    def send(
        self,
        to: str,
        data: bytes = b"",
        *,
        kind: str,
        value: int = 0,
        gas: int | None = None,
        extra_gas: int = 0,
        meta: dict[str, Any] | None = None,
        on_record: Callable[[int], None] | None = None,
    ) -> int:
        """Record and broadcast a transaction; returns its intent id.

        Without `gas`, it is estimated first (plus `extra_gas`: work the estimate on
        today's state cannot see, which the transaction may have to do once mined): a
        call that would revert raises TxWouldRevert and nothing is recorded. Once recorded, the intent is always
        carried through (re-sent, replaced) even if this broadcast fails.
        `on_record(tx_id)` runs inside the store transaction that records the intent,
        so the caller's own bookkeeping (e.g. "job 7 waits for tx 12") can never be
        lost while the transaction goes out, nor exist without it.
        """
        if self._next_nonce is None:
            raise TxError("tx manager is not set up (call setup / reconcile first)")
        to = to_checksum_address(to)
        deadline = self.config.send_deadline
        if gas is None:
            gas = extra_gas + retry(lambda: self._estimate(to, data, value), what="estimate gas",
                                    stop=self.stop_event, deadline=deadline)
        block = retry(lambda: headers(self.w3, ["latest"])[0], what="latest block",
                      stop=self.stop_event, deadline=deadline)
        with self._lock:
            nonce = self._next_nonce
            with self.store.atomic():
                tx_id = self.store.add_tx(
                    kind=kind, to=to, data=bytes(data), value=value, gas=gas, nonce=nonce, meta=meta
                )
                if on_record is not None:
                    on_record(tx_id)
                self._next_nonce = nonce + 1
            tx = self.store.tx(tx_id)
            assert tx is not None
            self._sign_and_send(tx, *self._initial_fees(block.base_fee), block.number)
        log.info("tx intent", extra={"tx_id": tx_id, "kind": kind, "nonce": nonce, "gas": gas})
        return tx_id

    def _estimate(self, to: str, data: bytes, value: int) -> int:
        try:
            estimate = estimate_gas(self.w3, self.address, to, data, value)
        except Web3Exception as err:  # the node's error answer: a revert, or a call it can't run
            raise TxWouldRevert(f"transaction would revert: {err}") from err
        return int(estimate * self.config.gas_multiplier)

    def _initial_fees(self, base_fee: int) -> tuple[int, int]:
        cap = self.config.max_fee_wei
        max_fee = min(cap, 2 * base_fee + self.config.priority_fee_wei)
        if max_fee < base_fee:
            log.warning("fee cap below base fee; tx waits for cheaper blocks",
                        extra={"base_fee": base_fee, "cap": cap})
        return max_fee, min(self.config.priority_fee_wei, max_fee)

    def _bumped_fees(self, last: Broadcast, base_fee: int) -> tuple[int, int] | None:
        """Fees for a replacement, or None when the cap leaves no room for a valid bump."""
        pct = 100 + self.config.fee_bump_percent
        priority = max(_ceil_pct(last.priority_fee, pct), self.config.priority_fee_wei)
        max_fee = min(max(_ceil_pct(last.max_fee, pct), 2 * base_fee + priority),
                      self.config.max_fee_wei)
        priority = min(priority, max_fee)
        # Nodes accept a replacement only if both fees rise by at least 10%.
        if max_fee < _ceil_pct(last.max_fee, 110) or priority < _ceil_pct(last.priority_fee, 110):
            return None
        return max_fee, priority

    def _sign_and_send(self, tx: TxRecord, max_fee: int, priority_fee: int, head: int) -> None:
        assert self.chain_id is not None
        signed = self.signer.sign_transaction({
            "type": 2,
            "chainId": self.chain_id,
            "nonce": tx.nonce,
            "to": tx.to,
            "data": HexBytes(tx.data),
            "value": tx.value,
            "gas": tx.gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority_fee,
        })
        tx_hash, raw = bytes(signed.hash), bytes(signed.raw_transaction)
        self.store.add_broadcast(tx.id, tx_hash=tx_hash, max_fee=max_fee,
                                 priority_fee=priority_fee, raw=raw, head_block=head)
        self._push(tx, tx_hash, raw)

    def _push(self, tx: TxRecord, tx_hash: bytes, raw: bytes) -> None:
        """Hand a signed transaction to the node; failures are left to the poll loop."""
        try:
            send_raw(self.w3, raw)
        except TRANSIENT_ERRORS as err:
            log.warning("broadcast failed; will retry",
                        extra={"tx_id": tx.id, "nonce": tx.nonce, "error": type(err).__name__})
            return
        except Exception as err:  # the node refused it (nonce too low, underpriced, funds...)
            message = str(err)
            if any(s in message.lower() for s in _ALREADY_KNOWN):
                return
            log.warning("node refused tx", extra={"tx_id": tx.id, "nonce": tx.nonce,
                                                  "hash": tx_hash, "error": message[:200]})
            self.store.set_tx_error(tx.id, message[:500])
            return
        self._sent.inc(kind=tx.kind)
        log.debug("tx broadcast", extra={"tx_id": tx.id, "nonce": tx.nonce, "hash": tx_hash})

    # ---- tracking --------------------------------------------------------------------

    def poll(self) -> None:
        """One pass over open transactions. Transient RPC errors propagate to the caller."""
        with self._lock:
            self._poll()

    def wait(self, tx_id: int, timeout: float = 120.0) -> TxRecord:
        """Poll until the intent is CONFIRMED (check `.succeeded`) or NONCE_TAKEN.

        Raises TxTimeout after `timeout` seconds; the intent stays open and tracked.
        """
        give_up = time.monotonic() + timeout
        while True:
            record = self.store.tx(tx_id)
            if record is None:
                raise KeyError(f"unknown transaction intent {tx_id}")
            if not record.status.is_open:
                return record
            if time.monotonic() > give_up:
                raise TxTimeout(f"tx {tx_id} (nonce {record.nonce}) not confirmed in {timeout}s")
            try:
                self.poll()
            except TRANSIENT_ERRORS as err:
                log.warning("wait: rpc unavailable", extra={"tx_id": tx_id,
                                                            "error": type(err).__name__})
            time.sleep(self.config.poll_interval)

    def _poll(self) -> None:
        open_txs = self.store.open_txs()
        newest = self.store.newest_receipt_block()
        if not open_txs and (newest is None or (
                self._head is not None and newest[0] <= self._head - self.reorg_window)):
            return  # nothing in flight, nothing a reorg could still take away
        # Read the mined nonce before any receipt: a nonce counted here whose tx has
        # no receipt among our hashes below was certainly used by someone else.
        mined_nonce = nonce(self.w3, self.address)
        block = headers(self.w3, ["latest"])[0]
        self._head = block.number
        if self._recheck_confirmed(block.number, mined_nonce, newest):
            open_txs = self.store.open_txs()
        for tx in open_txs:
            self._check(tx, block.number, block.base_fee, mined_nonce)

    def _recheck_confirmed(self, head: int, mined_nonce: int,
                           newest: tuple[int, bytes] | None) -> bool:
        """Re-open confirmed transactions a reorg took out of the chain; True if any.

        A confirmed nonce the chain no longer counts lost its block for certain (and
        every later nonce would wait behind it forever). If the newest block holding one
        of our receipts changed its hash, any receipt in the reorg window may have moved:
        those are all looked up again (a block hash commits to every block below it).
        """
        suspects = self.store.confirmed_txs(nonce_from=mined_nonce)
        if newest is not None and newest[0] > head - self.reorg_window:
            if block_hash(self.w3, newest[0]) != newest[1]:
                suspects = self.store.confirmed_txs(
                    nonce_from=mined_nonce, block_from=head - self.reorg_window + 1)
        reopened = False
        for tx in suspects:
            receipt = self._receipt(tx)
            if receipt is not None:  # still mined, maybe in another block: recount its depth
                self._record_receipt(tx, receipt, head)
                continue
            log.warning("confirmed tx lost its block to a reorg; sending it again",
                        extra={"tx_id": tx.id, "nonce": tx.nonce, "kind": tx.kind,
                               "block": tx.block_number})
            self.store.reopen_tx(tx.id)
            self._confirmed_receipts.pop(tx.id, None)
            self._reorged.inc(kind=tx.kind)
            self._resend(tx, head)
            reopened = True
        return reopened

    def _receipt(self, tx: TxRecord) -> Any | None:
        logs = tx.kind in self._receipt_logs
        for cast in reversed(tx.broadcasts):
            if (mined := mined_receipt(self.w3, cast.hash, logs=logs)) is not None:
                return mined
        return None

    def _check(self, tx: TxRecord, head: int, base_fee: int, mined_nonce: int) -> None:
        receipt = self._receipt(tx)
        if receipt is not None:
            self._nonce_suspects.pop(tx.id, None)
            self._record_receipt(tx, receipt, head)
            return
        if tx.status is TxStatus.MINED:
            log.warning("tx receipt gone (reorg); back to pending",
                        extra={"tx_id": tx.id, "nonce": tx.nonce})
            self.store.reopen_tx(tx.id)
            self._confirmed_receipts.pop(tx.id, None)
            self._reorged.inc(kind=tx.kind)
            # A nonce read taken before a reorg removed our receipt is stale: judged later.
            self._resend(tx, head)
            return
        if tx.nonce < mined_nonce:
            # A node may count a nonce before it serves the receipt, and a reorg may be
            # in flight: only a nonce that stays counted, with none of our hashes mined,
            # over several polls (each with a fresh nonce read) was used by someone else.
            seen = self._nonce_suspects[tx.id] = self._nonce_suspects.get(tx.id, 0) + 1
            if seen < NONCE_TAKEN_POLLS:
                return
            self._nonce_suspects.pop(tx.id, None)
            log.error("nonce used by a transaction this agent did not send",
                      extra={"tx_id": tx.id, "nonce": tx.nonce, "kind": tx.kind})
            self.store.update_tx(tx.id, TxStatus.NONCE_TAKEN,
                                 error="nonce used by another transaction")
            return
        if not tx.broadcasts:  # crashed between recording the intent and signing it
            self._sign_and_send(tx, *self._initial_fees(base_fee), head)
            return
        last = tx.broadcasts[-1]
        stuck = (head - last.head_block >= self.config.stuck_blocks
                 or time.time() - last.sent_at >= self.config.stuck_seconds)
        # Only the transaction holding up the queue, or one priced below the current
        # base fee, is worth a bump; later nonces just wait behind it.
        if stuck and (tx.nonce == mined_nonce or last.max_fee < base_fee):
            fees = self._bumped_fees(last, base_fee)
            if fees is not None:
                log.warning("replacing stuck tx", extra={
                    "tx_id": tx.id, "nonce": tx.nonce, "old_max_fee": last.max_fee,
                    "max_fee": fees[0], "priority_fee": fees[1]})
                self._replaced.inc(kind=tx.kind)
                self._sign_and_send(tx, *fees, head)
                return
            log.warning("stuck tx at fee cap; sending again",
                        extra={"tx_id": tx.id, "nonce": tx.nonce, "max_fee": last.max_fee})
            self._push(tx, last.hash, last.raw)
            self.store.touch_broadcast(last.hash, head)
        elif not known_tx(self.w3, last.hash):
            log.warning("tx dropped by the node; sending again",
                        extra={"tx_id": tx.id, "nonce": tx.nonce})
            self._push(tx, last.hash, last.raw)

    def _resend(self, tx: TxRecord, head: int) -> None:
        """Send the last signed bytes of a transaction a reorg took out again. Its stuck
        clock restarts from now: a fee bump must not race the same bytes' re-mining."""
        if tx.broadcasts:
            last = tx.broadcasts[-1]
            self.store.touch_broadcast(last.hash, head)
            self._push(tx, last.hash, last.raw)

    def _record_receipt(self, tx: TxRecord, receipt: Any, head: int) -> None:
        depth = head - receipt["blockNumber"] + 1
        status = TxStatus.CONFIRMED if depth >= self.config.confirmations else TxStatus.MINED
        mined_hash, block_hash = bytes(receipt["transactionHash"]), bytes(receipt["blockHash"])
        if (status, mined_hash, block_hash) == (tx.status, tx.mined_hash, tx.block_hash):
            return
        price = receipt.get("effectiveGasPrice")
        self.store.update_tx(
            tx.id, status,
            mined_hash=mined_hash,
            block_number=receipt["blockNumber"],
            block_hash=block_hash,
            receipt_status=receipt["status"],
            gas_used=receipt["gasUsed"],
            effective_gas_price=None if price is None else int(price),
        )
        if status is TxStatus.CONFIRMED and tx.status is not TxStatus.CONFIRMED:
            if "logs" in receipt:
                self._confirmed_receipts[tx.id] = receipt
            outcome = "success" if receipt["status"] == 1 else "reverted"
            self._done.inc(kind=tx.kind, result=outcome)
            self._fees.inc(receipt["gasUsed"] * int(price or 0))
            log.info("tx confirmed", extra={"tx_id": tx.id, "kind": tx.kind, "nonce": tx.nonce,
                                            "result": outcome, "block": receipt["blockNumber"],
                                            "gas_used": receipt["gasUsed"]})
