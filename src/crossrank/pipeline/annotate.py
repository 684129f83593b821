"""The cross-encoder as relevance annotator: pseudo-qrels for the pooled top K of one or more runs.

Judging is expensive; a calibrated cross-encoder can stand in where no human grade exists. The pool is the
union of every run's top ``depth`` per query (the TREC way of choosing what to judge). Each pooled pair
gets the model's calibrated probability of relevance, and a grade 0-3 is the number of ``thresholds``
(increasing probabilities) it reaches. With ``judged`` qrels only the holes are annotated: existing
judgments are kept as they are and never rescored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from crossrank.data.formats import Document, Qrels, Run, ranked
from crossrank.errors import InvalidInputError

DEFAULT_THRESHOLDS = (0.25, 0.5, 0.8)  # calibrated P(relevant) for grades 1, 2 and 3


@dataclass(frozen=True)
class GradeThresholds:
    """Increasing probabilities in (0, 1); a pair's grade is how many of them its probability reaches."""

    cuts: tuple[float, ...] = DEFAULT_THRESHOLDS

    def __post_init__(self):
        cuts = tuple(float(c) for c in self.cuts)
        if not cuts or len(cuts) > 3:
            raise InvalidInputError(f"give 1 to 3 grade thresholds (for grades 1..3), got {len(cuts)}")
        if any(not 0.0 < c < 1.0 for c in cuts) or any(b <= a for a, b in zip(cuts, cuts[1:])):
            raise InvalidInputError(f"grade thresholds must be increasing probabilities in (0, 1), got {list(cuts)}")
        object.__setattr__(self, "cuts", cuts)

    def grade(self, probabilities: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.cuts), np.asarray(probabilities, dtype=np.float64), side="right")


@dataclass
class Annotation:
    """What ``annotate`` produced: the new grades and probabilities, and what it skipped."""

    qrels: Qrels  # the new (model) grades only
    probabilities: dict[str, dict[str, float]]
    pooled: int  # pairs in the pool
    already_judged: int  # pooled pairs the given judgments already cover (kept, not rescored)
    missing_text: list[tuple[str, str]] = field(default_factory=list)  # pooled pairs whose document has no text

    def merged_with(self, judged: Qrels | None) -> Qrels:
        """The judged qrels with the holes filled (judged grades win)."""
        merged = {q: dict(docs) for q, docs in (judged or {}).items()}
        for qid, docs in self.qrels.items():
            for doc_id, grade in docs.items():
                merged.setdefault(qid, {}).setdefault(doc_id, grade)
        return merged


def pool(runs: Sequence[Run], depth: int, queries: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Union of every run's top ``depth`` per query, in order of first appearance (run by run, rank by rank)."""
    if depth < 1:
        raise InvalidInputError(f"depth must be positive, got {depth}")
    if not runs:
        raise InvalidInputError("annotation needs at least one run to pool")
    pooled: dict[str, dict[str, None]] = {}
    for run in runs:
        for qid, docs in run.items():
            if queries is not None and qid not in queries:
                continue
            target = pooled.setdefault(qid, {})
            for doc_id in ranked(docs)[:depth]:
                target.setdefault(doc_id, None)
    return {qid: list(docs) for qid, docs in pooled.items()}


def annotate(model, queries: dict[str, str], corpus: dict[str, Document], runs: Sequence[Run], depth: int,
             thresholds: GradeThresholds | None = None, judged: Qrels | None = None,
             progress: Callable[[int], None] | None = None) -> Annotation:
    """Grade the pooled top ``depth`` of ``runs`` with ``model`` (a ``CrossEncoder``: its ``score`` and its
    calibrated ``probability``); pairs in ``judged`` are left alone. Queries without text are skipped."""
    thresholds = thresholds or GradeThresholds()
    lists = pool(runs, depth, queries)
    if not lists:
        raise InvalidInputError("no run query has text in the queries file: nothing to annotate")
    judged = judged or {}
    todo, missing, covered = [], [], 0
    for qid, docs in lists.items():
        for doc_id in docs:
            if doc_id in judged.get(qid, {}):
                covered += 1
            elif doc_id not in corpus:
                missing.append((qid, doc_id))
            else:
                todo.append((qid, doc_id))
    qrels: Qrels = {}
    probabilities: dict[str, dict[str, float]] = {}
    if todo:
        scores = model.score([(queries[q], corpus[d].full_text) for q, d in todo], progress=progress)
        probs = np.asarray(model.probability(scores), dtype=np.float64)
        grades = thresholds.grade(probs)
        for (qid, doc_id), p, g in zip(todo, probs, grades):
            probabilities.setdefault(qid, {})[doc_id] = float(p)
            qrels.setdefault(qid, {})[doc_id] = int(g)
    return Annotation(qrels, probabilities, sum(len(d) for d in lists.values()), covered, missing)
