"""Integer-only text generation: SmolLM2-135M-Instruct from its Q4_1 GGUF, with the same
token ids and logits bytes on every machine (``intops`` is the specification).

>>> from provider.llm import LLMEngine, SamplingParams
>>> engine = LLMEngine.load()
>>> ids = engine.generate([{"role": "user", "content": "Hi!"}], max_new_tokens=8)
"""
from .engine import MAX_NEW_TOKENS, LLMEngine, LLMInfo
from .sampling import SamplingParams

__all__ = ["LLMEngine", "LLMInfo", "SamplingParams", "MAX_NEW_TOKENS"]
