"""Metrics: reproduce trec_eval figures and agree with an independent implementation (ranx) to 1e-6."""

from __future__ import annotations

import random

import pytest

from crossrank.errors import InvalidInputError
from crossrank.evaluation.metrics import auto_relevance_level, evaluate
from crossrank.evaluation.significance import paired_test

from conftest import TREC_DL


def synthetic(seed: int = 0, queries: int = 30):
    """Graded qrels (0-3) and a run without score ties, so tie-breaking conventions cannot differ."""
    rng = random.Random(seed)
    qrels, run = {}, {}
    for q in range(queries):
        docs = [f"d{q}_{i}" for i in range(150)]
        qrels[f"q{q}"] = {d: rng.choice([0, 0, 0, 1, 2, 3]) for d in rng.sample(docs, 40)}
        scores = rng.sample(range(100_000), 120)
        run[f"q{q}"] = {d: s / 1000 for d, s in zip(rng.sample(docs, 120), scores)}
    return qrels, run


@pytest.mark.parametrize("level", [1, 2])
def test_metrics_agree_with_ranx(level):
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    qrels, run = synthetic(seed=level)
    ours = evaluate(qrels, run, ["ndcg@10", "mrr@10", "recall@100", "map", "p@10", "ndcg@5"], relevance_level=level)
    theirs = ranx_evaluate(Qrels(qrels), Run(run), ["ndcg@10", f"mrr@10-l{level}", f"recall@100-l{level}",
                                                    f"map-l{level}", f"precision@10-l{level}", "ndcg@5"])
    expected = dict(zip(["ndcg@10", "mrr@10", "recall@100", "map", "p@10", "ndcg@5"], theirs.values()))
    for name, value in expected.items():
        assert ours.metrics[name] == pytest.approx(float(value), abs=1e-6), name


def test_per_query_values_average_to_the_mean_and_missing_queries_count_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}, "q3": {"c": 1}}
    run = {"q1": {"a": 2.0, "x": 1.0}, "q2": {"x": 2.0, "b": 1.0}, "q9": {"a": 1.0}}
    result = evaluate(qrels, run, ["mrr@10"], relevance_level=1)
    assert result.per_query["mrr@10"] == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    assert result.metrics["mrr@10"] == pytest.approx(0.5) and result.queries == 3


def test_relevance_level_changes_binary_metrics_but_not_ndcg():
    qrels = {"q1": {"a": 1, "b": 3}}
    run = {"q1": {"a": 2.0, "b": 1.0}}
    low, high = (evaluate(qrels, run, ["mrr@10", "ndcg@10"], relevance_level=lvl) for lvl in (1, 2))
    assert low.metrics["mrr@10"] == 1.0 and high.metrics["mrr@10"] == 0.5
    assert low.metrics["ndcg@10"] == high.metrics["ndcg@10"]
    assert auto_relevance_level({"q": {"a": 3, "b": 0}}) == 2 and auto_relevance_level({"q": {"a": 2}}) == 1


@pytest.mark.parametrize("name", ["ndcg@x", "bleu", "recall", "mrr@0"])
def test_unknown_metric_names_are_refused(name):
    with pytest.raises(InvalidInputError):
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, [name])


@pytest.mark.skipif(not (TREC_DL / "runs").is_dir(), reason="TREC DL 2020 data not in ../shared/data")
@pytest.mark.parametrize("run_name, ndcg", [("bm25", 0.4796), ("tasb", 0.6854), ("splade_pp_ed", 0.7197)])
def test_published_trec_dl_2020_figures_are_reproduced(run_name, ndcg):
    from crossrank.data.formats import read_qrels, read_run

    qrels = read_qrels(TREC_DL / "qrels" / "test.tsv").qrels
    result = evaluate(qrels, read_run(TREC_DL / "runs" / f"{run_name}.top100.tsv").run, ["ndcg@10", "recall@100"])
    assert result.relevance_level == 2 and result.queries == 54
    assert result.metrics["ndcg@10"] == pytest.approx(ndcg, abs=5e-4)
    if run_name == "bm25":
        assert result.metrics["recall@100"] == pytest.approx(0.5599, abs=5e-5)


def test_paired_tests():
    base = {f"q{i}": 0.3 + 0.01 * (i % 7) for i in range(40)}
    same = paired_test(base, dict(base))
    assert same.p_randomization == 1.0 and same.p_ttest == 1.0 and same.mean_difference == 0.0
    better = {q: v + 0.1 + 0.01 * (i % 3) for i, (q, v) in enumerate(base.items())}
    test = paired_test(base, better)
    assert test.mean_difference == pytest.approx(0.11, abs=0.01)
    assert test.p_randomization < 0.001 and test.p_ttest < 1e-6 and test.queries == 40
    mixed = {q: v + (0.05 if i % 2 else -0.05) for i, (q, v) in enumerate(base.items())}
    assert paired_test(base, mixed).p_randomization > 0.5
