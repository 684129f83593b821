"""Latency budgets with a fallback model: the plan (who scores what), the tiers of the final order, the
cascade, and the CLI. Real tiny models and a real index; costs are set by hand where the plan is checked."""

from __future__ import annotations

import json
import random

import pytest

from crossrank.errors import InvalidInputError
from crossrank.pipeline.budget import CostModel, fit_prefix, plan_scoring
from crossrank.pipeline.searcher import Searcher
from crossrank.retrieval.bm25 import BM25Settings
from crossrank.retrieval.index import CollectionIndex, IndexSettings
from crossrank.retrieval.store import StoredDocument

from test_cli import run_cli
from texts import word_soup


def test_prefix_plan_scores_what_fits_and_no_budget_scores_everything():
    assert plan_scoring(100, "prefix", 0.35, main_cost=0.1) == plan_scoring(100, "prefix", 0.35, 0.1, 0.01)
    assert (plan_scoring(100, "prefix", 0.35, 0.1).main, plan_scoring(100, "prefix", 0.35, 0.1).fallback) == (3, 0)
    assert plan_scoring(100, "prefix", None, 0.1).main == 100
    assert plan_scoring(100, "fallback", None, 0.1, 0.01).main == 100  # no budget: the main model does it all
    assert plan_scoring(5, "prefix", 10.0, 0.1).main == 5


def test_fallback_plan_covers_every_candidate_with_the_longest_main_prefix():
    plan = plan_scoring(100, "fallback", 1.0, main_cost=0.02, fallback_cost=0.005)
    # P x 0.02 + (100 - P) x 0.005 <= 1.0  ->  P <= 33.3
    assert (plan.main, plan.fallback) == (33, 67)
    assert plan.main * 0.02 + plan.fallback * 0.005 <= 1.0
    # The fallback cannot cover them all: it scores the prefix that fits, the main model nothing.
    assert (plan_scoring(100, "fallback", 0.2, 0.02, 0.005).main,
            plan_scoring(100, "fallback", 0.2, 0.02, 0.005).fallback) == (0, 40)
    # Everything fits the main model: no fallback.
    assert (plan_scoring(10, "fallback", 1.0, 0.02, 0.005).main, plan_scoring(10, "fallback", 1.0, 0.02, 0.005)
            .fallback) == (10, 0)
    # A fallback as slow as the main model never helps: the plain prefix.
    assert (plan_scoring(100, "fallback", 1.0, 0.02, 0.02).main, plan_scoring(100, "fallback", 1.0, 0.02, 0.02)
            .fallback) == (50, 0)


def test_cascade_plan_covers_all_with_the_fallback_then_rescores_what_is_left():
    plan = plan_scoring(100, "cascade", 1.0, main_cost=0.02, fallback_cost=0.005, rescore=30)
    assert (plan.fallback, plan.main) == (100, 25)  # 0.5 s for the fallback, 0.5 s left: 25 of the top 30
    assert (plan_scoring(100, "cascade", 5.0, 0.02, 0.005, 30).main) == 30
    assert (plan_scoring(100, "cascade", None, 0.02, 0.005, 30).fallback,
            plan_scoring(100, "cascade", None, 0.02, 0.005, 30).main) == (100, 30)
    short = plan_scoring(100, "cascade", 0.2, 0.02, 0.005, 30)
    assert (short.fallback, short.main) == (40, 0)
    with pytest.raises(InvalidInputError, match="unknown budget policy"):
        plan_scoring(10, "greedy", 1.0, 0.1)
    with pytest.raises(InvalidInputError, match="rescore"):
        plan_scoring(10, "cascade", 1.0, 0.1, 0.01, rescore=0)


def test_plans_use_each_candidates_own_cost_and_each_calls_overhead():
    # Long documents (several windows) cost more: fewer of them fit than the average cost would promise.
    costs = [0.01, 0.01, 0.05, 0.01, 0.01]
    assert fit_prefix(costs, 0.05) == 2 and fit_prefix(costs, 0.08) == 4
    assert fit_prefix(costs, 0.08, overhead=0.02) == 2 and fit_prefix(costs, 0.1, overhead=0.02) == 4  # paid once
    assert plan_scoring(5, "prefix", 0.08, costs).main == 4
    assert plan_scoring(5, "prefix", 0.08, costs, main_overhead=0.02).main == 2
    # fallback: P main + the fallback on the rest, each call's overhead counted once.
    plan = plan_scoring(5, "fallback", 0.06, costs, [0.002] * 5, main_overhead=0.01, fallback_overhead=0.01)
    # P = 2: 0.01 + 0.02 (main) + 0.01 + 0.006 (fallback on 3) = 0.046; P = 3 needs 0.01 + 0.07 > 0.06.
    assert (plan.main, plan.fallback) == (2, 3)
    with pytest.raises(InvalidInputError, match="2 candidate costs for 5"):
        plan_scoring(5, "prefix", 1.0, [0.1, 0.1])


def test_cost_model_fits_overhead_and_per_token_cost_then_refines_it():
    cost = CostModel()
    assert not cost.measured and cost.candidate_seconds([100]) is None  # nothing measured: nothing promised
    assert plan_scoring(10, "prefix", 1.0, cost.candidate_seconds([50] * 10)).main == 0
    cost.fit((4, 400, 0.014), (16, 1600, 0.026))  # 10 us per token, 10 ms per call
    assert cost.per_token == pytest.approx(1e-5) and cost.overhead_seconds == pytest.approx(0.01)
    assert cost.candidate_seconds([100, 300]) == pytest.approx([0.001, 0.003])
    cost.update(10, 1000, 0.03)  # observed 20 us per token after the overhead: the estimate moves 30% there
    assert cost.per_token == pytest.approx(1.3e-5)
    noisy = CostModel()
    noisy.fit((4, 400, 0.03), (16, 1600, 0.02))  # the larger call was faster: no slope, its plain average
    assert noisy.per_token == pytest.approx(0.02 / 1600) and noisy.overhead_seconds == 0.0
    # Calls that take longer than predicted widen the plans' margin (the 90th percentile of actual/predicted).
    tail = CostModel(per_token=1e-5)
    for _ in range(CostModel.MARGIN_MIN_CALLS - 1):
        tail.update(1, 1000, 0.015)
    assert tail.margin == 1.0  # too few calls seen
    tail.update(1, 1000, 0.015)
    assert 1.0 < tail.margin <= 1.5 and tail.candidate_seconds([1000])[0] == pytest.approx(tail.margin * tail.per_token * 1000)
    assert tail.planned_overhead == tail.margin * tail.overhead_seconds
    uniform = CostModel.uniform(0.1)
    assert uniform.candidate_seconds([5, 500]) == [0.1, 0.1]
    uniform.update(10, 999, 2.0)
    assert uniform.per_candidate == pytest.approx(0.13)


def test_searcher_counts_every_window_of_a_long_candidate(index, tiny_ce):
    from crossrank.pipeline.searcher import SearchHit

    searcher = Searcher(index, "bm25", tiny_ce, overlap=8)
    cost = CostModel(per_token=1e-4, chars_per_token=4.0)
    window, overlap = searcher._window(tiny_ce.tokenizer)
    short = SearchHit("s", "", "x" * 40, 1, 1.0)  # 10 tokens: one window
    long = SearchHit("l", "", "x" * (4 * 3 * window), 2, 0.5)  # 3 windows of text, read in 4 overlapping ones
    tokens = searcher._tokens(tiny_ce, cost, "abcd", [short, long])
    fixed = 1 + tiny_ce.tokenizer.special_tokens
    assert tokens[0] == pytest.approx(fixed + 10)
    windows = 1 + -(-(3 * window - window) // (window - overlap))
    assert tokens[1] == pytest.approx(windows * fixed + 3 * window + (windows - 1) * overlap)
    assert searcher._costs(tiny_ce, cost, "abcd", [short, long])[1] > 10 * searcher._costs(tiny_ce, cost, "abcd",
                                                                                            [short, long])[0]


def test_measured_cost_is_fitted_once_and_shared(index, tiny_ce):
    searcher = Searcher(index, "bm25", tiny_ce)
    result = searcher.search(QUERY, k=20, top_n=5, budget_ms=10_000)
    assert searcher.throughput.measured and searcher.throughput.per_token > 0
    assert 1.0 <= searcher.throughput.chars_per_token <= 20.0
    assert "cost_probe" in result.timings_ms or result.reranked == 20
    assert Searcher(index, "bm25", tiny_ce).throughput is searcher.throughput  # one estimate per model


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    rng = random.Random(11)
    docs = [StoredDocument(f"d{i}", f"title {i}", word_soup(rng, rng.randint(20, 60))) for i in range(40)]
    path = tmp_path_factory.mktemp("budget") / "idx"
    CollectionIndex.create(path, IndexSettings(BM25Settings())).replace_all(docs)
    return path


QUERY = "protein therapy cell"


def test_budget_with_fallback_ranks_in_tiers_and_says_who_scored(index, tiny_ce, fallback_ce):
    searcher = Searcher(index, "bm25", tiny_ce, fallback=fallback_ce, chunking=False)
    assert searcher.policy == "fallback"
    searcher.throughput = CostModel.uniform(0.02)
    searcher.fallback_throughput = CostModel.uniform(0.005)
    result = searcher.search(QUERY, k=20, top_n=20, budget_ms=200)
    # P x 0.02 + (20 - P) x 0.005 <= 0.2  ->  P = 6; the fallback scores the other 14.
    assert (result.plan.main, result.plan.fallback) == (6, 14)
    assert (result.reranked, result.fallback_scored, result.candidates) == (6, 14, 20)
    roles = [h.scored_by for h in result.hits]
    assert roles == ["main"] * 6 + ["fallback"] * 14
    main_hits, fallback_hits = result.hits[:6], result.hits[6:]
    assert sorted(h.first_stage_rank for h in main_hits) == list(range(1, 7))  # the main model's prefix
    for tier in (main_hits, fallback_hits):
        scores = [h.rerank_score for h in tier]
        assert scores == sorted(scores, reverse=True)
    # Each score is that model's own score of the pair.
    texts = {h.id: f"{h.title} {h.text}" for h in result.hits}
    for hit in result.hits:
        model = tiny_ce if hit.scored_by == "main" else fallback_ce
        assert hit.rerank_score == pytest.approx(float(model.score([(QUERY, texts[hit.id])])[0]), abs=1e-4)
    assert all(h.fallback_score == h.rerank_score for h in fallback_hits)
    assert all(h.fallback_score is None for h in main_hits)


def test_cascade_rescores_the_fallbacks_top(index, tiny_ce, fallback_ce):
    searcher = Searcher(index, "bm25", tiny_ce, fallback=fallback_ce, policy="cascade", rescore=5)
    result = searcher.search(QUERY, k=20, top_n=20)  # no budget: the fallback scores all, the main its top 5
    assert (result.reranked, result.fallback_scored) == (5, 20)
    assert all(h.fallback_score is not None for h in result.hits)
    by_fallback = sorted(result.hits, key=lambda h: (-h.fallback_score, h.first_stage_rank))
    assert {h.id for h in result.hits[:5]} == {h.id for h in by_fallback[:5]}
    assert [h.scored_by for h in result.hits] == ["main"] * 5 + ["fallback"] * 15
    assert [h.rerank_score for h in result.hits[5:]] == [h.fallback_score for h in by_fallback[5:]]
    # Batch mode does the same cascade.
    batch = searcher.search_many({"q": QUERY}, k=20, top_n=20)["q"]
    assert [h.id for h in batch] == [h.id for h in result.hits]
    # Under a budget the cascade plans with each model's cost.
    searcher.throughput = CostModel.uniform(0.02)
    searcher.fallback_throughput = CostModel.uniform(0.005)
    tight = searcher.search(QUERY, k=20, top_n=20, budget_ms=160)
    assert (tight.plan.fallback, tight.plan.main) == (20, 3)  # 0.1 s for all 20, 0.06 s left: 3 rescored


def test_policies_need_both_models(index, tiny_ce, fallback_ce):
    with pytest.raises(InvalidInputError, match="needs a main reranker and a fallback"):
        Searcher(index, "bm25", tiny_ce, policy="cascade")
    with pytest.raises(InvalidInputError, match="unknown budget policy"):
        Searcher(index, "bm25", tiny_ce, fallback=fallback_ce, policy="sometimes")


def test_cli_search_with_a_fallback_model(tmp_path, index, tiny_model, fallback_model):
    proc = run_cli(["search", str(index), "--query", QUERY, "--k", "15", "--top-n", "15",
                    "--rerank", str(tiny_model), "--fallback-model", str(fallback_model),
                    "--policy", "cascade", "--rescore", "4", "--json"])
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert (result["reranked"], result["fallback_scored"]) == (4, 15)
    assert [h["scored_by"] for h in result["hits"]] == ["main"] * 4 + ["fallback"] * 11
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q1", "text": QUERY}) + "\n")
    proc = run_cli(["search", str(index), "--queries", str(queries), "--output", str(tmp_path / "run.tsv"),
                    "--k", "15", "--top-n", "15", "--rerank", str(tiny_model), "--fallback-model",
                    str(fallback_model), "--policy", "cascade", "--rescore", "4"])
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [line.split() for line in (tmp_path / "run.tsv").read_text().splitlines()]
    assert [line[2] for line in lines] == [h["id"] for h in result["hits"]]  # the run keeps the tiered order
    proc = run_cli(["search", str(index), "--query", QUERY, "--fallback-model", str(fallback_model)])
    assert proc.returncode == 3 and "--fallback-model needs a main model" in proc.stderr.decode()
