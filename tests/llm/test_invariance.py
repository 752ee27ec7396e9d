"""A sequence's logits bytes and token ids do not depend on what it is computed with:
alone or batched with other prompts of other lengths, decoded with the KV cache or
recomputed from scratch, one token at a time or in chunks, and under forced lowest
instruction-set variants (ATen's default kernels, numba compiled for a generic x86-64)."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from provider.llm import SamplingParams
from provider.llm.decoder import KVCache, forward
from tests.llm.conftest import FRANCE, paragraphs

REPO = Path(__file__).resolve().parents[2]


def _prompts(llm) -> list[list[int]]:
    """Three prompts of different lengths: a chat, a paragraph's start, a short line."""
    return [llm.prompt_ids(FRANCE), llm.tokenizer.encode(paragraphs()[2])[:70],
            llm.tokenizer.encode("Once upon a time, in a village by the sea,")]


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def alone(llm):
    """Each prompt's logits at every position, computed alone in one pass."""
    return [llm.logits(p) for p in _prompts(llm)]


def test_batched_with_other_lengths_gives_the_bytes_of_each_alone(llm, alone):
    prompts = _prompts(llm)
    caches = [KVCache.empty(llm.params, len(p)) for p in prompts]
    batched = forward(llm.params, prompts, caches, all_logits=True)
    for got, want in zip(batched, alone):
        assert got.tobytes() == want.tobytes()
    # reversed order, and one prompt twice
    order = [2, 0, 2]
    caches = [KVCache.empty(llm.params, len(prompts[i])) for i in order]
    again = forward(llm.params, [prompts[i] for i in order], caches, all_logits=True)
    for got, i in zip(again, order):
        assert got.tobytes() == alone[i].tobytes()


def test_kv_cache_decoding_gives_the_bytes_of_full_recomputation(llm, alone):
    """Prefill a prefix, then feed the rest one token at a time (1-row GEMV route) and in
    chunks (GEMM route), for several prompts side by side at different positions."""
    prompts = _prompts(llm)
    split = [len(p) - 6 for p in prompts]
    caches = [KVCache.empty(llm.params, len(p)) for p in prompts]
    first = forward(llm.params, [p[:s] for p, s in zip(prompts, split)], caches, all_logits=True)
    got = [[f] for f in first]
    for step in range(3):  # one token each, batched: 3 rows
        rows = forward(llm.params, [[p[s + step]] for p, s in zip(prompts, split)], caches)
        for g, r in zip(got, rows):
            g.append(r[None])
    rest = forward(llm.params, [p[s + 3:] for p, s in zip(prompts, split)], caches, all_logits=True)
    for g, r, want in zip(got, rest, alone):
        g.append(r)
        assert np.concatenate(g).tobytes() == want.tobytes()


def test_generation_alone_and_batched_gives_the_same_ids(llm):
    prompts = _prompts(llm)
    params = [SamplingParams(), SamplingParams(temperature_milli=800, top_k=40, seed=5),
              SamplingParams(temperature_milli=1000, top_p_micro=900_000, seed=9)]
    batched = llm.generate_batch(prompts, 12, params)
    for prompt, p, ids in zip(prompts, params, batched):
        assert llm.generate(prompt, 12, p) == ids
        # and the greedy ids are the argmax of a full recomputation at every step
        if p.greedy:
            full = llm.logits(prompt + ids[:-1])
            assert ids == [int(np.argmax(row)) for row in full[len(prompt) - 1:]]


VARIANT_PROBE = r'''
import hashlib, json, sys
import numpy as np
from provider.llm import LLMEngine, SamplingParams
from tests.llm.test_invariance import _digest, _prompts
llm = LLMEngine.load()
prompts = _prompts(llm)
report = {"logits": _digest(llm.logits(p) for p in prompts),
          "greedy": llm.generate(prompts[0], 12),
          "sampled": llm.generate(prompts[1], 12, SamplingParams(temperature_milli=800, top_k=40, seed=5)),
          "model_id": llm.model_id.hex()}
import numba, torch
report["aten"] = torch.backends.cpu.get_cpu_capability()
report["numba_cpu"] = numba.config.CPU_NAME or "host"
print("REPORT " + json.dumps(report), flush=True)
'''

VARIANTS = {
    "native": {},
    "all-lowest": {"ATEN_CPU_CAPABILITY": "default", "NUMBA_CPU_NAME": "generic",
                   "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def _run(variant: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ATEN_CPU", "MKL_ENABLE", "NUMBA_CPU", "NPY_"))}
    env.update(variant, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", VARIANT_PROBE], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.mark.slow
def test_same_bytes_under_the_lowest_instruction_set_variants(llm, alone):
    prompts = _prompts(llm)
    want = {"logits": _digest(alone), "greedy": llm.generate(prompts[0], 12),
            "sampled": llm.generate(prompts[1], 12, SamplingParams(temperature_milli=800, top_k=40, seed=5)),
            "model_id": llm.model_id.hex()}
    for name, variant in VARIANTS.items():
        report = _run(variant)
        assert {k: report[k] for k in want} == want, name
        if name != "native":  # the caps took effect
            assert report["aten"].lower() == "default"
            assert report["numba_cpu"] == "generic"
