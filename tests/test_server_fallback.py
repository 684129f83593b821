"""The service under a latency budget with a fallback model: who scores what, the tiered order, and the
flags. Real tiny models; costs are set by hand where the plan is checked, and a real server on loopback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossrank.errors import InvalidInputError
from crossrank.pipeline.budget import CostModel

from servers import Server
from test_cli import run_cli

pytest.importorskip("fastapi", reason="the server needs the [serve] extra")

from crossrank.server.budget import BudgetedScorer  # noqa: E402

QUERY = "protein therapy cell"
DOCS = [f"document {i} about protein cell therapy and other things" + " filler" * i for i in range(10)]


def _scorer(tiny_ce, fallback_ce, budget_ms, policy="fallback", rescore=20, main=0.02, fallback=0.005):
    scorer = BudgetedScorer(tiny_ce, fallback_ce, budget_ms, policy, rescore)
    scorer.main_cost, scorer.fallback_cost = CostModel.uniform(main), CostModel.uniform(fallback)
    return scorer


def test_the_main_model_scores_the_prefix_that_fits_and_the_fallback_the_rest(tiny_ce, fallback_ce):
    scorer = _scorer(tiny_ce, fallback_ce, 200)
    [result], stats = scorer.score_jobs([([QUERY] * 10, DOCS)], 0.1)
    # P x 0.02 + (10 - P) x 0.005 <= 0.1  ->  P = 3
    assert result.scored_by == ["main"] * 3 + ["fallback"] * 7 and result.fallback_scored == 7
    np.testing.assert_allclose(result.scores[:3], tiny_ce.score([(QUERY, d) for d in DOCS[:3]]), atol=1e-5)
    np.testing.assert_allclose(result.scores[3:], fallback_ce.score([(QUERY, d) for d in DOCS[3:]]), atol=1e-5)
    assert stats.pairs == 10
    # (Every call refines the costs towards the real ones: fresh hand-set costs for each check below.)
    # A request whose budget went on queueing still gets every document scored: by the fallback.
    scorer = _scorer(tiny_ce, fallback_ce, 200)
    [late], _ = scorer.score_jobs([([QUERY] * 10, DOCS)], -0.5)
    assert late.scored_by == ["fallback"] * 10
    # Two requests in one pass share its time in proportion to their size.
    scorer = _scorer(tiny_ce, fallback_ce, 200)
    small, large = scorer.score_jobs([([QUERY] * 2, DOCS[:2]), ([QUERY] * 8, DOCS[2:])], 0.1)[0]
    assert small.scored_by.count("main") == 0 and large.scored_by.count("main") == 2


def test_a_cascade_rescores_the_fallbacks_top(tiny_ce, fallback_ce):
    scorer = _scorer(tiny_ce, fallback_ce, None, "cascade", rescore=4)
    assert math.isinf(scorer.budget_s)
    [result], _ = scorer.score_jobs([([QUERY] * 10, DOCS)], scorer.budget_s)
    by_fallback = np.argsort(-fallback_ce.score([(QUERY, d) for d in DOCS]), kind="stable")
    main_rows = sorted(i for i, who in enumerate(result.scored_by) if who == "main")
    assert main_rows == sorted(by_fallback[:4].tolist())
    np.testing.assert_allclose(result.scores[main_rows], tiny_ce.score([(QUERY, DOCS[i]) for i in main_rows]),
                               atol=1e-5)
    with pytest.raises(InvalidInputError, match="needs a latency budget"):
        BudgetedScorer(tiny_ce, fallback_ce, None, "fallback")
    with pytest.raises(InvalidInputError, match="unknown serving policy"):
        BudgetedScorer(tiny_ce, fallback_ce, 100, "prefix")


def test_measure_fits_both_models_costs(tiny_ce, fallback_ce):
    scorer = BudgetedScorer(tiny_ce, fallback_ce, 100)
    scorer.measure()
    for cost in (scorer.main_cost, scorer.fallback_cost):
        assert cost.measured and cost.per_token > 0 and 1.0 <= cost.chars_per_token <= 20.0


def test_a_served_cascade_says_who_scored_each_document(tiny_model, tiny_ce, fallback_model, fallback_ce):
    srv = Server(tiny_model, "--fallback-model", str(fallback_model), "--policy", "cascade", "--rescore", "2")
    try:
        r = srv.post("/v1/rerank", {"query": QUERY, "documents": DOCS, "return_documents": True})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["scored_by"] for x in results] == ["main"] * 2 + ["fallback"] * 8
        assert r.headers["x-fallback-scored"] == "8"
        fallback_scores = fallback_ce.score([(QUERY, d) for d in DOCS])
        top2 = set(np.argsort(-fallback_scores, kind="stable")[:2].tolist())
        assert {x["index"] for x in results[:2]} == top2
        for tier in (results[:2], results[2:]):  # each tier by its own model's probability
            probs = [x["relevance_score"] for x in tier]
            assert probs == sorted(probs, reverse=True)
        for x in results[2:]:
            assert x["relevance_score"] == pytest.approx(1 / (1 + math.exp(-fallback_scores[x["index"]])), abs=1e-5)
        tei = srv.post("/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True}).json()
        assert [x["scored_by"] for x in tei] == ["main"] * 2 + ["fallback"] * 8
    finally:
        srv.stop()


def test_serve_flags_are_checked_before_starting(tiny_model, fallback_model):
    proc = run_cli(["serve", "--model", str(tiny_model), "--port", "0", "--budget-ms", "100"])
    assert proc.returncode == 3 and "--budget-ms needs --fallback-model" in proc.stderr.decode()
    proc = run_cli(["serve", "--model", str(tiny_model), "--port", "0", "--fallback-model", str(fallback_model)])
    assert proc.returncode == 3 and "needs --budget-ms" in proc.stderr.decode()
    proc = run_cli(["serve", "--model", str(tiny_model), "--port", "0", "--fallback-model", str(fallback_model),
                    "--budget-ms", "100", "--policy", "prefix"])
    assert proc.returncode == 3 and "unknown --policy" in proc.stderr.decode()
