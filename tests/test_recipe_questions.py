"""Question-similarity recipe pieces: de-tokenising Quora's CoreNLP text and building listwise groups from a
teacher's vectors; packaging a trained model in the default's ensemble form."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "question_similarity"))

from build_groups import anchor_groups, detokenise  # noqa: E402
from make_ensemble import make_ensemble  # noqa: E402


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


def test_question_model_packaged_as_ensemble_scores_half_its_logit_half_the_cosine(tmp_path, tiny_model):
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.model.bi_encoder import BiEncoder

    trained = tmp_path / "trained"
    shutil.copytree(tiny_model, trained)
    (trained / "calibration.json").write_text(json.dumps({"method": "platt", "a": 3.0, "b": 1.0}))
    groups = tmp_path / "groups.jsonl"
    rows = [{"query": f"how do I reset password {i}", "documents": ["reset my password", f"forgot login {i}",
                                                                    "weather today"], "labels": [9.0, 7.0, 1.0]}
            for i in range(4)]
    groups.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = make_ensemble(trained, groups, tmp_path / "out", bi_encoder_weight=0.5, count=100)  # every pair

    out = tmp_path / "out"
    assert not (out / "calibration.json").exists()  # fitted on the plain model's scores: refitted on the ensemble
    pairs = [(r["query"], d) for r in rows for d in r["documents"]]
    own = CrossEncoder(out, use_ensemble=False).score(pairs)
    bi = BiEncoder()
    cos = np.sum(bi.encode([a for a, _ in pairs]) * bi.encode([b for _, b in pairs]), axis=1)
    assert np.allclose(stats, [(own.mean(), own.std()), (cos.mean(), cos.std())], atol=1e-4)  # label-free reference
    expected = 0.5 * (own - stats[0][0]) / stats[0][1] + 0.5 * (cos - stats[1][0]) / stats[1][1]
    assert np.allclose(CrossEncoder(out).score(pairs), expected, atol=1e-4)
    with pytest.raises(SystemExit, match="exists"):  # never overwrites a packaged model
        make_ensemble(trained, groups, out)
