"""Who scores which candidates under a latency budget: the main model, a cheaper fallback, or nobody.

Three policies (``BudgetPolicy``), all planned from measured seconds per candidate of each model:

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

import math
from dataclasses import dataclass

from crossrank.errors import InvalidInputError

POLICIES = ("prefix", "fallback", "cascade")


class ThroughputEstimate:
    """Seconds per scored candidate, an exponential moving average over recent scoring calls."""

    def __init__(self, seconds_per_pair: float | None = None, smoothing: float = 0.3):
        self.seconds_per_pair = seconds_per_pair
        self.smoothing = smoothing

    def update(self, pairs: int, seconds: float) -> None:
        if pairs <= 0:
            return
        observed = seconds / pairs
        if self.seconds_per_pair is None:
            self.seconds_per_pair = observed
        else:
            self.seconds_per_pair += self.smoothing * (observed - self.seconds_per_pair)

    def pairs_within(self, budget_seconds: float) -> int:
        return _fit(budget_seconds, self.seconds_per_pair)


@dataclass(frozen=True)
class ScoringPlan:
    """How many candidates each model scores. ``fallback``: the first-stage prefix the fallback scores;
    ``main``: the prefix (``prefix``/``fallback`` policies) or the fallback's top (``cascade``) the main
    model scores."""

    policy: str
    main: int
    fallback: int


def _fit(budget_seconds: float, cost: float | None) -> int:
    if cost is None or cost <= 0:
        return 0
    return max(0, int(math.floor(budget_seconds / cost + 1e-9)))


def plan_scoring(candidates: int, policy: str = "prefix", budget_seconds: float | None = None,
                 main_cost: float | None = None, fallback_cost: float | None = None,
                 rescore: int = 20) -> ScoringPlan:
    """The plan for ``candidates`` hits; ``budget_seconds`` None means no budget (everything is scored:
    by the main model, or in a cascade by the fallback with the main model on its top ``rescore``)."""
    if policy not in POLICIES:
        raise InvalidInputError(f"unknown budget policy {policy!r}: use one of {', '.join(POLICIES)}")
    if rescore < 1:
        raise InvalidInputError(f"the cascade's rescore depth must be positive, got {rescore}")
    k = max(0, candidates)
    if policy == "cascade":
        top = min(rescore, k)
        if budget_seconds is None:
            return ScoringPlan(policy, top, k)
        covered = min(k, _fit(budget_seconds, fallback_cost))
        left = budget_seconds - covered * (fallback_cost or 0.0)
        return ScoringPlan(policy, min(top, covered, _fit(left, main_cost)), covered)
    if budget_seconds is None:
        return ScoringPlan(policy, k, 0)
    main = min(k, _fit(budget_seconds, main_cost))
    if policy == "prefix" or main == k:
        return ScoringPlan(policy, main, 0)
    # fallback: the longest main prefix P with P x main_cost + (k - P) x fallback_cost <= budget.
    main_cost, fallback_cost = main_cost or 0.0, fallback_cost or 0.0
    if main_cost <= fallback_cost:  # a fallback no cheaper than the main model: it never helps
        return ScoringPlan(policy, main, 0)
    if k * fallback_cost > budget_seconds:
        return ScoringPlan(policy, 0, min(k, _fit(budget_seconds, fallback_cost)))
    prefix = min(k, _fit(budget_seconds - k * fallback_cost, main_cost - fallback_cost))
    return ScoringPlan(policy, prefix, k - prefix)
