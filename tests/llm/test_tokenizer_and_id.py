"""The tokenizer built from the GGUF's metadata against transformers' tokenizer of the same
file, and the model id and result bytes pinned (the same on every machine)."""
import hashlib

import numpy as np

import pytest

from client.chat import CHAT_FORMAT
from provider.llm import intops
from provider.llm.engine import LIMITS, LLMEngine
from provider.llm.gguf_model import GGUFModel
from provider.llm.quantize import params_digest
from tests.llm.conftest import FRANCE, chats, paragraphs

# A change to the weights, the tokenizer, a derived parameter or the arithmetic
# (intops.SPEC_VERSION) changes these; update them only with a new SPEC_VERSION.
MODEL_ID = "d3d3af2e4a521fb9254ef37c1d120304b70eb72f0d2321c60da27cd9888b1b6e"
FRANCE_LOGITS_SHA256 = "d592c9a437d519dfd0860fd25caabda1edd1c55045ce4283aab9bec3977f87e9"
FRANCE_ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer

    from provider.llm.gguf_model import locate

    path = locate()
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def test_token_ids_match_transformers_on_the_text_set(llm, hf_tokenizer):
    extra = ["Prices rose 12.5% in 2024 (from $1,999 to $2,249).", "  two  spaces\n\n\ttab",
             "naïve café, 東京, emoji 🙂!", "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>"]
    for text in paragraphs() + extra:
        assert llm.tokenizer.encode(text) == hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    for chat in chats() + [FRANCE]:
        want = hf_tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
        want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
        assert llm.prompt_ids(chat) == list(want)
    text = paragraphs()[0]
    assert llm.text(llm.tokenizer.encode(text)) == text


def test_model_id_and_result_bytes_are_pinned(llm):
    assert llm.model_id.hex() == MODEL_ID
    logits = llm.logits(llm.prompt_ids(FRANCE))
    assert hashlib.sha256(logits.astype("<i8").tobytes()).hexdigest() == FRANCE_LOGITS_SHA256
    assert llm.text(llm.generate(FRANCE, 16)) == FRANCE_ANSWER


def test_model_id_commits_to_every_part(llm):
    info = llm.model_info
    assert info.spec_version == intops.SPEC_VERSION and info.format_version == CHAT_FORMAT
    assert info.params_digest == params_digest(llm.params, LIMITS)
    assert params_digest(llm.params, {**LIMITS, "MAX_NEW_TOKENS": 513}) != info.params_digest
    assert params_digest(llm.params, {**LIMITS, "SPEC_VERSION": 2}) != info.params_digest
    assert info.tokenizer_digest == GGUFModel().tokenizer.digest()
    assert len({info.weights_digest, info.params_digest, info.tokenizer_digest}) == 3


def test_bad_requests_are_refused(llm):
    from provider.engine.errors import EmptyInputError, InputTooLongError, InvalidInputError

    with pytest.raises(InvalidInputError):
        llm.generate(FRANCE, 0)
    with pytest.raises(InvalidInputError):
        llm.generate(FRANCE, 513)
    with pytest.raises(InputTooLongError):
        llm.generate([1] * intops.MAX_CONTEXT, 1)
    with pytest.raises(EmptyInputError):
        llm.generate([], 4)
    with pytest.raises(InvalidInputError) as err:
        llm.generate_batch([FRANCE, [llm.params.config.vocab]], 1)
    assert err.value.index == 1
    with pytest.raises(InvalidInputError):
        llm.generate([{"role": "user"}], 4)
    with pytest.raises(TypeError):
        llm.generate([1.5, 2], 4)
    assert isinstance(llm, LLMEngine)


def test_self_test_passes_here_and_refuses_other_bytes(llm, monkeypatch):
    from provider.engine.errors import SelfTestError
    from provider.llm import selftest

    llm.self_test()
    x, w = selftest.worst_case_linear()
    assert abs(int(np.abs(w.dense()).max())) == intops.w_max(intops.MAX_K)
    monkeypatch.setitem(selftest.PINNED, llm.model_id.hex(), "0" * 64)
    with pytest.raises(SelfTestError, match="other LLM bytes"):
        llm.self_test()
    monkeypatch.setattr(selftest.ck, "gemv", lambda x, w: selftest.ck.gemm(x, w) + 1)
    with pytest.raises(SelfTestError, match="integer GEMV is not exact"):
        selftest.check_linear()
