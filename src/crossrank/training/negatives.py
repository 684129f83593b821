"""Hard negatives: documents the first stage ranks high for a query but that are not judged relevant.

Negatives are drawn from a rank window (e.g. 10-100: near misses, but not the very top, where unjudged
relevant documents hide most often). Judged positives are always skipped; with a teacher, candidates the
teacher scores as likely relevant are skipped too (a false-negative guard).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from crossrank.data.formats import Qrels


@dataclass
class TrainingGroup:
    """One query with documents and their targets: labels (1/0, graded) or teacher scores."""

    query_id: str
    query: str
    documents: list[str]
    labels: list[float]


def mine_hard_negatives(candidates: dict[str, list[str]], qrels: Qrels, negatives: int,
                        rank_range: tuple[int, int] = (10, 100), relevance_level: int = 1, seed: int = 0,
                        guard: Callable[[str, list[str]], Sequence[float]] | None = None,
                        guard_threshold: float = 0.9) -> dict[str, list[str]]:
    """Per query, up to ``negatives`` document ids from ranks [start, end) (1-based) of ``candidates``.

    ``guard(query_id, doc_ids)`` returns P(relevant) per candidate (e.g. a teacher's calibrated score);
    candidates at or above ``guard_threshold`` are skipped as probable false negatives.
    """
    rng = random.Random(seed)
    start, end = rank_range
    if not 1 <= start <= end:
        raise ValueError(f"rank range must satisfy 1 <= start <= end, got {rank_range}")
    mined: dict[str, list[str]] = {}
    for qid, ranking in candidates.items():
        judged = qrels.get(qid, {})
        pool = [d for d in ranking[start - 1:end] if judged.get(d, 0) < relevance_level]
        if guard is not None and pool:
            probabilities = np.asarray(guard(qid, pool), dtype=np.float64)
            pool = [d for d, p in zip(pool, probabilities) if p < guard_threshold]
        mined[qid] = rng.sample(pool, min(negatives, len(pool)))
    return mined


def build_groups(queries: dict[str, str], texts: dict[str, str], qrels: Qrels, negatives: dict[str, list[str]],
                 relevance_level: int = 1, max_positives: int | None = None, seed: int = 0) -> list[TrainingGroup]:
    """One group per (query, positive): [positive, *negatives], labels [1, 0, ...].

    ``max_positives`` keeps at most that many positives per query (a seeded sample), so that broad queries
    with hundreds of judged documents (NFCorpus has queries with over 1,000) do not make up most of the data.
    """
    rng = random.Random(seed)
    groups = []
    for qid, judged in qrels.items():
        if qid not in queries or not negatives.get(qid):
            continue
        negs = [texts[d] for d in negatives[qid] if d in texts]
        positives = [d for d, grade in judged.items() if grade >= relevance_level and d in texts]
        if max_positives is not None and len(positives) > max_positives:
            positives = rng.sample(positives, max_positives)
        for doc_id in positives:
            groups.append(TrainingGroup(qid, queries[qid], [texts[doc_id], *negs], [1.0] + [0.0] * len(negs)))
    return groups
