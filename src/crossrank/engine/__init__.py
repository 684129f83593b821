"""Engine layer: token-budget batching and the backends that run the forward pass."""

from crossrank.engine.batching import plan_batches
from crossrank.engine.scorer import ScoreStats, ScoringEngine

__all__ = ["plan_batches", "ScoreStats", "ScoringEngine"]
