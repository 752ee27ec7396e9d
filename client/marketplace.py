"""The one module that speaks the contracts' ABI: call builders, views, event decoding.

Builders return a ``Call`` (target + calldata) that any sender can sign: the client's
``Signer`` or the provider agent's own transaction manager. Views return the frozen
records of ``client.records``; logs decode to the dataclasses of ``client.events``.
Encoding and decoding go straight through eth_abi with tables built once from the
shipped ABI (web3's contract objects are several times slower per call).

>>> call = Marketplace(None, "0x" + "11" * 20).build_claim_many([256, 257])
>>> call.function, call.data[:4].hex()
('claim_many', '1f1db043')
"""
from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from functools import cache, lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from client.abi import load_abi
from client.chain import block_number, get_logs
from client.errors import InvalidInput
from client.events import (EVENT_TYPES, Event, ItemSkipped, JobChallenged, JobClaimed, JobFinalized, JobPosted,
                           LogMeta, ResultRevealed, SealCommitted)
from client.protocol import (MAX_BATCH, MAX_ID_BATCH, MAX_INPUT, MAX_RESULT, MAX_RESULT_BATCH, R_CHALLENGE,
                             JobStatus)
from client.records import Assignment, Deadlines, JobInfo, ModelInfo, Params, PendingPayouts, ProviderInfo, Seat
from client.transport import translate_errors

LOG_CHUNK = 5_000  # blocks per eth_getLogs request: public nodes cap the range
TOPICS_PER_QUERY = 100  # job ids OR-ed in one log filter
# Checksumming hashes the address: decoding logs meets the same few addresses again and again.
_checksum = lru_cache(maxsize=4096)(to_checksum_address)
BATCH_CALLS = 200  # eth_calls per JSON-RPC batch request: public nodes cap batch sizes

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


@dataclass(frozen=True)
class Call:
    """A contract call ready to be signed: ``tx`` is the web3 transaction dict to send."""

    to: str
    data: bytes
    function: str

    @property
    def tx(self) -> dict:
        return {"to": self.to, "data": "0x" + self.data.hex(), "value": 0}


@dataclass
class StepGas:
    """Gas of one contract function over a block range (see ``Marketplace.gas_by_step``)."""

    function: str
    txs: int = 0
    items: int = 0  # jobs moved (events of ITEM_EVENTS); 0 for non-job steps
    gas: int = 0


def _type_string(param: dict) -> str:
    kind = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_type_string(c) for c in param["components"]) + ")" + kind[5:]
    return kind


def _pythonic(param: dict, value: Any) -> Any:
    """eth_abi output -> SDK conventions: checksummed addresses, bytes, tuples."""
    kind = param["type"]
    if kind.endswith("[]"):
        inner = {**param, "type": kind[:-2]}
        return tuple(_pythonic(inner, v) for v in value)
    if kind == "address":
        return _checksum(value)
    if kind.startswith("tuple"):
        return {c["name"]: _pythonic(c, v) for c, v in zip(param["components"], value)}
    return value


class _Function:
    def __init__(self, item: dict):
        self.name = item["name"]
        self.inputs = [_type_string(p) for p in item["inputs"]]
        self.outputs_abi = item.get("outputs", [])
        self.outputs = [_type_string(p) for p in self.outputs_abi]
        self.selector = keccak(text=f"{self.name}({','.join(self.inputs)})")[:4]
        self.words = _word_types(self.outputs_abi)
        self.word_args = all(t in ("uint256", "bytes32") for t in self.inputs)  # views' ids and keys

    def encode(self, args: Sequence[Any]) -> bytes:
        if self.word_args and (words := _encode_words(self.inputs, args)) is not None:
            return self.selector + words
        try:
            return self.selector + abi_encode(self.inputs, list(args))
        except Exception as exc:  # eth_abi raises EncodingError subclasses and TypeErrors
            raise InvalidInput(f"{self.name}: cannot encode arguments {args!r}: {exc}") from None

    def decode(self, data: bytes) -> Any:
        flat = _decode_words(self.words, data) if self.words else None
        values = (flat,) if flat is not None else abi_decode(self.outputs, data)
        out = [_pythonic(p, v) for p, v in zip(self.outputs_abi, values)]
        return out[0] if len(out) == 1 else tuple(out)


_WORD_TYPES = ("uint256", "bytes32", "address", "bool")


def _word_types(outputs: list[dict]) -> list[str] | None:
    """The types of a view's outputs if they are one tuple of one-word scalars (the job
    view): those are decoded by slicing words, as eth_abi takes ~0.3 ms per job view,
    more than the view's round trip. None for any other outputs."""
    if len(outputs) == 1 and outputs[0]["type"] == "tuple":
        types = [c["type"] for c in outputs[0]["components"]]
        if all(t in _WORD_TYPES for t in types):
            return types
    return None


def _encode_words(types: list[str], args: Sequence[Any]) -> bytes | None:
    """As eth_abi encodes uint256 and bytes32 arguments (job ids, seats, model ids): the
    views the agents read for every job. None for anything else (out of range, a short
    or non-bytes value, a wrong count), left to eth_abi, so its errors stay its own."""
    if len(args) != len(types):
        return None
    out = []
    for kind, value in zip(types, args):
        if kind == "uint256" and type(value) is int and 0 <= value < 2**256:
            out.append(value.to_bytes(32, "big"))
        elif kind == "bytes32" and type(value) is bytes and len(value) == 32:
            out.append(value)
        else:
            return None
    return b"".join(out)


def _decode_words(types: list[str], data: bytes) -> tuple | None:
    """As eth_abi decodes values of one-word scalars and ``bytes`` (an event's data), or
    None for anything but their canonical encoding (wrong length or offsets, non-zero
    padding): eth_abi judges those, so errors stay eth_abi's."""
    out: list[Any] = []
    tail = 32 * len(types)  # where the next dynamic value must start
    for i, kind in enumerate(types):
        word = data[32 * i:32 * i + 32]
        if len(word) < 32:
            return None
        if kind == "bytes":
            size = int.from_bytes(data[tail:tail + 32], "big")
            start, end = tail + 32, tail + 32 + -(-size // 32) * 32
            if int.from_bytes(word, "big") != tail or len(data) < end or any(data[start + size:end]):
                return None
            out.append(bytes(data[start:start + size]))
            tail = end
        elif kind == "uint256":
            out.append(int.from_bytes(word, "big"))
        elif kind == "bytes32":
            out.append(bytes(word))
        elif kind == "address" and not any(word[:12]):
            out.append("0x" + word[12:].hex())
        elif kind == "bool" and not any(word[:31]) and word[31] <= 1:
            out.append(bool(word[31]))
        else:
            return None
    return tuple(out) if len(data) == tail else None


class _EventDef:
    def __init__(self, item: dict):
        self.name = item["name"]
        self.inputs = item["inputs"]
        self.topic = keccak(text=f"{self.name}({','.join(_type_string(p) for p in self.inputs)})")
        self.indexed = [p for p in self.inputs if p["indexed"]]
        self.data = [p for p in self.inputs if not p["indexed"]]
        self.data_types = [_type_string(p) for p in self.data]
        self.cls = EVENT_TYPES.get(self.name)
        self.enums = _enum_fields(self.cls) if self.cls else {}

    def decode(self, log: dict) -> Event:
        values = {}
        for param, topic in zip(self.indexed, log["topics"][1:]):
            word = _decode_words([param["type"]], bytes(topic)) or abi_decode([param["type"]], bytes(topic))
            values[param["name"]] = _pythonic(param, word[0])
        data = bytes(log["data"])
        decoded = _decode_words(self.data_types, data) or abi_decode(self.data_types, data)
        for param, value in zip(self.data, decoded):
            values[param["name"]] = _pythonic(param, value)
        for name, enum in self.enums.items():
            values[name] = enum(values[name])
        meta = LogMeta(
            block_number=log["blockNumber"], block_hash=bytes(log["blockHash"]),
            tx_hash=bytes(log["transactionHash"]), log_index=log["logIndex"],
            address=_checksum(log["address"]),
        )
        return self.cls(meta=meta, **values)


def _enum_fields(cls: type) -> dict[str, type[IntEnum]]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)
            if isinstance(hints[f.name], type) and issubclass(hints[f.name], IntEnum)}


@cache
def _tables(contract: str) -> tuple[dict[str, _Function], dict[bytes, _EventDef]]:
    abi = load_abi(contract)
    functions = {item["name"]: _Function(item) for item in abi if item["type"] == "function"}
    events = {}
    for item in abi:
        if item["type"] == "event":
            event = _EventDef(item)
            events[event.topic] = event
    return functions, events


@cache
def _selectors(contract: str) -> dict[bytes, str]:
    return {f.selector: f.name for f in _tables(contract)[0].values()}


def _job_topic(job_id: int) -> str:
    return "0x" + job_id.to_bytes(32, "big").hex()


def to_bytes32(value: bytes | str, what: str = "value") -> bytes:
    """32 bytes from bytes or a 0x-hex string (``InvalidInput`` otherwise)."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise InvalidInput(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


def _batch(items: Sequence, what: str, limit: int) -> list:
    if not 1 <= len(items) <= limit:
        raise InvalidInput(f"{what}: 1..{limit} items per call, got {len(items)}")
    return list(items)


def _sized(data: bytes, limit: int, what: str) -> bytes:
    data = bytes(data)
    if not 1 <= len(data) <= limit:
        raise InvalidInput(f"{what} must be 1..{limit} bytes, got {len(data)}")
    return data


class _Contract:
    """Encoding, calls and log decoding for one deployed contract."""

    CONTRACT = ""

    def __init__(self, w3: Web3 | None, address: str):
        self.w3 = w3
        self.address = to_checksum_address(address)
        self._functions, self._events = _tables(self.CONTRACT)

    def build(self, function: str, *args: Any) -> Call:
        """A ``Call`` of ``function(*args)`` on this contract."""
        return Call(self.address, self._functions[function].encode(args), function)

    def function_of(self, calldata: bytes) -> str | None:
        """The name of this contract's function that a transaction's input calls (None if
        its selector is none of them).

        >>> m = Marketplace(None, "0x" + "11" * 20)
        >>> m.function_of(m.build_claim_many([256, 257]).data), m.function_of(b"\\0" * 4)
        ('claim_many', None)
        """
        return _selectors(self.CONTRACT).get(bytes(calldata[:4]))

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
        if not log["topics"] or _checksum(log["address"]) != self.address:
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


class Marketplace(_Contract):
    """The deployed marketplace: builders for every entry point, typed views, events.

    >>> m = Marketplace(None, "0x" + "11" * 20)
    >>> m.build_commit(256, bytes(31) + b"\\x01").function
    'commit'
    """

    CONTRACT = "Marketplace"

    # ------------------------------------------------------------ clients

    def build_post_job(self, model_id: bytes, input: bytes, r: int, reward: int,
                       claim_window: int, commit_window: int, reveal_window: int) -> Call:
        """Post one job; escrow r x (reward + fee) comes from the internal balance, then transferFrom."""
        return self.build("post_job", to_bytes32(model_id, "model_id"), _sized(input, MAX_INPUT, "input"),
                          r, reward, claim_window, commit_window, reveal_window)

    def build_post_jobs(self, model_id: bytes, inputs: Sequence[bytes], r: int, reward: int,
                        claim_window: int, commit_window: int, reveal_window: int) -> Call:
        """Post up to MAX_BATCH jobs with the same terms; ids are first_id + i."""
        inputs = [_sized(x, MAX_INPUT, f"input {i}") for i, x in enumerate(_batch(inputs, "post_jobs", MAX_BATCH))]
        return self.build("post_jobs", to_bytes32(model_id, "model_id"), inputs, r, reward,
                          claim_window, commit_window, reveal_window)

    def build_cancel(self, job_id: int) -> Call:
        """The client withdraws an unclaimed job (full refund to its balance)."""
        return self.build("cancel", job_id)

    def build_challenge(self, job_id: int) -> Call:
        """Dispute a delivered r = 1 result inside its window (bond: ``challenge_bond``)."""
        return self.build("challenge", job_id)

    def build_deposit(self, amount: int) -> Call:
        """Move payment tokens into the internal balance (approve first)."""
        return self.build("deposit", amount)

    def build_withdraw(self) -> Call:
        """Collect the internal payment balance and stake credits."""
        return self.build("withdraw")

    # ------------------------------------------------------------ anyone (keepers)

    def build_finalize(self, job_id: int) -> Call:
        """Settle a due job (reverts with the reason when it isn't due)."""
        return self.build("finalize", job_id)

    def build_finalize_many(self, job_ids: Sequence[int]) -> Call:
        """Settle many jobs; items not due are skipped with ItemSkipped."""
        return self.build("finalize_many", _batch(job_ids, "finalize_many", MAX_ID_BATCH))

    # ------------------------------------------------------------ providers

    def build_register(self, model_ids: Sequence[bytes], price: int) -> Call:
        """Register as a provider serving ``model_ids`` at an asking ``price`` per seat."""
        return self.build("register", [to_bytes32(m, "model_id") for m in model_ids], price)

    def build_update_provider(self, model_ids: Sequence[bytes], price: int) -> Call:
        """Replace the served models and the asking price."""
        return self.build("update_provider", [to_bytes32(m, "model_id") for m in model_ids], price)

    def build_stake(self, amount: int) -> Call:
        """Add stake (approve the stake token first)."""
        return self.build("stake", amount)

    def build_request_unbond(self, amount: int) -> Call:
        """Move free stake to unbonding."""
        return self.build("request_unbond", amount)

    def build_withdraw_stake(self) -> Call:
        """Withdraw unbonded stake after the delay."""
        return self.build("withdraw_stake")

    def build_release_payouts(self, provider: str) -> Call:
        """Credit ``provider``'s matured r = 1 pay without withdrawing (anyone may)."""
        return self.build("release_payouts", provider)

    def build_claim(self, job_id: int) -> Call:
        """Take your seats of a job, locking collateral per seat. r >= 2 or a re-execution
        round: the seats drawn to you (the first claim in a block after the post or the
        challenge draws them; a strict claim by someone not drawn reverts, undoing that
        draw: use ``build_claim_many`` to draw). r = 1: the job's seat, first come; then
        deliver from a later block."""
        return self.build("claim", job_id)

    def build_claim_many(self, job_ids: Sequence[int]) -> Call:
        """Claim many (as ``build_claim``); items that fail are skipped with ItemSkipped
        (``jobs: not drawn``, ``jobs: draw not ready``, ``jobs: already claimed``, ...),
        not reverted, and a draw an item made stands."""
        return self.build("claim_many", _batch(job_ids, "claim_many", MAX_ID_BATCH))

    def build_deliver(self, job_id: int, result: bytes) -> Call:
        """r = 1: deliver the result of a job you claimed in an earlier block."""
        return self.build("deliver", job_id, _sized(result, MAX_RESULT, "result"))

    def build_deliver_many(self, job_ids: Sequence[int], results: Sequence[bytes]) -> Call:
        """Deliver many r = 1 jobs you claimed; failing items are skipped."""
        self._same_length(job_ids, results)
        return self.build("deliver_many", _batch(job_ids, "deliver_many", MAX_RESULT_BATCH),
                          [_sized(r, MAX_RESULT, "result") for r in results])

    def build_commit(self, job_id: int, seal: bytes) -> Call:
        """Commit a seal (``client.protocol.seal``) for every seat you hold in the round and
        have not committed (a seat a redraw gave you after your commit takes its own)."""
        return self.build("commit", job_id, to_bytes32(seal, "seal"))

    def build_commit_many(self, job_ids: Sequence[int], seals: Sequence[bytes]) -> Call:
        """Commit many seals; all or nothing."""
        self._same_length(job_ids, seals)
        return self.build("commit_many", _batch(job_ids, "commit_many", MAX_ID_BATCH), [to_bytes32(s, "seal") for s in seals])

    def build_reveal(self, job_id: int, result: bytes, salt: bytes) -> Call:
        """Reveal the committed result and its salt: opens every committed seat of yours whose
        seal they match."""
        return self.build("reveal", job_id, _sized(result, MAX_RESULT, "result"), to_bytes32(salt, "salt"))

    def build_reveal_many(self, job_ids: Sequence[int], results: Sequence[bytes], salts: Sequence[bytes]) -> Call:
        """Reveal many; all or nothing."""
        self._same_length(job_ids, results, salts)
        return self.build("reveal_many", _batch(job_ids, "reveal_many", MAX_RESULT_BATCH),
                          [_sized(r, MAX_RESULT, "result") for r in results], [to_bytes32(s, "salt") for s in salts])

    def build_reweigh(self, account: str) -> Call:
        """Re-apply the current ``min_draw_stake`` to ``account``'s draw weight (anyone may;
        e.g. after the owner raised the floor)."""
        return self.build("reweigh", account)

    @staticmethod
    def _same_length(*lists: Sequence) -> None:
        if len({len(x) for x in lists}) != 1:
            raise InvalidInput(f"parallel lists differ in length: {[len(x) for x in lists]}")

    # ------------------------------------------------------------ views

    def job(self, job_id: int, block: int | str = "latest") -> JobInfo:
        """A job's terms and current state (``JobNotFound`` for unknown ids)."""
        return _job_info(job_id, self.call("job", job_id, block=block))

    def jobs(self, job_ids: Iterable[int], block: int | str = "latest") -> list[JobInfo]:
        """Many jobs' views (as ``job``), read at one block in batched round trips.

        >>> [i.status for i in market.jobs([256, 257])]  # doctest: +SKIP
        [<JobStatus.OPEN: 0>, <JobStatus.DELIVERED: 2>]
        """
        ids = list(job_ids)
        return [_job_info(j, v) for j, v in zip(ids, self.call_many([("job", (j,)) for j in ids], block))]

    def seat(self, job_id: int, index: int, block: int | str = "latest") -> Seat:
        """Seat ``index`` of a job: its drawn provider (r = 1: the claimant), whether it
        took the seat, its seal or digest."""
        return Seat(**self.call("seat", job_id, index, block=block))

    def round_seats(self, job_id: int, block: int | str = "latest") -> dict[int, Seat]:
        """The seats of a job's current round by index (0..r-1, or 1..R_CHALLENGE once
        challenged), read at one block.

        >>> {s: seat.provider for s, seat in market.round_seats(256).items()}  # doctest: +SKIP
        {0: '0xAlice...', 1: '0xMallory...', 2: '0xAlice...'}
        """
        if block == "latest":
            with translate_errors():
                block = block_number(self.w3)
        info = self.job(job_id, block=block)
        indices = range(1, R_CHALLENGE + 1) if info.status == JobStatus.CHALLENGED else range(info.r)
        views = self.call_many([("seat", (job_id, s)) for s in indices], block)
        return {s: Seat(**v) for s, v in zip(indices, views)}

    def seats(self, wanted: dict[int, Iterable[int]], block: int | str = "latest") -> dict[int, dict[int, Seat]]:
        """Seats of many jobs, ``{job id: seat indices}`` (any round's: an r = 1 job's
        delivered seat 0 and its re-execution seats 1..R_CHALLENGE), by job and index,
        read at one block in batched round trips."""
        pairs = [(job_id, s) for job_id, indices in wanted.items() for s in indices]
        out: dict[int, dict[int, Seat]] = {job_id: {} for job_id in wanted}
        for (job_id, s), view in zip(pairs, self.call_many([("seat", pair) for pair in pairs], block)):
            out[job_id][s] = Seat(**view)
        return out

    def assignment(self, job_id: int, account: str) -> Assignment:
        """Whether ``account`` holds (took) a seat of the job's current round, and its first seat."""
        return Assignment(*self.call("assignment", job_id, account))

    def model(self, model_id: bytes) -> ModelInfo:
        """A registered model (``ModelNotFound`` otherwise)."""
        return ModelInfo(**self.call("model_info", to_bytes32(model_id, "model_id")))

    def models(self) -> list[ModelInfo]:
        """Every registered model, active or not, by registry index."""
        return [ModelInfo(**self.call("model_at", i)) for i in range(self.call("model_count"))]

    def provider(self, account: str) -> ProviderInfo:
        """A provider's registration, stake and served models."""
        info = self.call("provider_info", account)
        models = self.call("provider_models", account)
        return ProviderInfo(address=to_checksum_address(account), model_ids=models, **info)

    def providers(self, accounts: Iterable[str], block: int | str = "latest") -> list[ProviderInfo]:
        """Many providers' views (as ``provider``), read at one block in batched round trips."""
        accounts = [to_checksum_address(a) for a in accounts]
        views = self.call_many([(name, (a,)) for a in accounts for name in ("provider_info", "provider_models")],
                               block)
        return [ProviderInfo(address=a, model_ids=views[2 * i + 1], **views[2 * i]) for i, a in enumerate(accounts)]

    def provider_accounts(self, from_block: int = 0, to_block: int | str = "latest") -> set[str]:
        """Every account that registered as a provider in ``[from_block, to_block]``
        (registered or not today: ``providers`` says)."""
        return {e.provider for e in self.get_events(from_block, to_block, events=["ProviderRegistered"])}

    def pending_payouts(self, provider: str) -> PendingPayouts:
        """A provider's r = 1 pay waiting for its challenge windows (released lazily)."""
        return PendingPayouts(**self.call("pending_payouts", provider))

    def params(self) -> Params:
        """The current protocol parameters."""
        client_bps, honest_bps, treasury_bps = self.call("slash_split")
        return Params(
            fee_bps=self.call("fee_bps"), collateral_bps=self.call("collateral_bps"),
            slash_client_bps=client_bps, slash_honest_bps=honest_bps, slash_treasury_bps=treasury_bps,
            challenge_window=self.call("challenge_window"), unbond_delay=self.call("unbond_delay"),
            paused=self.call("paused"), treasury=self.call("treasury"), owner=self.call("owner"),
            min_windows=self.min_windows(), min_draw_stake=self.min_draw_stake(),
        )

    def min_windows(self) -> Deadlines:
        """The shortest claim / commit / reveal windows a post may ask for (owner-set per
        network); a challenge's re-execution round runs on them."""
        return Deadlines(*self.call("min_windows"))

    def min_draw_stake(self) -> int:
        """The least bonded stake (free + locked, stake-token units) that gives a provider a
        draw weight (owner-set; applies from each provider's next stake change or ``reweigh``)."""
        return self.call("min_draw_stake")

    def draw_weight(self, account: str, block: int | str = "latest") -> int:
        """``account``'s weight in the seat draws of the models it serves
        (``client.protocol.draw_weight`` of its bonded stake at its last stake change)."""
        return self.call("draw_weight", account, block=block)

    def draw_weights(self, accounts: Iterable[str], block: int | str = "latest") -> dict[str, int]:
        """Many accounts' draw weights, read at one block in batched round trips."""
        accounts = [to_checksum_address(a) for a in accounts]
        return dict(zip(accounts, self.call_many([("draw_weight", (a,)) for a in accounts], block)))

    def job_price(self, r: int, reward: int, count: int = 1) -> int:
        """Escrow needed to post ``count`` jobs at the current fee."""
        return self.call("job_price", r, reward, count)

    def challenge_bond(self, job_id: int) -> int:
        """Bond a challenge of ``job_id`` costs."""
        return self.call("challenge_bond", job_id)

    def escrow_of(self, job_id: int) -> int:
        """Payment tokens held for an unsettled job (0 once settled)."""
        return self.call("escrow_of", job_id)

    def balance_of(self, account: str) -> int:
        """Internal payment-token balance of ``account``."""
        return self.call("balances", account)

    def stake_credits_of(self, account: str) -> int:
        """Withdrawable stake-token credits of ``account``."""
        return self.call("stake_credits", account)

    def pay_token(self) -> str:
        return self.call("PAY_TOKEN")

    def stake_token(self) -> str:
        return self.call("STAKE_TOKEN")

    def job_events(self, job_ids: Iterable[int], from_block: int = 0, to_block: int | str = "latest", *,
                   events: Iterable[str] | None = None, chunk: int = LOG_CHUNK) -> list[Event]:
        """Every event of these jobs (all of them carry the job id as first topic), in order."""
        ids = list(job_ids)
        out: list[Event] = []
        for start in range(0, len(ids), TOPICS_PER_QUERY):
            out += self.get_events(from_block, to_block, events=events, job_ids=ids[start:start + TOPICS_PER_QUERY],
                                   chunk=chunk)
        return sorted(out, key=lambda e: e.meta.position)

    def gas_by_step(self, from_block: int, to_block: int | None = None) -> dict[str, StepGas]:
        """Gas per function of every transaction to this marketplace or its tokens in blocks
        ``[from_block, to_block]`` (default: to the head), from their receipts; ``items``
        counts the jobs each entry point of ``ITEM_EVENTS`` moved. One RPC call per block
        and per transaction: meant for benchmarks and reports, not hot paths."""
        contracts: dict[str, _Contract] = {self.address: self}
        for token in {self.pay_token(), self.stake_token()}:
            contracts[to_checksum_address(token)] = Token(self.w3, token)
        steps: dict[str, StepGas] = {}
        with translate_errors():
            last = self.w3.eth.block_number if to_block is None else to_block
            for number in range(from_block, last + 1):
                for tx in self.w3.eth.get_block(number, full_transactions=True)["transactions"]:
                    contract = contracts.get(tx.get("to") and to_checksum_address(tx["to"]))
                    if contract is None:
                        continue
                    calldata = bytes(tx.get("input", tx.get("data", b"")))  # eth-tester says "data"
                    function = contract.function_of(calldata) or "unknown"
                    receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                    step = steps.setdefault(function, StepGas(function))
                    step.txs += 1
                    step.gas += receipt["gasUsed"]
                    if function in ITEM_EVENTS and contract is self and receipt["status"] == 1:
                        step.items += self._items_moved(function, calldata, receipt)
        return steps

    def _items_moved(self, function: str, calldata: bytes, receipt: Any) -> int:
        """Jobs a successful transaction of an ITEM_EVENTS entry point moved (see there)."""
        events = self.decode_receipt(receipt)
        fn = self._functions[function]
        if not fn.inputs or fn.inputs[0] not in ("uint256", "uint256[]"):  # posts: no ids in
            return sum(isinstance(e, ITEM_EVENTS[function]) for e in events)
        first = abi_decode(fn.inputs, bytes(calldata[4:]))[0]
        ids = set(first) if isinstance(first, (list, tuple)) else {first}
        return len(ids - {e.job_id for e in events if isinstance(e, ItemSkipped)})


def _job_info(job_id: int, view: dict) -> JobInfo:
    return JobInfo(job_id=job_id, **{**view, "status": JobStatus(view["status"])})


class Token(_Contract):
    """An ERC-20 (the payment or stake token)."""

    CONTRACT = "TestToken"

    def balance_of(self, account: str) -> int:
        return self.call("balanceOf", account)

    def allowance(self, owner: str, spender: str) -> int:
        return self.call("allowance", owner, spender)

    def symbol(self) -> str:
        return self.call("symbol")

    def decimals(self) -> int:
        return self.call("decimals")

    def build_approve(self, spender: str, amount: int) -> Call:
        return self.build("approve", spender, amount)

    def build_transfer(self, to: str, amount: int) -> Call:
        return self.build("transfer", to, amount)

    def build_mint(self, to: str, amount: int) -> Call:
        """The local test token's open faucet (not part of ERC-20)."""
        return self.build("mint", to, amount)
