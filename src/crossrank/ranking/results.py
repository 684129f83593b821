"""Rerank results and the ordering rule: best score first, ties broken by input position."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class RerankResult:
    """One ranked document: where it was in the input, its raw score and its probability."""

    index: int
    score: float
    probability: float
    id: str | None = None
    text: str | None = None
    evidence: tuple[int, int] | None = None  # with chunking: [start, end) characters of the best window
    chunks: int | None = None  # with chunking: how many windows of the document were read


def sigmoid(score: float) -> float:
    """Logistic function in float64, without overflow for very negative or positive scores."""
    score = float(score)
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    z = math.exp(score)
    return z / (1.0 + z)


def rank_scores(scores: np.ndarray, texts: list[str] | None = None, ids: list[str | None] | None = None,
                top_k: int | None = None, probability: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> list[RerankResult]:
    """Sort by score descending; equal scores keep input order (a stable sort), then cut to top_k.

    ``probability`` maps raw scores to probabilities (a fitted calibration); the default is the sigmoid.
    """
    scores = np.asarray(scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    probs = probability(scores[order]) if probability is not None else [sigmoid(scores[i]) for i in order]
    return [
        RerankResult(
            index=int(i),
            score=float(scores[i]),
            probability=float(p),
            id=ids[i] if ids is not None else None,
            text=texts[i] if texts is not None else None,
        )
        for i, p in zip(order, probs)
    ]
