"""Fusing the reranker's score with the first stage's score for the same candidates.

A cross-encoder trained on little data can know less than the first stage it reranks (BM25's exact term
matches, a bi-encoder trained on a billion pairs). Adding a weighted first-stage score back keeps what the
first stage knew. Both scores are z-normalised *within each query's candidate list* (their scales differ
between queries and between models), then ``(1 - w) * z(rerank) + w * z(first stage)``. The weight is
fitted by a grid search on judged queries (``fit_first_stage_weight``), never on the split you report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from crossrank.errors import InvalidInputError

DEFAULT_GRID = tuple(round(x, 2) for x in np.arange(0.0, 0.75, 0.05))


def zscore(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def fuse_with_first_stage(rerank: Sequence[float], first_stage: Sequence[float], weight: float) -> np.ndarray:
    """One query's candidates: ``(1 - weight) * z(rerank) + weight * z(first_stage)``."""
    if not 0.0 <= weight <= 1.0:
        raise InvalidInputError(f"the first-stage weight must be in [0, 1], got {weight}")
    if len(rerank) != len(first_stage):
        raise InvalidInputError(f"{len(rerank)} rerank scores but {len(first_stage)} first-stage scores")
    if weight == 0.0:
        return np.asarray(rerank, dtype=np.float64)
    return (1.0 - weight) * zscore(rerank) + weight * zscore(first_stage)


def fuse_flat(rerank: np.ndarray, first_stage: np.ndarray, sizes: Sequence[int], weight: float) -> np.ndarray:
    """``fuse_with_first_stage`` over consecutive candidate lists of the given sizes (flat arrays)."""
    fused, start = [], 0
    for size in sizes:
        fused.append(fuse_with_first_stage(rerank[start:start + size], first_stage[start:start + size], weight))
        start += size
    return np.concatenate(fused) if fused else np.asarray(rerank, dtype=np.float64)


@dataclass
class FusionFit:
    weight: float
    metric: float
    by_weight: dict[float, float] = field(default_factory=dict)


def fit_first_stage_weight(rerank: dict[str, dict[str, float]], first_stage: dict[str, dict[str, float]],
                           metric: Callable[[dict[str, dict[str, float]]], float],
                           grid: Sequence[float] = DEFAULT_GRID) -> FusionFit:
    """The grid weight that maximises ``metric(run)`` on judged queries; ties go to the smaller weight."""
    by_weight = {}
    for weight in grid:
        fused = {}
        for qid, scores in rerank.items():
            docs = list(scores)
            values = fuse_with_first_stage([scores[d] for d in docs], [first_stage[qid][d] for d in docs], weight)
            fused[qid] = dict(zip(docs, values.tolist()))
        by_weight[float(weight)] = float(metric(fused))
    best = max(by_weight, key=lambda w: (by_weight[w], -w))
    return FusionFit(best, by_weight[best], by_weight)
