"""The service's latency budget: the main model scores what it can in time, a fallback model the rest.

``serve --fallback-model M --budget-ms B`` gives every request B milliseconds of scoring, counted from the
moment it joined the queue (so a request that waited behind others gets less main-model time, not a late
answer). Each engine pass plans with ``pipeline.budget.plan_scoring`` and each model's measured cost
(``CostModel``: per call and per input token, refined after every pass):

- ``fallback`` policy: the main model scores the longest prefix of each request's documents (in the order
  they were sent, usually the first stage's) that still leaves time for the fallback to score the rest;
- ``cascade``: the fallback scores every document, the main model rescores each request's top ``rescore``
  by the fallback's score, as many as the time left allows.

Unlike search, a rerank API must score every document it returns, so the fallback always covers the rest
even when that overruns the budget. Several requests in one pass share its time in proportion to their size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from crossrank.engine.scorer import ScoreStats
from crossrank.errors import InvalidInputError
from crossrank.pipeline.budget import CostModel, fit_prefix, plan_scoring

SERVICE_POLICIES = ("fallback", "cascade")
PROBE_PAIRS = (4, 16)


@dataclass
class JobScores:
    """One request's raw scores in input order, and which model gave each (None: the main model for all)."""

    scores: np.ndarray
    scored_by: list[str] | None = None

    @property
    def fallback_scored(self) -> int:
        return 0 if self.scored_by is None else sum(role == "fallback" for role in self.scored_by)


class BudgetedScorer:
    """Scores the requests of one pass with two models under a per-request budget (see the module)."""

    def __init__(self, main, fallback, budget_ms: float | None, policy: str = "fallback", rescore: int = 20):
        """``budget_ms`` None: no budget (a cascade then always rescores the fallback's top ``rescore``)."""
        if policy not in SERVICE_POLICIES:
            raise InvalidInputError(f"unknown serving policy {policy!r}: use one of {', '.join(SERVICE_POLICIES)}")
        if budget_ms is None and policy == "fallback":
            raise InvalidInputError("the fallback policy needs a latency budget (--budget-ms): without one the "
                                    "main model scores everything")
        if budget_ms is not None and budget_ms <= 0:
            raise InvalidInputError(f"the latency budget must be positive, got {budget_ms} ms")
        if rescore < 1:
            raise InvalidInputError(f"the cascade's rescore depth must be positive, got {rescore}")
        self.main, self.fallback = main, fallback
        self.budget_s = math.inf if budget_ms is None else budget_ms / 1000.0
        self.policy, self.rescore = policy, rescore
        self.main_cost, self.fallback_cost = CostModel(), CostModel()

    def measure(self) -> None:
        """Fit both models' costs (after their warm-up), before the service takes requests."""
        text = ("a passage of ordinary length about a topic that a user asked about, with some detail on how "
                "and why it matters ") * 3
        for model, cost in ((self.main, self.main_cost), (self.fallback, self.fallback_cost)):
            timed = []
            for n in PROBE_PAIRS:
                begin = time.perf_counter()
                _, stats = model.score_with_stats(["what does the passage say"] * n, [text] * n)
                timed.append((n, max(stats.real_tokens, 1), time.perf_counter() - begin))
            cost.fit(timed[0], timed[-1])
            cost.chars_per_token = max(1.0, n * (len(text) + 25) / max(stats.real_tokens, 1))

    def _tokens(self, model, cost: CostModel, queries: list[str], documents: list[str]) -> list[float]:
        cap = model.tokenizer.max_length
        extra = model.tokenizer.special_tokens
        return [min((len(q) + len(d)) / cost.chars_per_token + extra, cap) for q, d in zip(queries, documents)]

    def score_jobs(self, jobs: list[tuple[list[str], list[str]]], seconds_left: float, progress=None
                   ) -> tuple[list[JobScores], ScoreStats]:
        """``jobs``: (queries, documents) per request; ``seconds_left``: the tightest request's remaining budget."""
        main_tokens = [self._tokens(self.main, self.main_cost, q, d) for q, d in jobs]
        fallback_tokens = [self._tokens(self.fallback, self.fallback_cost, q, d) for q, d in jobs]
        main_costs = [self.main_cost.candidate_seconds(t) for t in main_tokens]
        fallback_costs = [self.fallback_cost.candidate_seconds(t) for t in fallback_tokens]
        # Both calls' overheads come off the top; the rest is shared in proportion to each request's size.
        spare = seconds_left - self.main_cost.planned_overhead - self.fallback_cost.planned_overhead
        weights = [sum(c) for c in main_costs]
        total = sum(weights) or 1.0
        shares = [math.inf if math.isinf(spare) else max(0.0, spare) * w / total for w in weights]
        roles = [["fallback"] * len(d) for _, d in jobs]
        scores = [np.zeros(len(d), dtype=np.float32) for _, d in jobs]
        stats = ScoreStats()
        if self.policy == "fallback":
            prefixes = []
            for (_, docs), share, mc, fc in zip(jobs, shares, main_costs, fallback_costs):
                plan = plan_scoring(len(docs), "fallback", share, mc, fc)
                prefixes.append(plan.main if plan.fallback + plan.main == len(docs) else 0)
            main_parts = [list(range(p)) for p in prefixes]
            fallback_parts = [list(range(p, len(d))) for p, (_, d) in zip(prefixes, jobs)]
            self._run(self.fallback, self.fallback_cost, jobs, fallback_parts, fallback_tokens, scores, roles,
                      "fallback", stats, progress)
            self._run(self.main, self.main_cost, jobs, main_parts, main_tokens, scores, roles, "main", stats, progress)
        else:
            started = time.perf_counter()
            everything = [list(range(len(d))) for _, d in jobs]
            self._run(self.fallback, self.fallback_cost, jobs, everything, fallback_tokens, scores, roles,
                      "fallback", stats, progress)
            left = max(0.0, seconds_left - (time.perf_counter() - started) - self.main_cost.planned_overhead)
            main_parts = []
            for job_scores, share_weight, mc in zip(scores, weights, main_costs):
                best = [int(i) for i in np.argsort(-job_scores, kind="stable")[:self.rescore]]
                fits = fit_prefix([mc[i] for i in best], left if math.isinf(left) else left * share_weight / total)
                main_parts.append(best[:fits])
            self._run(self.main, self.main_cost, jobs, main_parts, main_tokens, scores, roles, "main", stats, progress)
        return [JobScores(s, r) for s, r in zip(scores, roles)], stats

    @staticmethod
    def _run(model, cost: CostModel, jobs, parts: list[list[int]], tokens, scores, roles, role: str,
             stats: ScoreStats, progress) -> None:
        """One scoring call of ``model`` over the chosen documents of every request."""
        chosen = [(j, i) for j, part in enumerate(parts) for i in part]
        if not chosen:
            return
        begin = time.perf_counter()
        raw, call = model.score_with_stats([jobs[j][0][i] for j, i in chosen], [jobs[j][1][i] for j, i in chosen],
                                           progress=progress)
        cost.update(len(chosen), round(sum(tokens[j][i] for j, i in chosen)), time.perf_counter() - begin)
        if call.real_tokens:  # the real tokenizer's count corrects the characters-per-token estimate
            chars = sum(len(jobs[j][0][i]) + len(jobs[j][1][i]) for j, i in chosen)
            cost.chars_per_token += cost.smoothing * (max(1.0, chars / call.real_tokens) - cost.chars_per_token)
        for (j, i), value in zip(chosen, raw):
            scores[j][i] = value
            roles[j][i] = role
        for name in ("pairs", "truncated_pairs", "real_tokens", "padded_tokens", "batches"):
            setattr(stats, name, getattr(stats, name) + getattr(call, name))
        for name in ("tokenize_seconds", "pad_seconds", "forward_seconds", "partner_seconds"):
            setattr(stats, name, getattr(stats, name) + getattr(call, name))
