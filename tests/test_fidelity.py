"""crossrank's scores equal the transformers reference forward pass (eager attention, fp32, one pair at a time)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from crossrank import CrossEncoder

from texts import varied_pairs


def reference_scores(folder, pairs, max_length=512):
    """The plain transformers way: tokenizer(query, doc) with only_second truncation, eager forward."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager",
                                                               dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for query, doc in pairs:
            enc = tokenizer(query, doc, truncation="only_second", max_length=max_length, return_tensors="pt")
            logits = model(**enc).logits[0].double()
            out.append(float(logits[0]) if logits.numel() == 1 else float(logits[1] - logits[0]))
    return np.array(out)


def test_scores_match_transformers_reference_on_240_varied_pairs(tiny_model, tiny_ce):
    pairs = varied_pairs(240, seed=7)
    expected = reference_scores(tiny_model, pairs)
    got = tiny_ce.score(pairs)
    assert got.dtype == np.float32 and got.shape == (240,)
    assert np.max(np.abs(got - expected)) <= 1e-4
    # The set really is varied: short pairs, long truncated ones, and a wide spread of scores.
    assert tiny_ce.last_stats.truncated_pairs >= 20
    assert np.std(expected) > 0.1


def test_token_ids_equal_transformers_only_second_truncation(tiny_model, tiny_ce):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pairs = varied_pairs(60, seed=3)
    tokens = tiny_ce.tokenizer([q for q, _ in pairs], [d for _, d in pairs])
    for i, (query, doc) in enumerate(pairs):
        enc = tokenizer(query, doc, truncation="only_second", max_length=512)
        assert tokens.input_ids[i] == enc["input_ids"]
        assert tokens.token_type_ids[i] == enc["token_type_ids"]


def test_two_label_score_is_positive_minus_negative_logit(tiny_model_2labels):
    ce = CrossEncoder(str(tiny_model_2labels))
    pairs = varied_pairs(40, seed=11)
    expected = reference_scores(tiny_model_2labels, pairs)
    got = ce.score(pairs)
    assert np.max(np.abs(got - expected)) <= 1e-4
    # sigmoid(score) is the softmax probability of the positive class.
    result = ce.rerank(pairs[0][0], [pairs[0][1]])[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_2labels)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_2labels).eval()
    with torch.inference_mode():
        enc = tokenizer(pairs[0][0], pairs[0][1], truncation="only_second", max_length=512, return_tensors="pt")
        logits = model(**enc).logits[0].double()
    assert result.probability == pytest.approx(float(torch.softmax(logits, -1)[1]), abs=1e-6)
