"""Fit a calibration on judged candidates and measure it on held-out queries (ECE and Brier, before/after)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossrank.data.formats import Document, Qrels, Run
from crossrank.pipeline.run_reranking import candidate_lists
from crossrank.ranking.calibration import (Calibration, brier_score, expected_calibration_error,
                                           fit_calibration)
from crossrank.ranking.results import sigmoid


@dataclass
class CalibrationStudy:
    calibration: Calibration
    fit_pairs: int
    holdout_pairs: int
    ece_before: float  # sigmoid of the raw score, on held-out queries
    ece_after: float
    brier_before: float
    brier_after: float


def study_calibration(scorer, queries: dict[str, str], corpus: dict[str, Document], qrels: Qrels, run: Run,
                      depth: int, method: str, relevance_level: int = 1, holdout: float = 0.5,
                      seed: int = 0) -> CalibrationStudy:
    """Score each judged query's top ``depth`` candidates; fit on some queries, measure on the rest.

    Unjudged candidates count as not relevant, the usual assumption for pooled judgments.
    """
    judged = {q: docs for q, docs in run.items() if q in qrels and q in queries}
    lists = candidate_lists(judged, queries, corpus, depth)
    qids = sorted(lists)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(qids, size=max(1, int(round(len(qids) * holdout))), replace=False).tolist())
    pairs = [(queries[q], corpus[d].full_text) for q in qids for d in lists[q]]
    labels = np.array([qrels[q].get(d, 0) >= relevance_level for q in qids for d in lists[q]], dtype=np.float64)
    in_holdout = np.array([q in held for q in qids for _ in lists[q]])
    scores = np.asarray(scorer.score(pairs), dtype=np.float64)
    calibration = fit_calibration(scores[~in_holdout], labels[~in_holdout], method)
    raw = np.array([sigmoid(s) for s in scores[in_holdout]])
    fitted = calibration.probability(scores[in_holdout])
    y = labels[in_holdout]
    return CalibrationStudy(calibration, int((~in_holdout).sum()), int(in_holdout.sum()),
                            expected_calibration_error(raw, y), expected_calibration_error(fitted, y),
                            brier_score(raw, y), brier_score(fitted, y))
