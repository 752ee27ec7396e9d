"""The SDK's mirror of the contracts can't drift: ABI, constants, states, seals, records."""
from __future__ import annotations

import ast
import dataclasses
import operator
import re
from pathlib import Path

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from client.abi import load_abi
from client.abi.__main__ import stale_abis
from client.abi_codec import abi_tables, decode_words, encode_words, pythonic
from client.events import EVENT_TYPES
from client.marketplace import Marketplace
from client.protocol import (BPS, DEFAULT_MIN_DRAW_STAKE, MAX_BATCH, MAX_ID_BATCH, MAX_INPUT, MAX_MIN_DRAW_STAKE,
                             MAX_REDUNDANCY, MAX_RESULT, MAX_RESULT_BATCH, MAX_REWARD, MAX_STAKE, MAX_WEIGHT, MAX_WINDOW,
                             R_CHALLENGE, WEIGHT_SHIFT, Fault, JobStatus, majority_chance, result_digest, seal,
                             seal_result)
from client.records import Assignment, JobInfo, ModelInfo, PendingPayouts, ProviderInfo, Seat

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
# Owner administration: deliberately no SDK builders (the deploy script / ape handle it).
OWNER_FUNCTIONS = {"register_model", "set_model_active", "set_fee_bps", "set_collateral_bps", "set_slash_split",
                   "set_challenge_window", "set_unbond_delay", "set_treasury", "set_paused", "transfer_ownership",
                   "accept_ownership", "set_min_windows", "set_min_draw_stake"}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow}


def _arith(node: ast.AST) -> int:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    raise ValueError(ast.dump(node))


def vyper_constants(*files: str) -> dict[str, int]:
    """NAME -> value of every `NAME: constant(uint256) = <arithmetic>` in the given modules."""
    out = {}
    for name in files:
        for m in re.finditer(r"^(\w+): constant\(uint256\) = (.+)$", (CONTRACTS / name).read_text(), re.M):
            try:
                out[m.group(1)] = _arith(ast.parse(m.group(2).replace("max_value(uint256)", "0"), mode="eval").body)
            except ValueError:
                continue
    return out


def test_shipped_abi_matches_a_fresh_compile():
    assert stale_abis() == {}, "contracts changed: run `python -m client.abi --refresh`"


def test_constants_states_and_faults_mirror_the_contracts():
    c = vyper_constants("modules/jobs.vy", "modules/settlement.vy")
    assert (c["MAX_REDUNDANCY"], c["R_CHALLENGE"], c["MAX_BATCH"], c["MAX_RESULT_BATCH"], c["MAX_ID_BATCH"],
            c["MAX_INPUT"], c["MAX_RESULT"], c["MAX_WINDOW"], c["MAX_REWARD"], c["BPS"]) == (
        MAX_REDUNDANCY, R_CHALLENGE, MAX_BATCH, MAX_RESULT_BATCH, MAX_ID_BATCH, MAX_INPUT, MAX_RESULT,
        MAX_WINDOW, MAX_REWARD, BPS)
    assert vyper_constants("modules/staking.vy")["MAX_STAKE"] == MAX_STAKE
    sortition = vyper_constants("modules/sortition.vy")
    assert (sortition["WEIGHT_SHIFT"], sortition["MAX_WEIGHT"]) == (WEIGHT_SHIFT, MAX_WEIGHT)
    params = vyper_constants("modules/params.vy")
    assert (params["DEFAULT_MIN_DRAW_STAKE"], params["MAX_MIN_DRAW_STAKE"]) == (DEFAULT_MIN_DRAW_STAKE,
                                                                                MAX_MIN_DRAW_STAKE)
    assert {k.removeprefix("STATUS_"): v for k, v in c.items() if k.startswith("STATUS_")} == \
        {s.name: s.value for s in JobStatus}
    assert {k.removeprefix("FAULT_"): v for k, v in c.items() if k.startswith("FAULT_")} == \
        {f.name: f.value for f in Fault}


def test_every_event_has_a_matching_dataclass():
    for item in load_abi("Marketplace"):
        if item["type"] != "event":
            continue
        cls = EVENT_TYPES[item["name"]]
        assert [f.name for f in dataclasses.fields(cls)] == ["meta", *(p["name"] for p in item["inputs"])], cls


def test_every_non_owner_entry_point_has_a_builder():
    entry_points = {i["name"] for i in load_abi("Marketplace")
                    if i["type"] == "function" and i["stateMutability"] == "nonpayable"}
    builders = {name.removeprefix("build_") for name in dir(Marketplace) if name.startswith("build_")}
    assert builders == entry_points - OWNER_FUNCTIONS


WORD_VALUES = {"uint256": st.integers(0, 2**256 - 1), "bytes32": st.binary(min_size=32, max_size=32),
               "address": st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
               "bool": st.booleans()}
WORD_VIEWS = [f for f in abi_tables("Marketplace")[0].values() if f.words]


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_word_views_decode_as_eth_abi_does(data):
    """Views of one-word scalars (the job view) skip eth_abi: same values, same refusals."""
    assert "job" in {f.name for f in WORD_VIEWS}
    fn = data.draw(st.sampled_from(WORD_VIEWS))
    values = tuple(data.draw(WORD_VALUES[t]) for t in fn.words)
    raw = abi_encode(fn.outputs, [values])
    assert fn.decode(raw) == pythonic(fn.outputs_abi[0], abi_decode(fn.outputs, raw)[0])
    first = fn.words.index("address") if "address" in fn.words else None
    if first is not None:  # dirty padding: left to eth_abi, which refuses it
        with pytest.raises(DecodingError):
            fn.decode(raw[:32 * first] + b"\x01" + raw[32 * first + 1:])


EVENTS = [e for e in abi_tables("Marketplace")[1].values() if e.cls is not None]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_event_data_decodes_as_eth_abi_does(data):
    """Events' topics and data (one-word scalars and bytes) are sliced, not run through
    eth_abi: same values; a non-canonical encoding (dirty padding, an odd offset, extra
    bytes) is left to eth_abi."""
    event = data.draw(st.sampled_from([e for e in EVENTS if "bytes" in e.data_types]))
    values = [data.draw(st.binary(max_size=200) if t == "bytes" else WORD_VALUES[t]) for t in event.data_types]
    raw = abi_encode(event.data_types, values)
    assert decode_words(event.data_types, raw) == abi_decode(event.data_types, raw)
    size = len(values[event.data_types.index("bytes")])
    variants = [raw + b"\x00" * 32, raw[:-1]]
    if size % 32:  # a non-zero byte in the padding after the bytes value
        variants.append(raw[:-1] + b"\x01")
    first = 32 * event.data_types.index("bytes")
    variants.append(raw[:first + 31] + bytes([raw[first + 31] + 32]) + raw[first + 32:])  # offset off
    for bad in variants:
        assert decode_words(event.data_types, bad) is None


WORD_ARG = {"uint256": st.one_of(st.integers(0, 2**256 - 1), st.integers(-5, -1), st.integers(2**256, 2**257),
                                st.booleans(), st.binary(min_size=32, max_size=32)),
            "bytes32": st.one_of(st.binary(min_size=0, max_size=33), st.integers(0, 5), st.text(max_size=3))}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_word_arguments_encode_as_eth_abi_does(data):
    """uint256 / bytes32 arguments are packed by hand: the same bytes as eth_abi where it
    takes the values; where it might not (range, type, a short bytes32), eth_abi decides."""
    types = data.draw(st.lists(st.sampled_from(["uint256", "bytes32"]), max_size=3))
    args = [data.draw(WORD_ARG[t]) for t in types] + data.draw(st.lists(st.integers(0, 9), max_size=1))
    fast = encode_words(types, args)
    if fast is not None:
        assert fast == abi_encode(types, args)
    else:
        assert len(args) != len(types) or not all(
            (t == "uint256" and type(a) is int and 0 <= a < 2**256) or (t == "bytes32" and type(a) is bytes
                                                                         and len(a) == 32)
            for t, a in zip(types, args))


def test_view_records_match_the_view_structs():
    outputs = {i["name"]: i["outputs"] for i in load_abi("Marketplace") if i["type"] == "function"}

    def names(view: str) -> list[str]:
        (struct,) = outputs[view]
        return [c["name"] for c in struct["components"]]

    assert [f.name for f in dataclasses.fields(JobInfo)] == ["job_id", *names("job")]
    assert [f.name for f in dataclasses.fields(ModelInfo)] == names("model_info")
    assert [f.name for f in dataclasses.fields(Seat)] == names("seat")
    assert [f.name for f in dataclasses.fields(PendingPayouts)] == names("pending_payouts")
    assert [f.name for f in dataclasses.fields(ProviderInfo)] == ["address", *names("provider_info"), "model_ids"]
    assert len(dataclasses.fields(Assignment)) == len(outputs["assignment"])


@settings(max_examples=200, deadline=None)
@given(job_id=st.one_of(st.integers(0, 2**64), st.just(2**256 - 1)), provider=st.binary(min_size=20, max_size=20),
       result=st.binary(min_size=1, max_size=MAX_RESULT), salt=st.binary(min_size=32, max_size=32))
def test_seal_equals_the_contracts_formula(job_id, provider, result, salt):
    """keccak256(abi_encode(job_id, provider, keccak256(result), salt)), as jobs.vy computes it
    (the contract accepting the SDK's seals at reveal is tested end to end)."""
    address = "0x" + provider.hex()
    expected = keccak(abi_encode(["uint256", "address", "bytes32", "bytes32"],
                                 [job_id, address, keccak(result), salt]))
    assert seal_result(job_id, address, result, salt) == seal(job_id, address, result_digest(result), salt) == expected


def test_majority_chance_is_the_binomial_tail():
    for share in (0.0, 0.05, 1 / 3, 0.5, 0.9, 1.0):
        assert majority_chance(share) == pytest.approx(3 * share**2 - 2 * share**3)
    # contracts/README.md's table: P_5(0.2) and P_7(0.1)
    assert (round(majority_chance(0.2, 5), 4), round(majority_chance(0.1, 7), 4)) == (0.0579, 0.0027)
    assert majority_chance(0.5, 7) == pytest.approx(0.5) and majority_chance(0.3, 1) == 0.3
    with pytest.raises(ValueError):
        majority_chance(1.5)


def test_seal_refuses_what_abi_encoding_would():
    for job_id, provider, digest in ((-1, "0x" + "22" * 20, bytes(32)), (2**256, "0x" + "22" * 20, bytes(32)),
                                     (1, "0x" + "22" * 19, bytes(32)), (1, "0x" + "22" * 20, bytes(31))):
        with pytest.raises(ValueError):
            seal(job_id, provider, digest, bytes(32))
