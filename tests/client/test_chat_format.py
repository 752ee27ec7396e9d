"""The chat job format (client/chat.py): one canonical input per request, and result
bytes that decode to exactly what was encoded; everything else refused with a reason."""
from __future__ import annotations

import json

import pytest

from client.chat import (CHAT_FORMAT, MAX_CONTEXT, MAX_TOKENS, ChatAnswer, ChatMessage, ChatRequest)
from client.errors import EncodingError, InvalidInput
from client.protocol import MAX_INPUT, MAX_RESULT

HI = [ChatMessage(role="user", content="Hi")]


def canonical(**fields) -> bytes:
    base = {"max_tokens": 64, "messages": None, "prompt": "x", "seed": 0, "temperature_milli": 0,
            "top_k": 0, "top_p_micro": 1_000_000, "v": 1}
    return json.dumps({**base, **fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_request_round_trips_through_its_canonical_bytes():
    request = ChatRequest(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ça va? 東京"}],
                          max_tokens=MAX_TOKENS, temperature_milli=700, top_k=50, top_p_micro=900_000, seed=2**64 - 1)
    raw = request.encode()
    assert ChatRequest.decode(raw) == request
    assert "東京".encode() in raw  # UTF-8 as itself, not \\u escapes
    assert raw == canonical(messages=[{"content": "Be brief.", "role": "system"}, {"content": "Ça va? 東京", "role": "user"}],
                            prompt=None, max_tokens=MAX_TOKENS, temperature_milli=700, top_k=50, top_p_micro=900_000,
                            seed=2**64 - 1)
    assert ChatRequest.decode(ChatRequest(prompt="Once upon").encode()).prompt == "Once upon"


@pytest.mark.parametrize("raw, why", [
    (canonical().replace(b",", b", "), "canonical"),  # whitespace
    (canonical()[:-1] + b',"v":1}', "canonical"),  # a duplicate key
    (json.dumps(json.loads(canonical())).encode(), "canonical"),  # unsorted or spaced
    (canonical().replace(b'"seed":0,', b""), "canonical"),  # a field left to its default
    (canonical(prompt="caf\u00e9").replace("é".encode(), b"\\u00e9"), "canonical"),  # an escaped character
    (canonical(temperature_milli=0.0), "temperature_milli"),
    (canonical(extra=1), "extra"),
    (canonical(v=2), "v"),
    (canonical(messages=[{"role": "user", "content": "a"}]), "exactly one"),
    (canonical(prompt=None), "exactly one"),
    (canonical(messages=[], prompt=None), "empty"),
    (canonical(prompt=" \n\t"), "no text"),
    (canonical(messages=[{"role": "tool", "content": "a"}], prompt=None), "role"),
    (canonical(max_tokens=0), "max_tokens"),
    (canonical(max_tokens=MAX_TOKENS + 1), "max_tokens"),
    (canonical(top_p_micro=0), "top_p_micro"),
    (canonical(seed=-1), "seed"),
    (canonical(temperature_milli=100_001), "temperature_milli"),
    (b"\xff\xfe", "JSON"),
    (b"", "JSON"),
    (canonical(prompt="x" * MAX_INPUT, max_tokens=1), "at most 2048"),  # over MAX_INPUT bytes
    (canonical(prompt="x" * (MAX_CONTEXT - 300), max_tokens=MAX_TOKENS), "max_tokens"),  # past the context
], ids=lambda value: value if isinstance(value, str) else "")
def test_invalid_inputs_are_refused_with_the_reason(raw, why):
    with pytest.raises(InvalidInput, match=f"input 7: .*{why}"):
        ChatRequest.decode(raw, 7)


def test_the_size_rules_are_inclusive():
    fits = ChatRequest(prompt="x" * 10, max_tokens=MAX_TOKENS)
    pad = MAX_CONTEXT - MAX_TOKENS - len(fits.encode())
    edge = ChatRequest(prompt="x" * (10 + pad), max_tokens=MAX_TOKENS)
    assert len(edge.encode()) + MAX_TOKENS == MAX_CONTEXT
    with pytest.raises(InvalidInput, match="at most"):
        ChatRequest(prompt="x" * (11 + pad), max_tokens=MAX_TOKENS).encode()
    # The longest input (max_tokens 1) is one byte under a job's MAX_INPUT.
    big = ChatRequest(prompt="x" * 100, max_tokens=1)
    longest = ChatRequest(prompt="x" * (99 + MAX_CONTEXT - len(big.encode())), max_tokens=1)
    assert len(longest.encode()) == MAX_CONTEXT - 1 < MAX_INPUT


def test_an_answer_round_trips_and_its_layout_is_the_documented_one():
    answer = ChatAnswer(finish="length", ids=(0, 1, 65535), text="Paris ✓")
    raw = answer.encode()
    assert raw[:4] == bytes([CHAT_FORMAT, 1, 0, 3]) and raw[4:10] == bytes.fromhex("00000001ffff")
    assert raw[10:] == "Paris ✓".encode()
    assert ChatAnswer.decode(raw) == answer
    assert ChatAnswer.decode(ChatAnswer(finish="stop", ids=(), text="").encode()).ids == ()


@pytest.mark.parametrize("raw", [b"", b"\x01\x00\x00\x00", b"\x02\x03\x00\x00", b"\x02\x00\x00\x02\x00\x01",
                                 b"\x02\x00\x00\x00\xff"])
def test_bytes_that_are_no_answer_are_refused(raw):
    with pytest.raises(EncodingError):
        ChatAnswer.decode(raw)


def test_an_answer_too_long_for_a_result_is_cut_to_the_longest_prefix_that_fits():
    ids = list(range(MAX_TOKENS))
    text_of = lambda prefix: "".join(f"<{i}>" for i in prefix)  # ~6 bytes of text a token
    answer = ChatAnswer.fitted(ids, "length", text_of)
    raw = answer.encode()
    assert answer.finish == "cut" and len(raw) <= MAX_RESULT
    n = len(answer.ids)
    assert answer.ids == tuple(ids[:n]) and answer.text == text_of(ids[:n])
    assert len(ChatAnswer(finish="cut", ids=tuple(ids[:n + 1]), text=text_of(ids[:n + 1])).encode()) > MAX_RESULT
    # The ids alone of the longest answer always fit.
    short = ChatAnswer.fitted(ids, "length", lambda prefix: "")
    assert short.finish == "length" and len(short.encode()) == 4 + 2 * MAX_TOKENS <= MAX_RESULT
