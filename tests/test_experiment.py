"""Run reranking, the K-sweep experiment and the eval / rerank-run / experiment commands, end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.data.formats import ranked, read_corpus, read_qrels, read_queries, read_run, write_trec_run
from crossrank.evaluation.experiment import ExperimentConfig, run_experiment
from crossrank.evaluation.metrics import evaluate
from crossrank.evaluation.report import write_report
from crossrank.pipeline.run_reranking import rerank_run

from test_cli import run_cli
from texts import word_soup


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    """A small BEIR folder (12 queries, 120 documents, graded qrels) and a 30-deep first-stage run."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("beir")
    docs = {f"d{i}": word_soup(rng, rng.randint(5, 60)) for i in range(120)}
    with open(root / "corpus.jsonl", "w") as f:
        for doc_id, text in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": f"title {doc_id}", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for q in range(12):
            f.write(json.dumps({"_id": f"q{q}", "text": word_soup(rng, 4)}) + "\n")
    (root / "qrels").mkdir()
    with open(root / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in range(12):
            for d in rng.sample(sorted(docs), 6):
                f.write(f"q{q}\t{d}\t{rng.choice([1, 2])}\n")
    run = {f"q{q}": {d: float(30 - r) for r, d in enumerate(rng.sample(sorted(docs), 30))} for q in range(12)}
    write_trec_run(run, root / "first.trec", tag="first")
    return root


def load(beir):
    run = read_run(beir / "first.trec").run
    return read_queries(beir / "queries.jsonl"), read_corpus(beir / "corpus.jsonl"), run


def test_rerank_run_orders_the_prefix_by_score_and_keeps_the_tail(beir, tiny_ce):
    queries, corpus, run = load(beir)
    new = rerank_run(tiny_ce, run, queries, corpus, depth=10)
    for qid in run:
        first = ranked(run[qid])
        order = ranked(new[qid])
        assert set(order[:10]) == set(first[:10]) and order[10:] == first[10:]
        expected = tiny_ce.score([(queries[qid], corpus[d].full_text) for d in first[:10]])
        want = [first[i] for i in sorted(range(10), key=lambda i: (-expected[i], first[i]))]
        got_scores = [new[qid][d] for d in order[:10]]
        assert got_scores == sorted(got_scores, reverse=True)
        assert np.allclose(sorted(got_scores, reverse=True), sorted(expected, reverse=True), atol=1e-5)
        assert set(want) == set(order[:10])


def test_experiment_sweeps_k_and_writes_report_plots_and_runs(beir, tiny_ce, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the [plots] extra")
    queries, corpus, run = load(beir)
    qrels = read_qrels(beir / "qrels" / "test.tsv").qrels
    config = ExperimentConfig(ks=(5, 10, 30), metrics=("ndcg@10", "mrr@10"), latency_queries=4)
    result = run_experiment(tiny_ce, "tiny", queries, corpus, qrels, run, config, dataset="toy", first_stage="first",
                            output_dir=tmp_path)
    paths = write_report(result, tmp_path)
    assert [r.k for r in result.results] == [5, 10, 30]
    recalls = [r.first_stage_recall for r in result.results]
    assert recalls == sorted(recalls) and result.results[-1].first_stage_recall == pytest.approx(
        evaluate(qrels, run, ["recall@30"]).metrics["recall@30"])
    for r in result.results:
        assert 0 < r.latency_ms["p50"] <= r.latency_ms["p95"] <= r.latency_ms["p99"]
        assert r.pairs_per_second > 0
        assert 0 < r.significance["ndcg@10"].p_randomization <= 1
        # The saved run re-scores to the reported figure: nothing needs recomputing.
        saved = evaluate(qrels, read_run(r.run_file).run, ["ndcg@10"], result.relevance_level)
        assert saved.metrics["ndcg@10"] == pytest.approx(r.metrics["ndcg@10"], abs=1e-9)
    for key in ("quality_vs_k", "latency_vs_k", "quality_vs_latency"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = paths["markdown"].read_text()
    assert "| 30 |" in report and "first-stage Recall@K" in report
    data = json.loads(paths["json"].read_text())
    assert data["results"][0]["k"] == 5 and "cpu" in data["machine"]


def test_eval_command_table_json_per_query_and_errors(beir):
    qrels, run = beir / "qrels" / "test.tsv", beir / "first.trec"
    expected = evaluate(read_qrels(qrels).qrels, read_run(run).run, ["ndcg@10", "map"])
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(run), "--metrics", "ndcg@10", "map", "--json"])
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == pytest.approx(expected.metrics)
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(run), "-M", "ndcg@10,mrr@10", "--json", "--per-query"])
    payload = json.loads(proc.stdout)
    assert set(payload["per_query"]) == {f"q{i}" for i in range(12)}
    assert payload["ndcg@10"] == pytest.approx(np.mean([v["ndcg@10"] for v in payload["per_query"].values()]))
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(run)])
    assert proc.returncode == 0 and "ndcg@10" in proc.stdout.decode() and "recall@100" in proc.stdout.decode()
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(run), "--metrics", "bleu"])
    assert proc.returncode == 3 and "unknown metric 'bleu'" in proc.stderr.decode()
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(beir / "nope.trec")])
    assert proc.returncode == 5 and "nope.trec" in proc.stderr.decode()
    bad = beir / "bad.trec"
    bad.write_text("q1 Q0 d1 1 x t\n")
    proc = run_cli(["eval", "--qrels", str(qrels), "--run", str(bad)])
    assert proc.returncode == 3 and "bad.trec:1: score 'x' is not a number" in proc.stderr.decode()


def test_rerank_run_and_experiment_commands(beir, tiny_model, tmp_path):
    pytest.importorskip("matplotlib", reason="plots need the [plots] extra")
    out = tmp_path / "reranked.trec"
    proc = run_cli(["rerank-run", "--model", str(tiny_model), "--corpus", str(beir / "corpus.jsonl"),
                    "--queries", str(beir / "queries.jsonl"), "--run", str(beir / "first.trec"), "--depth", "10",
                    "--output", str(out)])
    assert proc.returncode == 0, proc.stderr.decode()
    queries, corpus, run = load(beir)
    expected = rerank_run(CrossEncoder(str(tiny_model)), run, queries, corpus, depth=10)
    got = read_run(out).run
    assert {q: ranked(d) for q, d in got.items()} == {q: ranked(d) for q, d in expected.items()}

    proc = run_cli(["experiment", "--data", str(beir), "--run", str(beir / "first.trec"), "--model", str(tiny_model),
                    "--ks", "5,10", "--latency-queries", "3", "--output-dir", str(tmp_path / "exp")])
    assert proc.returncode == 0, proc.stderr.decode()
    assert "| 10 |" in proc.stdout.decode()
    assert {p.name for p in (tmp_path / "exp").iterdir()} >= {"report.md", "results.json", "quality_vs_k.png",
                                                              "latency_vs_k.png", "quality_vs_latency.png", "runs"}
    proc = run_cli(["experiment", "--data", str(beir), "--run", str(beir / "first.trec"), "--ks", "ten"])
    assert proc.returncode == 3 and "--ks" in proc.stderr.decode()
