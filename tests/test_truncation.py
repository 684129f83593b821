"""Truncation keeps the query, cuts the document, and is always counted and reported."""

from __future__ import annotations

import logging

import numpy as np

from crossrank import CrossEncoder

from texts import word_soup
import random


def test_long_query_keeps_its_cap_and_document_fills_the_window(tiny_model):
    ce = CrossEncoder(str(tiny_model), max_length=128, query_max_tokens=16)
    query = " ".join(f"query{i}" for i in range(40))  # far more than 16 tokens
    doc = word_soup(random.Random(0), 400)
    tokens = ce.tokenizer([query], [doc])
    ids = tokens.input_ids[0]
    sep = ce.tokenizer.pad_id  # unused; keep pad id sane
    assert sep == 0
    assert len(ids) == 128
    first_sep = ids.index(102)
    assert first_sep == 1 + 16  # [CLS] + 16 query tokens
    q_full = ce.tokenizer._backend.encode(query, add_special_tokens=False).ids
    d_full = ce.tokenizer._backend.encode(doc, add_special_tokens=False).ids
    assert ids[1:first_sep] == q_full[:16]
    assert ids[first_sep + 1:-1] == d_full[: 128 - 3 - 16]
    assert tokens.truncated_pairs == 1 and tokens.truncated_queries == 1
    assert tokens.tokens_dropped == (len(q_full) - 16) + (len(d_full) - (128 - 3 - 16))


def test_truncation_is_counted_in_last_stats_and_logged(tiny_model, caplog):
    ce = CrossEncoder(str(tiny_model), max_length=64)
    rng = random.Random(1)
    docs = ["short document", word_soup(rng, 200), word_soup(rng, 10), word_soup(rng, 90)]
    doc_tokens = [len(ce.tokenizer._backend.encode(d, add_special_tokens=False).ids) for d in docs]
    query_tokens = len(ce.tokenizer._backend.encode("a query", add_special_tokens=False).ids)
    budget = 64 - 3 - query_tokens
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        ce.rerank("a query", docs)
    stats = ce.last_stats
    assert stats.truncated_pairs == sum(n > budget for n in doc_tokens) == 2
    assert stats.tokens_dropped == sum(max(0, n - budget) for n in doc_tokens)
    assert stats.truncated_queries == 0
    assert f"truncated 2 of 4 pairs" in caplog.text
    assert f"{stats.tokens_dropped} tokens dropped" in caplog.text


def test_no_warning_when_nothing_is_truncated(tiny_ce, caplog):
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        tiny_ce.score([("q", "short doc")])
    assert tiny_ce.last_stats.truncated_pairs == 0 and tiny_ce.last_stats.tokens_dropped == 0
    assert "truncated" not in caplog.text


def test_huge_document_keeps_exact_tokens_and_estimates_the_dropped_tail(tiny_model):
    ce = CrossEncoder(str(tiny_model))
    huge = "cell protein " * 200_000  # 2.6 MB, 400k tokens
    tokens = ce.tokenizer(["what is a cell"], [huge])
    small = ce.tokenizer(["what is a cell"], ["cell protein " * 400])
    assert tokens.input_ids[0] == small.input_ids[0]
    assert tokens.tokens_dropped_estimated
    assert abs(tokens.tokens_dropped - (400_000 - 505)) < 400_000 * 0.01
    score = ce.score([("what is a cell", huge)])
    assert np.isfinite(score[0])


def test_document_without_spaces_over_the_cut_still_tokenizes_exactly(tiny_model):
    ce = CrossEncoder(str(tiny_model), max_length=32)
    blob = "x" * 5000  # one 'word': [UNK] for the whole run; the cut must not invent tokens
    tokens = ce.tokenizer(["q"], [blob])
    reference = ce.tokenizer._backend.encode(blob, add_special_tokens=False).ids
    assert tokens.input_ids[0][3:-1] == reference[: 32 - 4]
