"""Default reranker v2 recipe pieces on tiny models and tiny data: teacher scoring (cached, resumable) and
the pseudo-pair pool."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "default_reranker_v2"
sys.path.insert(0, str(RECIPE))

from teachers import BiEncoderTeacher, TeacherSpec  # noqa: E402


@pytest.fixture()
def teacher_spec(tiny_model) -> TeacherSpec:
    return TeacherSpec("tiny", str(tiny_model), "query: ", "passage: ", max_length=64)


def test_a_teacher_scores_by_cosine_and_caches_every_text(teacher_spec, tmp_path):
    pairs = [("what is a cat", "a cat is a small animal"), ("what is a cat", "stocks fell on monday"),
             ("capital of france", "paris is the capital of france")]
    teacher = BiEncoderTeacher(teacher_spec, tmp_path, tmp_path / "cache")
    scores = teacher.score(pairs)
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0 + 1e-3)  # cosines of normalised vectors
    queries = teacher.embed([q for q, _ in pairs], "query: ")
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-2)
    assert np.allclose(queries[0], queries[1])  # the same text, one cached vector
    # Prefixes matter: the same text as a passage is another vector.
    assert not np.allclose(teacher.embed(["what is a cat"], "passage: ")[0], queries[0])
    cached = BiEncoderTeacher(teacher_spec, tmp_path, tmp_path / "cache")
    assert len(cached.cache) == 5 + 1  # 2 distinct queries + 3 passages + the extra passage-form query
    cached.model = None  # nothing left to compute: a call that needed the model would fail
    assert np.allclose(cached.score(pairs), scores, atol=1e-3)


def test_the_pool_holds_wikiqa_groups_with_judgments_and_every_teachers_scores(teacher_spec, tmp_path, monkeypatch):
    import build_pool
    import teachers

    data = tmp_path / "data"
    wikiqa = data / "wikiqa"
    (wikiqa / "qrels").mkdir(parents=True)
    (wikiqa / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in
                                                    [("Q1", "how tall is everest"), ("Q2", "who wrote hamlet")]))
    docs = {"D1-0": "Everest is 8,849 metres tall.", "D1-1": "Nepal has many valleys.",
            "D2-0": "Hamlet was written by Shakespeare.", "D2-1": "Denmark is a country."}
    (wikiqa / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": d, "title": "", "text": t})
                                                   for d, t in docs.items()))
    (wikiqa / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nQ1\tD1-0\t1\nQ1\tD1-1\t0\nQ2\tD2-0\t1\nQ2\tD2-1\t0\n")
    groups = build_pool.wikiqa_groups(data)
    assert [g["query"] for g in groups] == ["how tall is everest", "who wrote hamlet"]
    assert groups[0]["judgments"] == [1, 0] and groups[0]["documents"][0].startswith("Everest")

    monkeypatch.setitem(teachers.TEACHERS, "tiny", teacher_spec)
    monkeypatch.setattr(build_pool, "msmarco_groups", lambda *args: [])
    output = tmp_path / "pool.jsonl"
    monkeypatch.setattr(sys, "argv", ["build_pool", "--data", str(data), "--teachers-dir", str(tmp_path),
                                      "--teachers", "tiny", "--output", str(output), "--cache", str(tmp_path / "c")])
    build_pool.main()
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(written) == 2 and len(written[0]["teachers"]["tiny"]) == 2
    direct = BiEncoderTeacher(teacher_spec, tmp_path, tmp_path / "c").score([("who wrote hamlet", docs["D2-0"])])
    assert written[1]["teachers"]["tiny"][0] == pytest.approx(float(direct[0]), abs=1e-3)
