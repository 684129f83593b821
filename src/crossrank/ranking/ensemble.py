"""Ensembles: several cross-encoders scored as one, usable wherever a single model is (``score(pairs)``).

Members' raw logits live on different scales, so they are combined either as z-scores (each member's
scores standardised with a mean and deviation fitted once on reference pairs, so that a pair's score
never depends on what else is in the call) or as calibrated probabilities (each member's
``probability``: its calibration.json, else the sigmoid). Weights default to equal.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from crossrank.errors import InvalidInputError

COMBINATIONS = ("zscore", "probability")


class EnsembleScorer:
    def __init__(self, members: Sequence, weights: Sequence[float] | None = None, combine: str = "zscore"):
        if not members:
            raise InvalidInputError("an ensemble needs at least one member")
        if combine not in COMBINATIONS:
            raise InvalidInputError(f"unknown combination {combine!r}: use zscore or probability")
        weights = list(weights) if weights is not None else [1.0] * len(members)
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) == 0:
            raise InvalidInputError("one non-negative weight per member, not all zero")
        self.members = list(members)
        self.weights = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.combine = combine
        self.stats: list[tuple[float, float]] | None = None
        self.last_stats = None

    @property
    def tokenizer(self):
        """The first member's tokenizer (for splitting long documents into windows)."""
        return self.members[0].tokenizer

    def fit_normalization(self, pairs: Sequence[tuple[str, str]]) -> "EnsembleScorer":
        """Mean and deviation of each member's scores on reference pairs (e.g. a sample of real candidates)."""
        self.stats = []
        for member in self.members:
            scores = np.asarray(member.score(pairs), dtype=np.float64)
            self.stats.append((float(scores.mean()), float(scores.std()) or 1.0))
        return self

    def score(self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if self.combine == "zscore" and self.stats is None:
            raise InvalidInputError("call fit_normalization(reference_pairs) before scoring with zscore")
        total = np.zeros(len(pairs), dtype=np.float64)
        for i, (member, weight) in enumerate(zip(self.members, self.weights)):
            raw = np.asarray(member.score(pairs), dtype=np.float64)
            if self.combine == "zscore":
                mean, std = self.stats[i]
                total += weight * (raw - mean) / std
            else:
                total += weight * np.asarray(member.probability(raw), dtype=np.float64)
        if progress is not None:
            progress(len(pairs))
        return total.astype(np.float32)

    def probability(self, scores) -> np.ndarray:
        """For ``probability`` combinations the score already is one; z-scores go through a sigmoid."""
        s = np.asarray(scores, dtype=np.float64)
        return s if self.combine == "probability" else 1.0 / (1.0 + np.exp(-s))
