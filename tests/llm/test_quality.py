"""Quality of the integer decoder against transformers' fp32 model of the same GGUF, on
the shipped text set (tests/data/llm_text.txt paragraphs and llm_chats.json chats, each
teacher-forced as one sequence)."""
import numpy as np
import pytest
import torch

from provider.llm.intops import LOGIT_BITS
from tests.llm.conftest import FRANCE

MIN_POSITIONS = 2000


def _nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-position negative log-likelihood, float64."""
    lp = torch.log_softmax(torch.from_numpy(logits), dim=-1)
    return -lp[torch.arange(len(targets)), torch.from_numpy(targets)].numpy()


@pytest.mark.slow
def test_top1_agreement_and_perplexity_match_the_fp32_reference(llm, reference, texts):
    model, _ = reference
    agree = positions = 0
    nll_ours, nll_ref = [], []
    for ids in texts:
        ours = llm.logits(ids).astype(np.float64) / 2**LOGIT_BITS
        with torch.inference_mode():
            ref = model(torch.tensor([ids])).logits[0].double().numpy()
        targets = np.asarray(ids[1:])
        # position t predicts token t + 1; argmax ties go to the lowest id in both
        agree += int((ours[:-1].argmax(-1) == ref[:-1].argmax(-1)).sum())
        positions += len(targets)
        nll_ours.append(_nll(ours[:-1], targets))
        nll_ref.append(_nll(ref[:-1], targets))
    ppl_ours = float(np.exp(np.concatenate(nll_ours).mean()))
    ppl_ref = float(np.exp(np.concatenate(nll_ref).mean()))
    print(f"\n{positions} positions: top-1 agreement {agree / positions:.4f}, "
          f"perplexity {ppl_ours:.3f} (integer) vs {ppl_ref:.3f} (fp32)")
    assert positions >= MIN_POSITIONS
    assert agree / positions >= 0.99
    assert abs(ppl_ours / ppl_ref - 1) <= 0.02


def test_greedy_chat_answer_names_paris(llm):
    ids = llm.generate(FRANCE, max_new_tokens=24)
    answer = llm.text(ids)
    assert "Paris" in answer, answer
    assert ids[-1] in llm.tokenizer.stop_ids  # ended its turn before the cap
