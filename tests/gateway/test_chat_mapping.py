"""The chat completion request -> chat job mapping and the answer's shapes
(gateway/chat.py), without a chain: every field the OpenAI API sends either maps onto
the job exactly or is refused with the field named."""
from __future__ import annotations

import json

import pytest

from client.chat import CHAT_FORMAT, ChatAnswer
from client.protocol import JobStatus
from client.records import VerifiedResult
from gateway.chat import chat_job, chunks, completion
from gateway.errors import APIError
from gateway.service import Answer

HI = [{"role": "user", "content": "Hi"}]


def test_fields_map_onto_the_job():
    job = chat_job({"messages": [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
                    "max_completion_tokens": 20, "temperature": 0.7, "top_p": 0.95, "seed": 7}, top_k=40)
    assert [m.content for m in job.messages] == ["Be brief.", "Hi there"]
    assert (job.max_tokens, job.temperature_milli, job.top_p_micro, job.seed, job.top_k) == (20, 700, 950_000, 7, 40)
    greedy = chat_job({"messages": HI})
    assert (greedy.max_tokens, greedy.temperature_milli, greedy.top_p_micro, greedy.seed) == (64, 0, 10**6, 0)
    assert chat_job({"messages": HI, "max_tokens": 5}).max_tokens == 5


def test_a_sampled_request_without_a_seed_gets_a_random_one():
    seeds = {chat_job({"messages": HI, "temperature": 1}).seed for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= s < 2**64 for s in seeds)


@pytest.mark.parametrize("body, param", [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": None}]}, "messages"),
    ({"messages": [{"role": "user", "content": "  "}]}, "messages"),
    ({"messages": HI, "max_tokens": 0}, "max_tokens"),
    ({"messages": HI, "max_tokens": 511}, "max_tokens"),
    ({"messages": HI, "temperature": -0.5}, "temperature"),
    ({"messages": HI, "temperature": "hot"}, "temperature"),
    ({"messages": HI, "top_p": 0}, "top_p"),
    ({"messages": HI, "seed": -1}, "seed"),
    ({"messages": HI, "n": 2}, "n"),
    ({"messages": HI, "tools": [{"type": "function"}]}, "tools"),
    ({"messages": HI, "stop": ["\n"]}, "stop"),
    ({"messages": [{"role": "user", "content": "x" * 2000}], "max_tokens": 100}, None),
])
def test_requests_the_job_cannot_be_are_refused_naming_the_field(body, param):
    with pytest.raises(APIError) as caught:
        chat_job(body)
    assert caught.value.status == 400 and caught.value.param == param, caught.value.message


def _answer(ids, text, finish="stop") -> Answer:
    result = ChatAnswer(finish=finish, ids=tuple(ids), text=text).encode()
    verified = VerifiedResult(job_id=300, model_id=b"\x01" * 32, status=JobStatus.FINALIZED, digest=b"\x02" * 32,
                              result=result, providers=("0xabc",))
    return Answer(job_id=300, r=3, verified=verified, post_tx=b"\x03" * 32, result_tx=b"\x04" * 32)


def test_the_completion_object_carries_the_verified_answer():
    job = chat_job({"messages": HI, "max_tokens": 8})
    body = completion(_answer([5, 6, 2], "Hello!", "stop"), "smol", job)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"] == {"role": "assistant",
                                                                                      "content": "Hello!"}
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["completion_tokens"] == 3
    assert body["verinfer"]["token_ids"] == [5, 6, 2] and body["verinfer"]["final"] is True
    assert completion(_answer([5], "He", "cut"), "smol", job)["choices"][0]["finish_reason"] == "length"
    assert CHAT_FORMAT == 2


def test_the_stream_joins_to_the_verified_text():
    text = "  Café au lait,\n\tplease!  "
    events = list(chunks(_answer([10, 11, 12, 2], text), "smol", chat_job({"messages": HI})))
    assert events[-1] == "data: [DONE]\n\n"
    objects = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert objects[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [o["choices"][0]["delta"].get("content") for o in objects[1:-1]]
    assert contents == ["  Café", " au", " lait,", "\n\tplease!", "  "] and "".join(contents) == text
    assert objects[-1]["choices"][0]["finish_reason"] == "stop" and objects[-1]["verinfer"]["job_id"] == 300
    assert objects[-1]["usage"]["completion_tokens"] == 4
