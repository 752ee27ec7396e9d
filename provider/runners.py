"""The engines a provider can run, found by the model ids they reproduce.

A model id is a hash (of weights, derived parameters, tokenizer, job format), so the
only way to know which engine serves an id is to load it and compare: MiniLM first
(about a second), the chat LLM only when an id is still unserved (a few seconds and
~0.5 GB). Neither runs its self-test here: the agent runs it before serving, `doctor`
reports it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from provider.agent.jobs.runner import JobRunner


def _minilm(backend: str) -> JobRunner:
    from provider.engine import Engine

    return Engine.load(backend, self_test=False)


def _chat_llm(backend: str) -> JobRunner:
    from provider.llm import LLMEngine
    from provider.llm.chat_jobs import ChatRunner

    return ChatRunner(LLMEngine.load(backend=backend, self_test=False))


LOADERS: tuple[Callable[[str], JobRunner], ...] = (_minilm, _chat_llm)


def load_runners(model_ids: Iterable[bytes], backend: str = "auto") -> dict[bytes, JobRunner]:
    """The engines reproducing ``model_ids``, by id; an id no engine reproduces is left
    out (the caller names it). With no ids, the first engine (MiniLM)."""
    wanted = list(dict.fromkeys(model_ids))
    found: dict[bytes, JobRunner] = {}
    for load in LOADERS:
        if found and all(m in found for m in wanted):
            break
        runner = load(backend)
        found[runner.model_id] = runner
    return {m: r for m, r in found.items() if m in wanted or not wanted}
