"""One model, one score: Python, `rerank`, `rerank-run`, `search` and `serve` give the same raw score and the
same probability for the same pair, with an ensemble model folder (ensemble.json + calibration.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.ranking.calibration import Calibration

from test_cli import jsonl, run_cli
from test_server import Server

QUERY = "how many people live in berlin"
DOCS = ["Berlin is well known for its museums.", "Berlin had a population of 3,520,031 registered inhabitants.",
        "Water boils at 100 degrees.", "protein cell therapy in the river city"]


@pytest.fixture(scope="module")
def expected(ensemble_model):
    """Python's answer: the reference every other surface must give."""
    ce = CrossEncoder(str(ensemble_model))
    assert ce.ensemble is not None and ce.calibration is not None
    scores = ce.score([(QUERY, d) for d in DOCS])
    return scores, ce.probability(scores)


def test_python_scores_as_the_ensemble_with_its_scale_and_calibration(ensemble_model, tiny_model, tiny_bi_encoder,
                                                                      expected):
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

    pairs = [(QUERY, d) for d in DOCS]
    own = CrossEncoder(str(tiny_model)).score(pairs).astype(np.float64)
    cosine = BiEncoderReranker(BiEncoder(str(tiny_bi_encoder))).score(pairs).astype(np.float64)
    combined = 0.6 * (own - 0.5) / 2.0 + 0.4 * (cosine - 0.3) / 0.2
    scores, probabilities = expected
    np.testing.assert_allclose(scores, 1.5 * combined - 0.25, atol=1e-5)
    np.testing.assert_allclose(probabilities, Calibration("platt", a=0.8, b=0.3).probability(scores), atol=1e-9)
    ranked = CrossEncoder(str(ensemble_model)).rerank(QUERY, DOCS)
    assert [r.probability for r in ranked] == pytest.approx([probabilities[r.index] for r in ranked], abs=1e-9)


def test_cli_rerank_gives_the_same_scores_and_probabilities(ensemble_model, expected):
    proc = run_cli(["rerank", "--model", str(ensemble_model)], jsonl({"query": QUERY, "documents": DOCS}))
    assert proc.returncode == 0, proc.stderr.decode()
    results = json.loads(proc.stdout)["results"]
    scores, probabilities = expected
    assert [r["score"] for r in results] == pytest.approx([scores[r["index"]] for r in results], abs=1e-5)
    assert [r["probability"] for r in results] == pytest.approx([probabilities[r["index"]] for r in results],
                                                                abs=1e-6)


def test_rerank_run_gives_the_same_scores(ensemble_model, expected, tmp_path):
    corpus, queries, run = tmp_path / "corpus.jsonl", tmp_path / "queries.jsonl", tmp_path / "run.trec"
    corpus.write_text(jsonl(*({"_id": f"d{i}", "title": "", "text": d} for i, d in enumerate(DOCS))))
    queries.write_text(jsonl({"_id": "q1", "text": QUERY}))
    run.write_text("".join(f"q1 Q0 d{i} {i + 1} {10 - i} bm25\n" for i in range(len(DOCS))))
    out = tmp_path / "reranked.trec"
    proc = run_cli(["rerank-run", "--model", str(ensemble_model), "--corpus", str(corpus), "--queries", str(queries),
                    "--run", str(run), "--output", str(out), "--depth", "4", "--device", "auto"])
    assert proc.returncode == 0, proc.stderr.decode()
    got = {line.split()[2]: float(line.split()[4]) for line in out.read_text().splitlines()}
    scores, _ = expected
    assert [got[f"d{i}"] for i in range(len(DOCS))] == pytest.approx(list(scores), abs=1e-4)


def test_search_gives_the_same_scores_and_probabilities(ensemble_model, expected, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(jsonl(*({"_id": f"d{i}", "title": "", "text": d} for i, d in enumerate(DOCS))))
    index = tmp_path / "index"
    assert run_cli(["index", "build", str(index), "--corpus", str(corpus)]).returncode == 0
    # Every document shares a word with the query, so BM25 returns all four.
    proc = run_cli(["search", str(index), "--query", QUERY + " water protein museums", "--rerank",
                    str(ensemble_model), "--k", "4", "--top-n", "4", "--json", "--device", "auto"])
    assert proc.returncode == 0, proc.stderr.decode()
    hits = json.loads(proc.stdout)["hits"]
    assert len(hits) == 4
    ce = CrossEncoder(str(ensemble_model))
    scores = ce.score([(QUERY + " water protein museums", d) for d in DOCS])
    probabilities = ce.probability(scores)
    for hit in hits:
        i = int(hit["id"][1:])
        assert hit["rerank_score"] == pytest.approx(float(scores[i]), abs=1e-5)
        assert hit["probability"] == pytest.approx(float(probabilities[i]), abs=1e-6)


def test_serve_gives_the_same_scores_and_probabilities(ensemble_model, expected):
    server = Server(ensemble_model, "--device", "auto")
    try:
        scores, probabilities = expected
        tei = server.post("/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
        assert [r["score"] for r in tei] == pytest.approx([scores[r["index"]] for r in tei], abs=1e-5)
        tei = server.post("/rerank", {"query": QUERY, "texts": DOCS}).json()
        assert [r["score"] for r in tei] == pytest.approx([probabilities[r["index"]] for r in tei], abs=1e-6)
        for version in ("v1", "v2"):
            body = server.post(f"/{version}/rerank", {"query": QUERY, "documents": DOCS}).json()
            assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
                [probabilities[r["index"]] for r in body["results"]], abs=1e-6)
            assert [r["index"] for r in body["results"]] == list(np.argsort(-scores, kind="stable"))
    finally:
        server.stop()
    assert server.proc.returncode == 0


def test_device_auto_reaches_every_member_as_a_real_device(ensemble_model):
    ce = CrossEncoder(str(ensemble_model), device="auto")
    assert ce.device in ("cpu", "cuda", "mps")
    assert str(ce.ensemble.members[1].encoder.model.device).startswith(ce.device)
    proc = run_cli(["rerank", "--model", str(ensemble_model), "--device", "auto"], jsonl({"query": QUERY,
                                                                                          "documents": DOCS}))
    assert proc.returncode == 0, proc.stderr.decode()


def test_stats_count_every_member(ensemble_model):
    ce = CrossEncoder(str(ensemble_model))
    ce.score([(QUERY, d) for d in DOCS])
    stats = ce.last_stats
    assert stats.pairs == 4 and stats.batches >= 1 and stats.partner_seconds > 0
    assert stats.total_seconds == pytest.approx(stats.tokenize_seconds + stats.pad_seconds + stats.forward_seconds
                                                + stats.partner_seconds)


def test_own_weights_alone_do_not_use_the_ensembles_calibration(ensemble_model, tiny_model):
    alone = CrossEncoder(str(ensemble_model), use_ensemble=False)
    reference = CrossEncoder(str(tiny_model))
    pairs = [(QUERY, d) for d in DOCS]
    np.testing.assert_allclose(alone.score(pairs), reference.score(pairs), atol=1e-6)
    scores = alone.score(pairs)
    np.testing.assert_allclose(alone.probability(scores), 1 / (1 + np.exp(-scores.astype(np.float64))), atol=1e-9)


def test_the_shipped_default_probability_is_the_sigmoid_of_its_score_and_right_answers_pass_one_half():
    ce = CrossEncoder()
    assert ce.calibration is None and ce.ensemble is not None
    ranked = ce.rerank("What is the capital of France?",
                       ["Paris is the capital and most populous city of France.",
                        "The Eiffel Tower was built for the 1889 World's Fair.",
                        "Bananas are rich in potassium."])
    for r in ranked:
        assert r.probability == pytest.approx(1 / (1 + np.exp(-r.score)), abs=1e-6)
    assert ranked[0].index == 0 and ranked[0].probability > 0.5
    assert ranked[-1].index == 2 and ranked[-1].probability < 0.2


def test_experiment_scores_with_the_ensemble(ensemble_model, tmp_path):
    """`crossrank experiment` writes its reranked runs with the same scores as Python."""
    pytest.importorskip("matplotlib", reason="plots need the [plots] extra")
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text(jsonl(*({"_id": f"d{i}", "title": "", "text": d} for i, d in enumerate(DOCS))))
    (data / "queries.jsonl").write_text(jsonl({"_id": "q1", "text": QUERY}))
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    run = data / "first.trec"
    run.write_text("".join(f"q1 Q0 d{i} {i + 1} {10 - i} bm25\n" for i in range(len(DOCS))))
    proc = run_cli(["experiment", "--data", str(data), "--run", str(run), "--model", str(ensemble_model), "--ks", "4",
                    "--latency-queries", "1", "--output-dir", str(tmp_path / "exp")])
    assert proc.returncode == 0, proc.stderr.decode()
    lines = (tmp_path / "exp" / "runs" / "reranked.k4.trec").read_text().splitlines()
    got = {line.split()[2]: float(line.split()[4]) for line in lines}
    scores = CrossEncoder(str(ensemble_model)).score([(QUERY, d) for d in DOCS])
    assert [got[f"d{i}"] for i in range(len(DOCS))] == pytest.approx(list(scores), abs=1e-4)
