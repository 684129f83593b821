"""rerank / rerank_many: ordering, ties, top_k, ids, probabilities and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank import InvalidInputError
from crossrank.ranking.results import sigmoid

from texts import WORDS, varied_pairs

texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=40).map(" ".join)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(texts, min_size=1, max_size=20), st.one_of(st.none(), st.integers(1, 25)))
def test_rerank_sorts_best_first_with_stable_ties_and_honours_top_k(tiny_ce, docs, top_k):
    scores = tiny_ce.score([("protein therapy", d) for d in docs])
    ranked = tiny_ce.rerank("protein therapy", docs, top_k=top_k)
    assert len(ranked) == (len(docs) if top_k is None else min(top_k, len(docs)))
    expected = sorted(range(len(docs)), key=lambda i: (-scores[i], i))[: len(ranked)]
    assert [r.index for r in ranked] == expected
    for r in ranked:
        assert r.score == float(scores[r.index])
        assert r.text == docs[r.index]
        assert r.probability == sigmoid(r.score)


def test_identical_documents_tie_in_input_order(tiny_ce):
    docs = ["same text here", "other", "same text here", "same text here"]
    ranked = tiny_ce.rerank("q", docs)
    same = [r.index for r in ranked if r.text == "same text here"]
    assert same == [0, 2, 3]
    assert len({r.score for r in ranked if r.text == "same text here"}) == 1


def test_probability_is_float64_sigmoid_without_overflow():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)), abs=0)
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0
    assert 0 < sigmoid(-30.0) < 1e-13  # float32 would round this to 0 only far later


def test_ids_and_text_objects(tiny_ce):
    ranked = tiny_ce.rerank("q", [{"id": "d1", "text": "alpha"}, "beta", {"id": 7, "text": "gamma"}])
    by_index = {r.index: r for r in ranked}
    assert by_index[0].id == "d1" and by_index[1].id is None and by_index[2].id == "7"
    assert by_index[2].text == "gamma"
    assert [r.text for r in tiny_ce.rerank("q", ["a"], return_documents=False)] == [None]


def test_rerank_many_matches_one_query_at_a_time_and_buckets_globally(tiny_ce):
    pairs = varied_pairs(90, seed=5, long_share=0.1)
    queries = ["protein therapy", "who wrote pride and prejudice", "berlin population"]
    docs = [[d for _, d in pairs[i::3]] for i in range(3)]
    together = tiny_ce.rerank_many(queries, docs, top_k=[None, 5, 1])
    stats = tiny_ce.last_stats
    assert stats.pairs == 90  # one engine call for all three queries
    for query, doc_list, got, k in zip(queries, docs, together, [None, 5, 1]):
        alone = tiny_ce.rerank(query, doc_list, top_k=k)
        assert [r.index for r in got] == [r.index for r in alone]
        assert np.allclose([r.score for r in got], [r.score for r in alone], atol=1e-5)
    assert [len(r) for r in together] == [30, 5, 1]


@pytest.mark.parametrize(
    "query, docs, message",
    [
        ("", ["a"], "query is empty"),
        ("   ", ["a"], "query is empty"),
        (None, ["a"], "query must be a string"),
        ("q", [], "documents is empty"),
        ("q", "just a string", "documents must be a list"),
        ("q", ["a", 3], "document 1 is int"),
        ("q", [{"id": "x"}], "document 0 needs a string 'text'"),
        ("q", ["ok", "bad \udcff surrogate"], "document 1 contains a lone surrogate"),
    ],
)
def test_bad_input_gets_a_clear_error(tiny_ce, query, docs, message):
    with pytest.raises(InvalidInputError, match=message):
        tiny_ce.rerank(query, docs)


def test_bad_top_k_and_bad_pairs(tiny_ce):
    with pytest.raises(InvalidInputError, match="top_k"):
        tiny_ce.rerank("q", ["a"], top_k=0)
    with pytest.raises(InvalidInputError, match="pair 1"):
        tiny_ce.score([("q", "d"), ("only one",)])
    assert tiny_ce.score([]).shape == (0,)


def test_empty_and_huge_documents_score_finitely(tiny_ce):
    ranked = tiny_ce.rerank("q", ["", "x " * 100_000, "normal text"])
    assert len(ranked) == 3 and all(np.isfinite(r.score) for r in ranked)
    assert tiny_ce.last_stats.truncated_pairs == 1
