"""Raw chain reads: block headers, receipts and logs, read with plain JSON-RPC requests
(batched where the provider batches) and formatted only in the fields Verinfer reads.

web3's result formatters cost more CPU than a local node's round trip (``get_block``
formats every field of a block; receipts and logs checksum every log's address, a keccak
each), and agents and clients poll these all the time.

This module holds only those reads; how requests reach the node (``http_web3``) and how
failures are retried and translated is ``client.transport``'s.

>>> Header(1, b"\\x00" * 32, 0, None).number
1
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import Web3RPCError


@dataclass(frozen=True)
class Header:
    """The fields of a block Verinfer uses."""

    number: int
    hash: bytes
    timestamp: int
    base_fee: int | None


def headers(w3: Web3, blocks: Sequence[int | str]) -> list[Header | None]:
    """Headers of ``blocks`` (numbers or tags such as "latest"; None where the node has no
    such block), in one round trip where the provider batches."""
    requests = [("eth_getBlockByNumber", [hex(b) if isinstance(b, int) else b, False])
                for b in blocks]
    if len(requests) > 1 and hasattr(w3.provider, "make_batch_request"):
        answers = w3.provider.make_batch_request(requests)
        if not isinstance(answers, list) or len(answers) != len(requests):
            raise Web3RPCError(f"block batch refused: {answers}", rpc_response=answers)
        for answer in answers:
            if "error" in answer:
                raise Web3RPCError(str(answer["error"]), rpc_response=answer)
        results = [answer.get("result") for answer in answers]
    else:
        results = [w3.manager.request_blocking(*request) for request in requests]
    return [None if r is None else _header(r) for r in results]


def block_number(w3: Web3) -> int:
    """The head's number (web3's ``eth.block_number`` walks its formatters and cache)."""
    return _quantity(w3.manager.request_blocking("eth_blockNumber", []))


def block_hash(w3: Web3, number: int) -> bytes | None:
    """The hash of block ``number``, or None while the chain is shorter."""
    header = headers(w3, [number])[0]
    return None if header is None else header.hash


def mined_receipt(w3: Web3, tx_hash: bytes, logs: bool = True) -> dict[str, Any] | None:
    """The receipt of a mined transaction (None while it is not); without ``logs`` (a
    batch's receipt holds one per job), only its block, status and gas."""
    answer = w3.manager.request_blocking("eth_getTransactionReceipt", ["0x" + bytes(tx_hash).hex()])
    if answer is None or answer.get("blockNumber") is None:
        return None
    receipt = _formatted(answer, _RECEIPT)
    if logs:
        receipt["logs"] = [_formatted(log, _LOG) for log in answer["logs"]]
    return receipt


def get_logs(w3: Web3, from_block: int, to_block: int, addresses: Sequence[str],
             topics: list[Any]) -> list[dict[str, Any]]:
    """eth_getLogs of ``[from_block, to_block]``, its logs formatted as ``mined_receipt``'s."""
    answer = w3.manager.request_blocking("eth_getLogs", [{
        "fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses),
        "topics": topics,
    }])
    return [_formatted(log, _LOG) for log in answer]


def nonce(w3: Web3, address: str, block: str = "latest") -> int:
    """The account's transaction count at ``block`` ("latest" or "pending")."""
    return _quantity(w3.manager.request_blocking("eth_getTransactionCount", [address, block]))


def estimate_gas(w3: Web3, sender: str, to: str, data: bytes, value: int = 0) -> int:
    """eth_estimateGas of a call, its calldata sent as is: web3's request formatters walk
    every field, which costs more than the node's estimate for a batch's 50 kB of calldata.
    A revert is the node's error answer, raised as web3's ``Web3RPCError``."""
    return _quantity(w3.manager.request_blocking("eth_estimateGas", [{
        "from": sender, "to": to, "data": "0x" + bytes(data).hex(), "value": hex(value)}]))


def send_raw(w3: Web3, raw: bytes) -> None:
    """eth_sendRawTransaction; a refusal is the node's error answer (``Web3RPCError``)."""
    w3.manager.request_blocking("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])


def known_tx(w3: Web3, tx_hash: bytes) -> bool:
    """Whether the node knows the transaction (in its pool or mined)."""
    return w3.manager.request_blocking("eth_getTransactionByHash", ["0x" + bytes(tx_hash).hex()]) is not None


def _quantity(value: Any) -> int:
    # Quantities are hex on the wire; in-process test providers answer with ints.
    return int(value, 16) if isinstance(value, str) else int(value)


def _bytes(value: Any) -> bytes:
    # Hex on the wire (HexBytes' own parsing costs ~5x this; agents read every job's log).
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


_LOG = {"address": str, "topics": lambda topics: [_bytes(t) for t in topics], "data": _bytes,
        "blockNumber": _quantity, "blockHash": _bytes, "transactionHash": _bytes,
        "transactionIndex": _quantity, "logIndex": _quantity, "removed": bool}
_RECEIPT = {"transactionHash": _bytes, "blockNumber": _quantity, "blockHash": _bytes,
            "status": _quantity, "gasUsed": _quantity, "effectiveGasPrice": _quantity}


def _formatted(raw: dict[str, Any], fields: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    return {key: form(raw[key]) for key, form in fields.items() if raw.get(key) is not None}


def _header(block: dict[str, Any]) -> Header:
    base_fee = block.get("baseFeePerGas")
    return Header(_quantity(block["number"]), _bytes(block["hash"]),
                  _quantity(block["timestamp"]), None if base_fee is None else _quantity(base_fee))
