"""The SmolLM2 tokenizer and chat template, built from the GGUF's metadata alone.

GPT-2 byte-level BPE (``tokenizer.ggml.model = gpt2``) with llama.cpp's ``smollm``
pre-tokenizer: digits split one by one, then the GPT-2 regex; the 17 control tokens
(``<|im_start|>``, ``<|im_end|>``, ...) are matched whole wherever they occur in the
text, as in the model's own tokenizer.json. ``tests/llm`` checks the ids against
transformers' tokenizer of the same GGUF. The chat template is the GGUF's Jinja template,
rendered in a sandbox as transformers renders it.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from provider.engine.errors import InvalidInputError

from .gguf_model import TokenizerData

CONTROL = 3  # llama.cpp token type of special tokens


class ChatTokenizer:
    """ids <-> text, and chat messages -> prompt ids."""

    def __init__(self, data: TokenizerData):
        if data.pre != "smollm":
            raise ValueError(f"unsupported pre-tokenizer {data.pre!r}")
        self.data = data
        vocab = {t: i for i, t in enumerate(data.tokens)}
        merges = [tuple(m.split(" ")) for m in data.merges]
        tok = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                for t, kind in zip(data.tokens, data.token_types) if kind == CONTROL])
        self._tok = tok
        self.special_ids = frozenset(i for i, k in enumerate(data.token_types) if k == CONTROL)
        # end of turn (the template closes every message with it) and end of text
        self.stop_ids = frozenset({vocab["<|im_end|>"], vocab["<|endoftext|>"], data.eos_id})

    @property
    def digest(self) -> bytes:
        return self.data.digest()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special)

    @cached_property
    def _template(self):
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(self.data.chat_template)

    def chat_text(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text of ``messages`` ({"role", "content"} dicts) by the GGUF's template."""
        for m in messages:
            if set(m) != {"role", "content"} or not all(isinstance(v, str) for v in m.values()):
                raise InvalidInputError("a chat message is {'role': str, 'content': str}")
        return self._template.render(messages=[dict(m) for m in messages],
                                     add_generation_prompt=add_generation_prompt)

    def chat_ids(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.chat_text(messages, add_generation_prompt))
