"""Who scores which candidates under a latency budget: the main model, a cheaper fallback, or nobody.

Three policies (``BudgetPolicy``), all planned from each model's measured cost (``CostModel``: a fixed
cost per scoring call plus a cost per input token, so a long document that needs several windows costs
what it really costs):

- ``prefix``: the main model scores the best-first-stage prefix that fits; the rest keep first-stage order.
- ``fallback``: the main model scores as long a prefix as still lets the fallback score every other
  candidate within the budget; when even the fallback cannot cover them all, the fallback scores the
  prefix that fits and the main model nothing.
- ``cascade``: the fallback scores the candidates (all of them when they fit), and the main model rescores
  the fallback's top ``rescore`` (as many of them as the rest of the budget allows).

Final order, in tiers: hits the main model scored (by its score), then hits the fallback scored (by its
score), then unscored hits in first-stage order. Scores of two models are never compared with each other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from crossrank.errors import InvalidInputError

POLICIES = ("prefix", "fallback", "cascade")
_SLACK = 1e-9  # float tolerance when summing costs against a budget


class CostModel:
    """Seconds one model takes to score candidates: ``overhead_seconds`` per scoring call, plus
    ``per_candidate`` and ``per_token`` (input tokens, every window of a long document counted) for each.

    Measured once (``fit``: two probe calls of different sizes give the overhead and the per-token cost),
    then refined by every scoring call (``update``: an exponential moving average of the per-token cost).
    ``chars_per_token`` turns text lengths into token estimates without tokenizing every candidate first.

    An average cost overruns the budget about half the time. So every call also records how long it took
    against what the model predicted, and plans use ``margin``: the 90th percentile of that ratio over the
    last ``MARGIN_WINDOW`` calls (1 until ``MARGIN_MIN_CALLS`` are seen; between 1 and 2), which makes the
    budget hold at the tail rather than on average.
    """

    MARGIN_WINDOW, MARGIN_MIN_CALLS, MARGIN_QUANTILE = 64, 8, 90

    def __init__(self, per_token: float | None = None, overhead_seconds: float = 0.0, per_candidate: float = 0.0,
                 chars_per_token: float = 4.0, smoothing: float = 0.3):
        self.per_token, self.overhead_seconds, self.per_candidate = per_token, overhead_seconds, per_candidate
        self.chars_per_token, self.smoothing = chars_per_token, smoothing
        self.ratios: deque[float] = deque(maxlen=self.MARGIN_WINDOW)  # actual / predicted seconds per call

    @classmethod
    def uniform(cls, seconds_per_candidate: float) -> "CostModel":
        """The same cost for every candidate, whatever its length (tests, or a model with a fixed input)."""
        return cls(per_token=0.0, per_candidate=seconds_per_candidate)

    @property
    def measured(self) -> bool:
        return self.per_token is not None

    def fit(self, small: tuple[int, int, float], large: tuple[int, int, float]) -> None:
        """Two probe calls, each (candidates, tokens, seconds): the per-token cost from their difference,
        the rest of the small call as the per-call overhead."""
        (_, t1, s1), (_, t2, s2) = small, large
        slope = (s2 - s1) / (t2 - t1) if t2 > t1 else 0.0
        if slope <= 0 or s1 - slope * t1 < 0:  # noisy probes: no overhead, the large call's average
            self.per_token, self.overhead_seconds = s2 / max(t2, 1), 0.0
        else:
            self.per_token, self.overhead_seconds = slope, s1 - slope * t1
        self.per_candidate = 0.0

    @property
    def margin(self) -> float:
        """The factor plans multiply predicted costs by (see the class)."""
        if len(self.ratios) < self.MARGIN_MIN_CALLS:
            return 1.0
        return float(min(2.0, max(1.0, np.percentile(self.ratios, self.MARGIN_QUANTILE))))

    def update(self, candidates: int, tokens: int, seconds: float) -> None:
        if candidates <= 0 or tokens <= 0:
            return
        if self.per_token is not None:
            predicted = self.overhead_seconds + self.per_candidate * candidates + self.per_token * tokens
            if predicted > 0:
                self.ratios.append(seconds / predicted)
        if self.per_token is None:
            self.per_token = max(0.0, seconds - self.overhead_seconds) / tokens
            return
        if self.per_token == 0.0:  # a uniform model: refine the per-candidate cost
            observed = max(0.0, seconds - self.overhead_seconds) / candidates
            self.per_candidate += self.smoothing * (observed - self.per_candidate)
            return
        observed = max(0.0, seconds - self.overhead_seconds - self.per_candidate * candidates) / tokens
        self.per_token += self.smoothing * (observed - self.per_token)

    def candidate_seconds(self, tokens: Sequence[float]) -> list[float] | None:
        """Each candidate's planned cost (without the call's overhead; ``margin`` included); None before
        anything was measured."""
        if self.per_token is None:
            return None
        margin = self.margin
        return [margin * (self.per_candidate + self.per_token * t) for t in tokens]

    @property
    def planned_overhead(self) -> float:
        """The per-call overhead a plan counts (``margin`` included)."""
        return self.margin * self.overhead_seconds


@dataclass(frozen=True)
class ScoringPlan:
    """How many candidates each model scores. ``fallback``: the first-stage prefix the fallback scores;
    ``main``: the prefix (``prefix``/``fallback`` policies) or the fallback's top (``cascade``) the main
    model scores."""

    policy: str
    main: int
    fallback: int


Costs = float | Sequence[float] | None


def _per_candidate(cost: Costs, k: int) -> list[float] | None:
    if cost is None:
        return None
    if isinstance(cost, (int, float)):
        return [float(cost)] * k
    if len(cost) != k:
        raise InvalidInputError(f"{len(cost)} candidate costs for {k} candidates")
    return [float(c) for c in cost]


def fit_prefix(costs: Sequence[float] | None, budget_seconds: float, overhead: float = 0.0) -> int:
    """The longest prefix of ``costs`` that one scoring call (paying ``overhead`` once) finishes in time."""
    if costs is None:
        return 0
    spent, n = overhead, 0
    for cost in costs:
        if cost <= 0 and overhead <= 0:  # nothing measured costs nothing: promise nothing
            return n
        if spent + cost > budget_seconds + _SLACK:
            break
        spent += cost
        n += 1
    return n


def plan_scoring(candidates: int, policy: str = "prefix", budget_seconds: float | None = None,
                 main_cost: Costs = None, fallback_cost: Costs = None, rescore: int = 20,
                 main_overhead: float = 0.0, fallback_overhead: float = 0.0) -> ScoringPlan:
    """The plan for ``candidates`` hits, in first-stage order. Costs are seconds per candidate: one number
    for all, or one per candidate; each model's call also pays its overhead once. ``budget_seconds`` None
    means no budget (everything is scored: by the main model, or in a cascade by the fallback with the
    main model on its top ``rescore``)."""
    if policy not in POLICIES:
        raise InvalidInputError(f"unknown budget policy {policy!r}: use one of {', '.join(POLICIES)}")
    if rescore < 1:
        raise InvalidInputError(f"the cascade's rescore depth must be positive, got {rescore}")
    k = max(0, candidates)
    main, fallback = _per_candidate(main_cost, k), _per_candidate(fallback_cost, k)
    if policy == "cascade":
        top = min(rescore, k)
        if budget_seconds is None:
            return ScoringPlan(policy, top, k)
        covered = fit_prefix(fallback, budget_seconds, fallback_overhead)
        if not covered or main is None:
            return ScoringPlan(policy, 0, covered)
        left = budget_seconds - fallback_overhead - sum(fallback[:covered])
        average = sum(main[:covered]) / covered  # which candidates the main model reads is known only later
        return ScoringPlan(policy, min(top, fit_prefix([average] * covered, left, main_overhead)), covered)
    if budget_seconds is None:
        return ScoringPlan(policy, k, 0)
    prefix = fit_prefix(main, budget_seconds, main_overhead)
    if policy == "prefix" or prefix == k or fallback is None or main is None:
        return ScoringPlan(policy, prefix, 0)
    if sum(main) <= sum(fallback):  # a fallback no cheaper than the main model never helps
        return ScoringPlan(policy, prefix, 0)
    # fallback: the longest main prefix P whose cost, plus the fallback's on the other k - P, fits.
    tail = [0.0] * (k + 1)
    for i in range(k - 1, -1, -1):
        tail[i] = tail[i + 1] + fallback[i]
    head = 0.0
    best = None
    for p in range(prefix + 1):
        if p:
            head += main[p - 1]
        spent = (main_overhead + head if p else 0.0) + (fallback_overhead + tail[p] if p < k else 0.0)
        if spent <= budget_seconds + _SLACK:
            best = p
    if best is None:  # even the fallback alone cannot cover them all: it scores the prefix that fits
        return ScoringPlan(policy, 0, fit_prefix(fallback, budget_seconds, fallback_overhead))
    return ScoringPlan(policy, best, k - best)
