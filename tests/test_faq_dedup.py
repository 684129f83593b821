"""FAQ matching ("no answer" included) and duplicate-question clustering: real tiny models and real files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from crossrank.data.formats import Document
from crossrank.errors import InvalidInputError
from crossrank.pipeline.dedup import DuplicatePair, candidate_pairs, cluster, find_duplicates
from crossrank.pipeline.faq_match import FaqMatcher

from test_cli import run_cli
from texts import word_soup


@pytest.fixture(scope="module")
def bi(tiny_bi_encoder):
    from crossrank.model.bi_encoder import BiEncoder

    return BiEncoder(str(tiny_bi_encoder))


@pytest.fixture(scope="module")
def faq():
    rng = random.Random(8)
    return {f"f{i}": Document(f"f{i}", word_soup(rng, 6) + "?", word_soup(rng, 30)) for i in range(12)}


QUESTIONS = {"u1": "protein cell therapy question", "u2": "river city history question", "u3": "music and energy"}


def test_match_reads_the_shortlist_and_answers_only_above_the_threshold(faq, tiny_ce, bi):
    matcher = FaqMatcher(faq, tiny_ce, bi, shortlist=5)
    results = matcher.match(QUESTIONS, threshold=0.0, top_k=5)
    assert [r.query_id for r in results] == list(QUESTIONS)
    entries = list(faq.values())
    vectors = bi.encode([e.title for e in entries])
    for result in results:
        text = QUESTIONS[result.query_id]
        cosines = bi.encode([text])[0] @ vectors.T
        shortlist = {entries[j].id for j in np.argsort(-cosines)[:5]}
        assert {c.id for c in result.candidates} == shortlist
        scores = [c.score for c in result.candidates]
        assert scores == sorted(scores, reverse=True)
        assert result.match == result.candidates[0]  # threshold 0: always an answer
        for c in result.candidates:
            expected = tiny_ce.score([(text, faq[c.id].full_text)])
            assert c.score == pytest.approx(float(expected[0]), abs=1e-4)
            assert c.probability == pytest.approx(float(tiny_ce.probability(expected)[0]), abs=1e-6)
    # A threshold just above one question's best probability: that question gets "no answer".
    best = results[0].candidates[0].probability
    if best < 1.0:
        again = matcher.match({"u1": QUESTIONS["u1"]}, threshold=min(1.0, best + 1e-6))
        assert again[0].match is None and again[0].candidates[0].id == results[0].candidates[0].id
    # Reading only the FAQ question changes what the cross-encoder reads.
    by_question = FaqMatcher(faq, tiny_ce, bi, shortlist=5, read="question").match({"u1": QUESTIONS["u1"]}, 0.0)
    top = by_question[0].candidates[0]
    assert top.score == pytest.approx(float(tiny_ce.score([(QUESTIONS["u1"], faq[top.id].title)])[0]), abs=1e-4)


def test_fused_ranking_combines_both_models_ranks(faq, tiny_ce, bi):
    plain = FaqMatcher(faq, tiny_ce, bi, shortlist=8).match(QUESTIONS, threshold=0.0, top_k=8)
    fused = FaqMatcher(faq, tiny_ce, bi, shortlist=8, rank_by="fused").match(QUESTIONS, threshold=0.0, top_k=8)
    for p, f in zip(plain, fused):
        assert {c.id for c in p.candidates} == {c.id for c in f.candidates}  # the same shortlist and scores
        ce_rank = {c.id: r for r, c in enumerate(p.candidates)}
        bi_rank = {c.id: r for r, c in enumerate(sorted(p.candidates, key=lambda c: -c.cosine))}
        values = [1 / (60 + ce_rank[c.id]) + 1 / (60 + bi_rank[c.id]) for c in f.candidates]
        assert values == sorted(values, reverse=True)
        assert f.match == f.candidates[0]
    with pytest.raises(InvalidInputError, match="unknown FAQ ranking"):
        FaqMatcher(faq, tiny_ce, bi, rank_by="votes")


def test_bi_encoder_ranking_keeps_the_cosine_order_and_the_cross_encoders_threshold(faq, tiny_ce, bi):
    plain = FaqMatcher(faq, tiny_ce, bi, shortlist=8).match(QUESTIONS, threshold=0.0, top_k=8)
    by_cosine = FaqMatcher(faq, tiny_ce, bi, shortlist=8, rank_by="bi-encoder").match(QUESTIONS, threshold=0.0,
                                                                                        top_k=8)
    for p, b in zip(plain, by_cosine):
        assert sorted(p.candidates, key=lambda c: -c.cosine) == b.candidates  # same scores, cosine order
        assert b.match == b.candidates[0]
    strict = FaqMatcher(faq, tiny_ce, bi, shortlist=8, rank_by="bi-encoder").match(QUESTIONS, threshold=1.0)
    assert all(r.match is None for r in strict)  # the cross-encoder's probability still decides "no answer"
    first = by_cosine[0].candidates[0].probability
    halfway = FaqMatcher(faq, tiny_ce, bi, shortlist=8, rank_by="bi-encoder").match(
        {by_cosine[0].query_id: QUESTIONS[by_cosine[0].query_id]}, threshold=first + 1e-9)
    assert halfway[0].match is None and halfway[0].candidates[0].id == by_cosine[0].candidates[0].id


def test_match_refuses_bad_input(faq, tiny_ce, bi):
    with pytest.raises(InvalidInputError, match="FAQ is empty"):
        FaqMatcher({}, tiny_ce, bi)
    with pytest.raises(InvalidInputError, match="neither a question"):
        FaqMatcher({"x": Document("x", "", "  ")}, tiny_ce, bi)
    matcher = FaqMatcher(faq, tiny_ce, bi)
    with pytest.raises(InvalidInputError, match="is empty"):
        matcher.match({"u": "   "})
    with pytest.raises(InvalidInputError, match="threshold"):
        matcher.match({"u": "a question"}, threshold=1.5)


def test_candidate_pairs_are_nearest_neighbours_above_the_cosine_floor():
    vectors = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.1, 0.995]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert [(i, j) for i, j, _ in candidate_pairs(vectors, 1, 0.5)] == [(0, 1), (2, 3)]
    assert candidate_pairs(vectors, 3, 0.999) == []
    assert candidate_pairs(vectors[:1], 5, 0.0) == []


def test_components_join_chains_and_strict_clustering_does_not():
    ids = ["a", "b", "c", "d", "e"]
    pairs = [DuplicatePair("a", "b", 0.9, 0.9), DuplicatePair("b", "c", 0.8, 0.8)]
    assert cluster(ids, pairs) == [["a", "b", "c"], ["d"], ["e"]]
    assert cluster(ids, pairs, "strict") == [["a", "b"], ["c"], ["d"], ["e"]]
    triangle = pairs + [DuplicatePair("a", "c", 0.7, 0.7)]
    assert cluster(ids, triangle, "strict") == [["a", "b", "c"], ["d"], ["e"]]
    assert cluster(ids, []) == [[i] for i in ids]
    with pytest.raises(InvalidInputError, match="unknown clustering"):
        cluster(ids, pairs, "kmeans")


def test_find_duplicates_verifies_both_orders_with_the_cross_encoder(tiny_ce, bi):
    rng = random.Random(9)
    questions = {f"q{i}": word_soup(rng, 8) for i in range(10)}
    found = find_duplicates(questions, tiny_ce, bi, threshold=0.0, neighbours=2, min_cosine=-1.0)
    assert found and len({(p.first, p.second) for p in found}) == len(found)
    for pair in found[:5]:
        a, b = questions[pair.first], questions[pair.second]
        probs = tiny_ce.probability(tiny_ce.score([(a, b), (b, a)]))
        assert pair.probability == pytest.approx(float(np.mean(probs)), abs=1e-5)
    cut = float(np.median([p.probability for p in found]))
    strict = find_duplicates(questions, tiny_ce, bi, threshold=cut, neighbours=2, min_cosine=-1.0)
    assert {(p.first, p.second) for p in strict} == {(p.first, p.second) for p in found if p.probability >= cut}
    with pytest.raises(InvalidInputError, match="no text"):
        find_duplicates({"a": "ok", "b": ""}, tiny_ce, bi)


def test_cli_match_and_dedup_write_their_files(tmp_path, tiny_model):
    faq_path = tmp_path / "faq.jsonl"
    rng = random.Random(10)
    with open(faq_path, "w") as f:
        for i in range(6):
            f.write(json.dumps({"_id": f"f{i}", "title": word_soup(rng, 5) + "?", "text": word_soup(rng, 20)}) + "\n")
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUESTIONS.items()))
    out = tmp_path / "matches.jsonl"
    proc = run_cli(["match", "--faq", str(faq_path), "--queries", str(queries), "--output", str(out),
                    "--threshold", "0", "--top-k", "3", "--model", str(tiny_model), "--no-progress"])
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["query_id"] for r in rows] == list(QUESTIONS)
    for row in rows:
        assert row["match"] == row["candidates"][0] and len(row["candidates"]) == 3
        assert set(row["match"]) >= {"id", "probability", "score", "question"}
    assert json.loads(proc.stdout)["no_answer"] == 0

    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) for i, t in enumerate(
        ["how do I reset my password", "how can I reset my password", "where is the office", "opening hours"]))
        .replace("}{", "}\n{") + "\n")
    clusters = tmp_path / "clusters.jsonl"
    proc = run_cli(["dedup", "--input", str(questions), "--output", str(clusters), "--threshold", "0.5",
                    "--model", str(tiny_model), "--pairs-output", str(tmp_path / "pairs.jsonl"), "--no-progress"])
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in clusters.read_text().splitlines()]
    assert [r["cluster"] for r in rows] == list(range(len(rows)))
    assert sorted(i for r in rows for i in r["ids"]) == ["q0", "q1", "q2", "q3"]  # every id once, singletons too
    verified = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert all(p["probability"] >= 0.5 for p in verified)
    assert len(rows) == 4 - len(verified) or any(len(r["ids"]) > 2 for r in rows)


def test_cli_match_and_dedup_errors_exit_3(tmp_path, tiny_model):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "u1", "text": "a question"}) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    duplicate = tmp_path / "dup.jsonl"
    duplicate.write_text(json.dumps({"_id": "f1", "title": "q?", "text": "a"}) + "\n" +
                         json.dumps({"_id": "f1", "title": "q2?", "text": "b"}) + "\n")
    no_text = tmp_path / "notext.jsonl"
    no_text.write_text(json.dumps({"_id": "f1", "title": "", "text": ""}) + "\n")
    for faq, message in ((empty, "FAQ is empty"), (duplicate, "duplicate document id"), (no_text, "neither a question")):
        proc = run_cli(["match", "--faq", str(faq), "--queries", str(queries), "--output", str(out),
                        "--model", str(tiny_model)])
        assert proc.returncode == 3 and message in proc.stderr.decode(), proc.stderr.decode()
    for questions, message in ((empty, "no questions"), (no_text, "no text"),
                               (duplicate, "missing or non-string field 'text'")):
        if questions is duplicate:
            questions = tmp_path / "missing.jsonl"
            questions.write_text(json.dumps({"_id": "a"}) + "\n")
        proc = run_cli(["dedup", "--input", str(questions), "--output", str(out), "--model", str(tiny_model)])
        assert proc.returncode == 3 and message in proc.stderr.decode(), proc.stderr.decode()
    dup_questions = tmp_path / "dupq.jsonl"
    dup_questions.write_text(json.dumps({"_id": "a", "text": "x"}) + "\n" + json.dumps({"_id": "a", "text": "y"}) + "\n")
    proc = run_cli(["dedup", "--input", str(dup_questions), "--output", str(out), "--model", str(tiny_model)])
    assert proc.returncode == 3 and "duplicate query id" in proc.stderr.decode()
    assert out.read_text() == "kept\n"


def test_pairs_file_becomes_bce_groups_in_both_orders(tmp_path):
    from crossrank.data.formats import FormatError
    from crossrank.training.datasets import groups_from_pairs

    path = tmp_path / "pairs.tsv"
    path.write_text('id\tq1\tq2\tlabel\np1\t"quoted start\tplain text\t1\np2\ta b\tc d\t0\n')
    groups = groups_from_pairs(path)
    assert [(g.query, g.documents, g.labels) for g in groups] == [
        ('"quoted start', ["plain text"], [1.0]), ("plain text", ['"quoted start'], [1.0]),
        ("a b", ["c d"], [0.0]), ("c d", ["a b"], [0.0])]
    sts = tmp_path / "sts.tsv"
    sts.write_text("id\ts1\ts2\tscore\na\tx\ty\t5.0\nb\tx\tz\t2.5\n")
    assert [g.labels[0] for g in groups_from_pairs(sts, both_orders=False)] == [1.0, 0.5]
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tq1\tq2\tlabel\np1\tonly two\n")
    with pytest.raises(FormatError, match="bad.tsv:2: expected 4"):
        groups_from_pairs(bad)


def test_cli_train_pairs_trains_a_pair_classifier(tmp_path, trainable_model):
    rng = random.Random(12)
    path = tmp_path / "pairs.tsv"
    rows = ["id\tq1\tq2\tlabel"]
    for i in range(16):
        text = word_soup(rng, 6)
        rows.append(f"p{i}\t{text}\t{text if i % 2 == 0 else word_soup(rng, 6)}\t{1 if i % 2 == 0 else 0}")
    path.write_text("\n".join(rows) + "\n")
    proc = run_cli(["train", "--pairs", str(path), "--model", str(trainable_model), "--output-dir",
                    str(tmp_path / "out"), "--epochs", "1", "--batch-groups", "8", "--max-length", "32"])
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert summary["groups"] == 32 and summary["steps"] == 4  # both orders, 8 per step
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()
    proc = run_cli(["train", "--pairs", str(path), "--loss", "listwise", "--output-dir", str(tmp_path / "x")])
    assert proc.returncode == 3 and "--loss bce" in proc.stderr.decode()
    proc = run_cli(["train", "--pairs", str(path), "--examples", str(path), "--output-dir", str(tmp_path / "y")])
    assert proc.returncode == 3 and "exactly one of" in proc.stderr.decode()


def test_cli_match_and_dedup_use_the_named_dense_model(tmp_path, tiny_model, tiny_bi_encoder, bi):
    faq_path = tmp_path / "faq.jsonl"
    rng = random.Random(11)
    entries = {f"f{i}": (word_soup(rng, 5) + "?", word_soup(rng, 20)) for i in range(6)}
    faq_path.write_text("".join(json.dumps({"_id": i, "title": t, "text": a}) + "\n" for i, (t, a) in entries.items()))
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUESTIONS.items()))
    out = tmp_path / "matches.jsonl"
    proc = run_cli(["match", "--faq", str(faq_path), "--queries", str(queries), "--output", str(out), "--threshold", "0",
                    "--top-k", "6", "--model", str(tiny_model), "--dense-model", str(tiny_bi_encoder), "--no-progress"])
    assert proc.returncode == 0, proc.stderr.decode()
    vectors = bi.encode([t for t, _ in entries.values()])  # the tiny bi-encoder's cosines, not all-MiniLM-L6-v2's
    for row in (json.loads(line) for line in out.read_text().splitlines()):
        asked = bi.encode([QUESTIONS[row["query_id"]]])[0]
        for c in row["candidates"]:
            assert c["cosine"] == pytest.approx(float(asked @ vectors[list(entries).index(c["id"])]), abs=1e-5)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"_id": f"q{i}", "text": word_soup(rng, 6)}) + "\n" for i in range(5)))
    proc = run_cli(["dedup", "--input", str(questions), "--output", str(tmp_path / "c.jsonl"), "--model", str(tiny_model),
                    "--dense-model", str(tmp_path / "no-such-model"), "--no-progress"])
    assert proc.returncode == 4 and "no-such-model" in proc.stderr.decode(), proc.stderr.decode()
    assert not (tmp_path / "c.jsonl").exists()
