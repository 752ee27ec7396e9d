"""Replayable decoding: greedy ties go to the lowest id; a seed gives one answer
everywhere, different seeds differ, and the draws follow the integer distribution."""
import numpy as np
import pytest
from scipy.stats import chisquare

from provider.llm import SamplingParams
from provider.llm.sampling import candidates, draw, greedy, sample
from tests.llm.conftest import FRANCE

CHAT = [{"role": "user", "content": "Tell me a short story about a dragon."}]


def test_greedy_ties_go_to_the_lowest_id():
    logits = np.array([3, 9, 1, 9, 9], dtype=np.int64)
    assert greedy(logits) == 1
    assert sample(logits, SamplingParams(), 0) == 1


def test_parameters_are_validated():
    for bad in (dict(temperature_milli=-1), dict(temperature_milli=100_001), dict(top_k=-1),
                dict(top_p_micro=0), dict(top_p_micro=1_000_001), dict(seed=-1),
                dict(seed=1 << 64)):
        with pytest.raises(ValueError):
            SamplingParams(**bad)
    with pytest.raises(TypeError):
        SamplingParams(temperature_milli=0.7)


def test_top_k_and_top_p_keep_the_documented_candidates():
    logits = np.array([0, 5 << 16, 5 << 16, 1 << 16, 4 << 16], dtype=np.int64)
    ids, cum = candidates(logits, SamplingParams(temperature_milli=1000, top_k=3))
    assert ids.tolist() == [1, 2, 4]  # equal logits: lower id first
    assert cum[0] == 1 << 20 and cum[1] == 2 << 20
    ids, cum = candidates(logits, SamplingParams(temperature_milli=1000, top_p_micro=600_000))
    assert ids.tolist() == [1, 2]  # 2 / (2 + e**-1 + e**-4 + e**-5) ~ 0.83 >= 0.6 > 0.42
    low = candidates(logits, SamplingParams(temperature_milli=10))[1]
    assert low[-1] == 2 << 20  # at T = 0.01 every other token's weight rounds to 0


def test_the_same_seed_gives_the_same_answer_and_different_seeds_differ(llm):
    params = [SamplingParams(temperature_milli=1000, top_p_micro=950_000, seed=s) for s in range(4)]
    answers = llm.generate_batch([CHAT] * 4, 10, params)
    assert len(set(map(tuple, answers))) >= 3
    assert llm.generate(CHAT, 10, params[2]) == answers[2]  # replayed alone
    assert llm.generate_batch([CHAT] * 2, 10, params[1::2]) == answers[1::2]


def test_draw_frequencies_follow_the_integer_distribution(llm):
    """Step 0 of 20,000 seeds on the model's own next-token logits, chi-square against
    w / total (bins with an expected count below 5 merged)."""
    prompt = llm.prompt_ids(FRANCE) + llm.tokenizer.encode("The capital")
    logits = llm.logits(prompt)[-1]
    p = SamplingParams(temperature_milli=1500, top_k=30)
    ids, cum = candidates(logits, p)
    total = int(cum[-1])
    # the fast path below is ``sample`` itself
    for seed in range(200):
        q = SamplingParams(temperature_milli=1500, top_k=30, seed=seed)
        assert sample(logits, q, 0) == ids[np.searchsorted(cum, draw(seed, 0, total), side="right")]
    n = 20_000
    picks = np.searchsorted(cum, [draw(seed, 0, total) for seed in range(n)], side="right")
    observed = np.bincount(picks, minlength=len(ids)).astype(float)
    expected = np.diff(np.concatenate([[0], cum])) / total * n
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    assert big.sum() >= 5  # a real test: several likely tokens
    assert chisquare(obs, exp).pvalue > 1e-3
    # and the step counter matters: another step is another draw
    assert [draw(s, 1, total) for s in range(20)] != [draw(s, 0, total) for s in range(20)]
