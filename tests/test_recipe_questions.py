"""Question-similarity recipe pieces: de-tokenising Quora's CoreNLP text and building listwise groups from a
teacher's vectors."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "question_similarity"))

from build_groups import anchor_groups, detokenise  # noqa: E402


def test_quora_text_reads_like_typed_text():
    assert detokenise("Why do n't I get -LRB- any -RRB- answers on Quora ?") == "Why don't I get (any) answers on Quora?"
    assert detokenise("What is the `` best '' way , really ?") == 'What is the "best" way, really?'
    assert detokenise("How do the United States ' laws compare ?") == "How do the United States' laws compare?"
    assert detokenise("Is it worth $ 100 ?") == "Is it worth $100?"
    assert detokenise("  already   plain text.  ") == "already plain text."


def test_groups_hold_the_nearest_texts_first_never_the_anchor_with_scaled_cosines():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"question {i}" for i in range(40)]
    duplicates = {"question 3": {"question 30"}, "question 30": {"question 3"}}
    groups = list(anchor_groups(texts, vectors, [3, 7], duplicates, near=4, further=2, scale=20.0,
                                rng=random.Random(0), depth=20))
    assert [g["query"] for g in groups] == ["question 3", "question 7"]
    for group, anchor in zip(groups, (3, 7)):
        ids = [int(d.split()[1]) for d in group["documents"]]
        assert anchor not in ids and len(ids) == len(set(ids))
        cosines = vectors[anchor] @ vectors.T
        cosines[anchor] = -2
        assert ids[:4] == list(np.argsort(-cosines)[:4])  # the four nearest, nearest first
        assert np.allclose(group["labels"], 20.0 * (vectors[ids] @ vectors[anchor]), atol=1e-3)
    assert "question 30" in groups[0]["documents"]  # the labelled duplicate joins its anchor's group
