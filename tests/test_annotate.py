"""The cross-encoder as annotator: pooling, grades from calibrated probabilities, filling only the holes
of existing judgments, both qrels formats, and the CLI's errors. Real tiny model, real files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from crossrank.data.formats import read_corpus, read_qrels, read_queries, write_qrels, write_trec_run
from crossrank.errors import InvalidInputError
from crossrank.pipeline.annotate import GradeThresholds, annotate, pool

from test_cli import run_cli
from texts import word_soup


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    rng = random.Random(5)
    root = tmp_path_factory.mktemp("annotate")
    docs = {f"d{i}": word_soup(rng, rng.randint(5, 40)) for i in range(60)}
    with open(root / "corpus.jsonl", "w") as f:
        for doc_id, text in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for q in range(5):
            f.write(json.dumps({"_id": f"q{q}", "text": word_soup(rng, 3)}) + "\n")
    for name, seed in (("a", 1), ("b", 2)):
        r = random.Random(seed)
        run = {f"q{q}": {d: float(20 - i) for i, d in enumerate(r.sample(sorted(docs), 20))} for q in range(5)}
        write_trec_run(run, root / f"{name}.trec", tag=name)
    return root


def test_pool_is_the_union_of_each_runs_top_k_in_order_of_appearance():
    a = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    b = {"q": {"z": 9.0, "w": 8.0, "x": 7.0}, "other": {"v": 1.0}}
    assert pool([a, b], 2) == {"q": ["x", "y", "z", "w"], "other": ["v"]}
    assert pool([a, b], 2, queries={"q": "text"}) == {"q": ["x", "y", "z", "w"]}
    with pytest.raises(InvalidInputError, match="depth"):
        pool([a], 0)
    with pytest.raises(InvalidInputError, match="at least one run"):
        pool([], 5)


def test_grades_count_the_thresholds_a_probability_reaches():
    cuts = GradeThresholds((0.25, 0.5, 0.8))
    assert cuts.grade(np.array([0.0, 0.2499, 0.25, 0.6, 0.8, 0.99])).tolist() == [0, 0, 1, 2, 3, 3]
    assert GradeThresholds((0.5,)).grade(np.array([0.3, 0.7])).tolist() == [0, 1]  # binary pseudo-qrels
    for bad in ((0.5, 0.4), (0.0, 0.5), (0.2, 1.0), (), (0.1, 0.2, 0.3, 0.4)):
        with pytest.raises(InvalidInputError, match="threshold"):
            GradeThresholds(bad)


def test_annotate_grades_every_pooled_pair_with_the_models_probability(collection, tiny_ce):
    from crossrank.data.formats import read_run

    queries = read_queries(collection / "queries.jsonl")
    corpus = read_corpus(collection / "corpus.jsonl")
    runs = [read_run(collection / f"{n}.trec").run for n in ("a", "b")]
    lists = pool(runs, 5, queries)
    pairs = [(q, d) for q, ids in lists.items() for d in ids]
    probs = tiny_ce.probability(tiny_ce.score([(queries[q], corpus[d].full_text) for q, d in pairs]))
    # Thresholds at the quartiles of this random model's probabilities, so every grade occurs.
    cuts = GradeThresholds(tuple(float(x) for x in np.quantile(probs, [0.25, 0.5, 0.75])))
    result = annotate(tiny_ce, queries, corpus, runs, 5, cuts)
    assert result.pooled == sum(len(v) for v in lists.values()) and result.already_judged == 0
    assert {q: sorted(d) for q, d in result.qrels.items()} == {q: sorted(v) for q, v in lists.items()}
    for (q, d), p in zip(pairs, probs):
        assert result.probabilities[q][d] == pytest.approx(float(p), abs=1e-5)
        assert result.qrels[q][d] == sum(p >= c for c in cuts.cuts)
    assert {g for docs in result.qrels.values() for g in docs.values()} == {0, 1, 2, 3}


def test_judged_pairs_are_kept_and_only_holes_are_annotated(collection, tiny_ce):
    from crossrank.data.formats import read_run

    queries = read_queries(collection / "queries.jsonl")
    corpus = read_corpus(collection / "corpus.jsonl")
    runs = [read_run(collection / "a.trec").run]
    lists = pool(runs, 6, queries)
    judged = {"q0": {lists["q0"][0]: 3, lists["q0"][1]: 0, "not-pooled": 2}}
    result = annotate(tiny_ce, queries, corpus, runs, 6, judged=judged)
    assert result.already_judged == 2
    assert lists["q0"][0] not in result.qrels["q0"] and lists["q0"][1] not in result.qrels["q0"]
    merged = result.merged_with(judged)
    assert merged["q0"][lists["q0"][0]] == 3 and merged["q0"][lists["q0"][1]] == 0  # human grades win
    assert merged["q0"]["not-pooled"] == 2
    assert sum(len(v) for v in merged.values()) == sum(len(v) for v in lists.values()) + 1


def test_cli_annotate_writes_trec_or_beir_qrels_and_fills_holes(collection, tiny_model, tmp_path):
    out = tmp_path / "pseudo.qrels"
    args = ["annotate", "--corpus", str(collection / "corpus.jsonl"), "--queries", str(collection / "queries.jsonl"),
            "--run", str(collection / "a.trec"), "--run", str(collection / "b.trec"), "--depth", "4",
            "--model", str(tiny_model), "--no-progress"]
    proc = run_cli(args + ["--output", str(out), "--thresholds", "0.3,0.5,0.7"])
    assert proc.returncode == 0, proc.stderr.decode()
    summary = json.loads(proc.stdout)
    trec = read_qrels(out).qrels
    assert summary["annotated"] == sum(len(v) for v in trec.values()) == summary["pooled_pairs"]
    assert out.read_text().splitlines()[0].split()[1] == "0"  # TREC: qid 0 docid grade
    assert sum(summary["grades"].values()) == summary["annotated"]
    # BEIR format, filling the holes of a judged file: the judged grades come back unchanged.
    judged = tmp_path / "judged.tsv"
    first_q = sorted(trec)[0]
    some = sorted(trec[first_q])[:2]
    write_qrels({first_q: {some[0]: 3, some[1]: 3}}, judged, "beir")
    beir_out = tmp_path / "filled.tsv"
    proc = run_cli(args + ["--output", str(beir_out), "--format", "beir", "--judged", str(judged),
                           "--thresholds", "0.3,0.5,0.7"])
    assert proc.returncode == 0, proc.stderr.decode()
    assert beir_out.read_text().startswith("query-id\tcorpus-id\tscore\n")
    filled = read_qrels(beir_out).qrels
    assert filled[first_q][some[0]] == filled[first_q][some[1]] == 3
    assert {(q, d): g for q, v in filled.items() for d, g in v.items() if d not in some or q != first_q} == \
        {(q, d): g for q, v in trec.items() for d, g in v.items() if d not in some or q != first_q}
    assert json.loads(proc.stdout)["kept_judgments"] == 2


def test_cli_annotate_errors_are_clear_and_leave_the_output_alone(collection, tiny_model, tmp_path):
    out = tmp_path / "keep.qrels"
    out.write_text("q0 0 d1 2\n")
    base = ["annotate", "--corpus", str(collection / "corpus.jsonl"), "--queries", str(collection / "queries.jsonl"),
            "--output", str(out), "--model", str(tiny_model), "--no-progress"]
    proc = run_cli(base + ["--run", str(collection / "a.trec"), "--thresholds", "0.8,0.5"])
    assert proc.returncode == 3 and "increasing" in proc.stderr.decode()
    proc = run_cli(base + ["--run", str(collection / "a.trec"), "--thresholds", "high"])
    assert proc.returncode == 3 and "--thresholds" in proc.stderr.decode()
    proc = run_cli(base + ["--run", str(collection / "a.trec"), "--format", "xml"])
    assert proc.returncode == 3 and "qrels format" in proc.stderr.decode()
    proc = run_cli(base + ["--run", str(tmp_path / "missing.trec")])
    assert proc.returncode == 5 and "missing.trec" in proc.stderr.decode()
    bad_run = tmp_path / "bad.trec"
    bad_run.write_text("q0 Q0 d1 1 not-a-number tag\n")
    proc = run_cli(base + ["--run", str(bad_run)])
    assert proc.returncode == 3 and "bad.trec:1" in proc.stderr.decode()
    assert out.read_text() == "q0 0 d1 2\n"  # nothing written over the existing file
