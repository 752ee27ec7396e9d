"""The contracts' ABI as bytes: call data, view results and logs, encoded and decoded
straight through eth_abi with tables built once from the shipped ABI (web3's contract
objects are several times slower per call), plus fast paths for the one-word values
the agents read for every job.

>>> fn = abi_tables("Marketplace")[0]["claim_many"]
>>> fn.encode([[256, 257]])[:4].hex()
'1f1db043'
"""
from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from functools import cache, lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from client.abi import load_abi
from client.errors import InvalidInput
from client.events import EVENT_TYPES, Event, LogMeta

# Checksumming hashes the address: decoding logs meets the same few addresses again and again.
checksum = lru_cache(maxsize=4096)(to_checksum_address)


@dataclass(frozen=True)
class Call:
    """A contract call ready to be signed: ``tx`` is the web3 transaction dict to send."""

    to: str
    data: bytes
    function: str

    @property
    def tx(self) -> dict:
        return {"to": self.to, "data": "0x" + self.data.hex(), "value": 0}


def _type_string(param: dict) -> str:
    kind = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_type_string(c) for c in param["components"]) + ")" + kind[5:]
    return kind


def pythonic(param: dict, value: Any) -> Any:
    """eth_abi output -> SDK conventions: checksummed addresses, bytes, tuples."""
    kind = param["type"]
    if kind.endswith("[]"):
        inner = {**param, "type": kind[:-2]}
        return tuple(pythonic(inner, v) for v in value)
    if kind == "address":
        return checksum(value)
    if kind.startswith("tuple"):
        return {c["name"]: pythonic(c, v) for c, v in zip(param["components"], value)}
    return value


class Function:
    """One ABI function: its selector, argument encoder and result decoder."""

    def __init__(self, item: dict):
        self.name = item["name"]
        self.inputs = [_type_string(p) for p in item["inputs"]]
        self.outputs_abi = item.get("outputs", [])
        self.outputs = [_type_string(p) for p in self.outputs_abi]
        self.selector = keccak(text=f"{self.name}({','.join(self.inputs)})")[:4]
        self.words = _word_types(self.outputs_abi)
        self.word_args = all(t in ("uint256", "bytes32") for t in self.inputs)  # views' ids and keys

    def encode(self, args: Sequence[Any]) -> bytes:
        if self.word_args and (words := encode_words(self.inputs, args)) is not None:
            return self.selector + words
        try:
            return self.selector + abi_encode(self.inputs, list(args))
        except Exception as exc:  # eth_abi raises EncodingError subclasses and TypeErrors
            raise InvalidInput(f"{self.name}: cannot encode arguments {args!r}: {exc}") from None

    def decode(self, data: bytes) -> Any:
        flat = decode_words(self.words, data) if self.words else None
        values = (flat,) if flat is not None else abi_decode(self.outputs, data)
        out = [pythonic(p, v) for p, v in zip(self.outputs_abi, values)]
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


def encode_words(types: list[str], args: Sequence[Any]) -> bytes | None:
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


def decode_words(types: list[str], data: bytes) -> tuple | None:
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


class EventDef:
    """One ABI event: its topic0 and decoder to the ``client.events`` dataclass of its name."""

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
            word = decode_words([param["type"]], bytes(topic)) or abi_decode([param["type"]], bytes(topic))
            values[param["name"]] = pythonic(param, word[0])
        data = bytes(log["data"])
        decoded = decode_words(self.data_types, data) or abi_decode(self.data_types, data)
        for param, value in zip(self.data, decoded):
            values[param["name"]] = pythonic(param, value)
        for name, enum in self.enums.items():
            values[name] = enum(values[name])
        meta = LogMeta(
            block_number=log["blockNumber"], block_hash=bytes(log["blockHash"]),
            tx_hash=bytes(log["transactionHash"]), log_index=log["logIndex"],
            address=checksum(log["address"]),
        )
        return self.cls(meta=meta, **values)


def _enum_fields(cls: type) -> dict[str, type[IntEnum]]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)
            if isinstance(hints[f.name], type) and issubclass(hints[f.name], IntEnum)}


@cache
def abi_tables(contract: str) -> tuple[dict[str, Function], dict[bytes, EventDef]]:
    """A shipped contract's functions by name and events by topic0."""
    abi = load_abi(contract)
    functions = {item["name"]: Function(item) for item in abi if item["type"] == "function"}
    events = {}
    for item in abi:
        if item["type"] == "event":
            event = EventDef(item)
            events[event.topic] = event
    return functions, events


@cache
def selectors(contract: str) -> dict[bytes, str]:
    """A shipped contract's function names by 4-byte selector."""
    return {f.selector: f.name for f in abi_tables(contract)[0].values()}


def to_bytes32(value: bytes | str, what: str = "value") -> bytes:
    """32 bytes from bytes or a 0x-hex string (``InvalidInput`` otherwise)."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise InvalidInput(f"{what} must be 32 bytes, got {len(raw)}")
    return raw

