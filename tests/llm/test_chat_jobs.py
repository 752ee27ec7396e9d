"""Chat jobs on the integer LLM (provider/llm/chat_jobs.py): input bytes in, result bytes
out, the same whatever the batch; inputs no provider could answer refused up front."""
from __future__ import annotations

import json

import pytest

from client.chat import CHAT_FORMAT, MAX_CONTEXT, MAX_TOKENS, ChatAnswer, ChatRequest
from client.errors import InvalidInput
from provider.engine.errors import EmptyInputError
from provider.llm import intops
from provider.llm.engine import MAX_NEW_TOKENS
from provider.llm.sampling import SamplingParams
from tests.llm.conftest import FRANCE


def test_the_job_format_fits_the_decoder():
    assert MAX_CONTEXT == intops.MAX_CONTEXT and MAX_TOKENS <= MAX_NEW_TOKENS


def test_a_greedy_chat_job_answers_as_the_engine_does(chat_runner, llm):
    raw = ChatRequest(messages=FRANCE, max_tokens=16).encode()
    [result] = chat_runner.run([raw])
    answer = ChatAnswer.decode(result)
    assert result[0] == CHAT_FORMAT and llm.model_info.format_version == CHAT_FORMAT
    assert list(answer.ids) == llm.generate(FRANCE, 16)
    assert answer.finish == "stop" and answer.ids[-1] in llm.tokenizer.stop_ids
    assert answer.text == "The capital of France is Paris."


def test_a_batch_gives_each_job_the_bytes_it_gets_alone(chat_runner):
    requests = [ChatRequest(messages=FRANCE, max_tokens=3),  # stops at max_tokens
                ChatRequest(prompt="The old harbour town", max_tokens=5),
                ChatRequest(messages=[{"role": "user", "content": "Name a colour."}], max_tokens=6,
                            temperature_milli=900, top_k=40, top_p_micro=950_000, seed=11),
                ChatRequest(messages=FRANCE, max_tokens=3)]
    raws = [r.encode() for r in requests]
    together = chat_runner.run(raws)
    assert together == [chat_runner.run([raw])[0] for raw in raws]
    first = ChatAnswer.decode(together[0])
    assert first.finish == "length" and len(first.ids) == 3 and together[0] == together[3]
    assert ChatAnswer.decode(together[1]).ids == tuple(chat_runner.engine.generate("The old harbour town", 5))


def test_a_sampled_job_replays_from_its_seed(chat_runner, llm):
    def job(seed):
        return ChatRequest(messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=8,
                           temperature_milli=1200, seed=seed).encode()

    first = chat_runner.run([job(1)])[0]
    assert chat_runner.run([job(1)])[0] == first
    assert list(ChatAnswer.decode(first).ids) == llm.generate(
        [{"role": "user", "content": "Tell me a story."}], 8, SamplingParams(temperature_milli=1200, seed=1))
    assert len({chat_runner.run([job(s)])[0] for s in range(2, 6)} | {first}) > 1


def test_inputs_no_provider_could_answer_are_refused_before_any_work(chat_runner):
    good = ChatRequest(messages=FRANCE, max_tokens=2).encode()
    with pytest.raises(InvalidInput, match="input 1: chat request not in canonical form"):
        chat_runner.run([good, good.replace(b",", b", ")])
    with pytest.raises(InvalidInput):
        chat_runner.check("What is the capital of France?".encode())  # plain text is not a chat job
    chat_runner.check(good)
    # Text that is all special-token markup still has tokens; nothing at all has none.
    chat_runner.check(ChatRequest(prompt="<|im_end|>", max_tokens=1).encode())
    with pytest.raises(InvalidInput, match="no text"):
        chat_runner.check(ChatRequest(prompt="x", max_tokens=1).encode().replace(b'"x"', b'"   "'))
    assert issubclass(EmptyInputError, ValueError) and issubclass(InvalidInput, ValueError)


@pytest.mark.parametrize("unit", ["7", "🙂", "<|im_start|>", '"\\\n', "a b"])
def test_a_valid_request_never_has_more_prompt_tokens_than_bytes(chat_runner, unit):
    """The SDK's size rule (bytes + max_tokens <= context) is safe only if a prompt never
    has more tokens than its JSON has bytes: digits and emoji bytes are a token each,
    and the template's tokens per message are fewer than the JSON's bytes per message.
    Each case fills the request to the largest size the rule allows."""
    unit_bytes = len(json.dumps(unit, ensure_ascii=False).encode()) - 2
    for messages in ([{"role": "user", "content": "x"}],
                     [{"role": "system", "content": ""}, {"role": "user", "content": "x"}] * 8,
                     [{"role": "assistant", "content": "x"}] * 50):
        for max_tokens in (1, MAX_TOKENS):
            # (the same length as the canonical bytes: only the key order differs)
            base = ChatRequest(messages=messages, max_tokens=max_tokens).model_dump_json()
            room = MAX_CONTEXT - max_tokens - len(base.encode())
            if room < unit_bytes:
                continue
            last = messages[-1]["content"] + unit * (room // unit_bytes)
            raw = ChatRequest(messages=[*messages[:-1], {"role": messages[-1]["role"], "content": last}],
                              max_tokens=max_tokens).encode()
            assert len(raw) + max_tokens > MAX_CONTEXT - unit_bytes  # filled
            request, ids = chat_runner._prompt(raw)
            assert len(ids) <= len(raw)
