"""One deployed contract over web3: builds ``Call``s, reads views (many at one block in
raw JSON-RPC batches) and decodes its logs and receipts, with ``client.abi_codec``.
``client.marketplace`` builds the marketplace and token facades on it."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from client.abi_codec import Call, abi_tables, checksum, selectors
from client.chain import block_number, get_logs
from client.events import Event
from client.transport import translate_errors

LOG_CHUNK = 5_000  # blocks per eth_getLogs request: public nodes cap the range
BATCH_CALLS = 200  # eth_calls per JSON-RPC batch request: public nodes cap batch sizes


def _job_topic(job_id: int) -> str:
    return "0x" + job_id.to_bytes(32, "big").hex()


class Contract:
    """Encoding, calls and log decoding for one deployed contract."""

    CONTRACT = ""

    def __init__(self, w3: Web3 | None, address: str):
        self.w3 = w3
        self.address = to_checksum_address(address)
        self._functions, self._events = abi_tables(self.CONTRACT)

    def build(self, function: str, *args: Any) -> Call:
        """A ``Call`` of ``function(*args)`` on this contract."""
        return Call(self.address, self._functions[function].encode(args), function)

    def function_of(self, calldata: bytes) -> str | None:
        """The name of this contract's function that a transaction's input calls (None if
        its selector is none of them).

        >>> from client.marketplace import Marketplace
        >>> m = Marketplace(None, "0x" + "11" * 20)
        >>> m.function_of(m.build_claim_many([256, 257]).data), m.function_of(b"\\0" * 4)
        ('claim_many', None)
        """
        return selectors(self.CONTRACT).get(bytes(calldata[:4]))

    def call(self, function: str, *args: Any, block: int | str = "latest") -> Any:
        """The decoded result of the view ``function(*args)``; reverts map to named errors."""
        fn = self._functions[function]
        data = fn.encode(args)
        answers = self._raw_calls([data], block)
        if answers is None:
            with translate_errors():
                return fn.decode(bytes(self.w3.eth.call({"to": self.address, "data": data}, block)))
        return fn.decode(answers[0])

    def call_many(self, calls: Iterable[tuple[str, Sequence[Any]]], block: int | str = "latest") -> list[Any]:
        """The decoded results of many views ``(function, args)``, in order, all read at
        the same ``block``: sent as JSON-RPC batches of ``BATCH_CALLS`` (one round trip
        each) where the node takes batches, else one by one. The first revert raises its
        named error, as ``call`` does.
        """
        prepared = [(name, self._functions[name].encode(args), args) for name, args in calls]
        if not prepared:
            return []
        if block == "latest":  # it moves between requests: pin every batch to one block
            with translate_errors():
                block = block_number(self.w3)
        out: list[Any] = []
        for start in range(0, len(prepared), BATCH_CALLS):
            chunk = prepared[start:start + BATCH_CALLS]
            answers = self._raw_calls([data for _, data, _ in chunk], block) if len(chunk) > 1 else None
            if answers is None:  # one call, or no batches here: one request per call
                out += [self.call(name, *args, block=block) for name, _, args in chunk]
            else:
                out += [self._functions[name].decode(raw) for (name, _, _), raw in zip(chunk, answers)]
        return out

    def _raw_calls(self, datas: list[bytes], block: int | str) -> list[bytes] | None:
        """Raw results of eth_calls at ``block``, one JSON-RPC request (a batch for
        several) sent straight to the node: web3's middlewares cost several times the
        round trip on a local node (a chain-id request per call, formatters). None where
        the provider speaks no JSON-RPC (ape's embedded chain) or the node refused the batch.
        """
        provider = self.w3.provider
        if not hasattr(provider, "make_batch_request"):  # HTTP / IPC / WS providers have it
            return None
        block_id = hex(block) if isinstance(block, int) else block
        requests = [("eth_call", [{"to": self.address, "data": "0x" + d.hex()}, block_id]) for d in datas]
        try:
            with translate_errors():
                answers = (provider.make_batch_request(requests) if len(requests) > 1
                           else [provider.make_request(*requests[0])])
        except NotImplementedError:
            return None
        if not isinstance(answers, list) or len(answers) != len(datas):
            return None  # the node refused the batch as a whole (e.g. too large): go one by one
        out = []
        for answer in answers:
            error = answer.get("error")
            if error is not None:
                message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
                with translate_errors():  # a revert becomes its named error
                    if "revert" in message.lower():
                        raise ContractLogicError(message, data=error.get("data") if isinstance(error, dict) else None)
                    raise Web3RPCError(message, rpc_response=answer)
            out.append(bytes.fromhex(answer["result"].removeprefix("0x")))
        return out

    def decode_log(self, log: dict) -> Event | None:
        """The event of one raw log of this contract, or None for logs it did not emit."""
        if not log["topics"] or checksum(log["address"]) != self.address:
            return None
        event = self._events.get(bytes(log["topics"][0]))
        return event.decode(log) if event and event.cls else None

    def decode_receipt(self, receipt: dict) -> list[Event]:
        """Every event of this contract in a transaction receipt, in order."""
        return [e for e in map(self.decode_log, receipt["logs"]) if e is not None]

    def topic(self, event: str) -> str:
        """topic0 of an event, for log filters."""
        for topic, definition in self._events.items():
            if definition.name == event:
                return "0x" + topic.hex()
        raise KeyError(event)

    def get_events(self, from_block: int = 0, to_block: int | str = "latest", *,
                   events: Iterable[str] | None = None, job_ids: Iterable[int] | None = None,
                   chunk: int = LOG_CHUNK) -> list[Event]:
        """Decoded events in ``[from_block, to_block]``, read in bounded block ranges.

        ``events`` restricts to these names; ``job_ids`` to jobs' events (their first
        indexed topic is the job id).
        """
        topics: list[Any] = [[self.topic(e) for e in events] if events is not None else None]
        if job_ids is not None:
            topics.append([_job_topic(j) for j in job_ids])
        while topics and topics[-1] is None:
            topics.pop()
        out: list[Event] = []
        with translate_errors():
            last = block_number(self.w3) if to_block == "latest" else int(to_block)
            start = from_block
            while start <= last:
                end = min(start + chunk - 1, last)
                logs = get_logs(self.w3, start, end, [self.address], topics)
                out.extend(e for e in map(self.decode_log, logs) if e is not None)
                start = end + 1
        return sorted(out, key=lambda e: e.meta.position)
