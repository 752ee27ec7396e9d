"""provider/runners.py: the engines for the configured model ids, found by loading them
(a model id is a hash), the LLM only when an id is still unserved."""
from __future__ import annotations

import provider.runners as runners
from provider.llm.chat_jobs import ChatRunner


def test_each_id_gets_the_engine_that_reproduces_it(engine, monkeypatch):
    loaded = []
    monkeypatch.setattr(runners, "LOADERS", tuple(
        (lambda backend, load=load: loaded.append(load.__name__) or load(backend)) for load in runners.LOADERS))
    minilm = runners.load_runners([engine.model_id], backend="cpu")
    assert list(minilm) == [engine.model_id] and loaded == ["_minilm"]  # the LLM never loaded

    loaded.clear()
    llm_id = ChatRunner(runners._chat_llm("cpu").engine).model_id
    both = runners.load_runners([llm_id, engine.model_id, llm_id], backend="cpu")
    assert set(both) == {engine.model_id, llm_id}
    assert isinstance(both[llm_id], ChatRunner) and both[engine.model_id].model_id == engine.model_id
    assert loaded == ["_minilm", "_chat_llm"]

    assert runners.load_runners([b"\xab" * 32], backend="cpu") == {}  # the caller names what is missing
