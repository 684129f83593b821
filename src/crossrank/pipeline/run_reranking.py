"""Rerank a first-stage run: the top ``depth`` candidates of every query are rescored in one pass.

Documents below the depth keep their first-stage order under the reranked ones, so recall at any cutoff
is never lowered by reranking only a prefix.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol, Sequence

import numpy as np

from crossrank.errors import InvalidInputError
from crossrank.data.formats import Document, Run, ranked
from crossrank.ranking.score_fusion import fuse_flat

logger = logging.getLogger(__name__)


class PairScorer(Protocol):
    """Anything with CrossEncoder's ``score``: cross-encoders, bi-encoder baselines, ensembles."""

    def score(self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None) -> np.ndarray:
        ...


def candidate_lists(run: Run, queries: dict[str, str], corpus: dict[str, Document], depth: int
                    ) -> dict[str, list[str]]:
    """Each query's top-``depth`` document ids in first-stage order; checks every text is there."""
    if depth < 1:
        raise InvalidInputError(f"depth must be positive, got {depth}")
    missing_queries = [q for q in run if q not in queries]
    if missing_queries:
        logger.warning("%d run queries have no text in the queries file and are skipped (e.g. %s)",
                       len(missing_queries), missing_queries[0])
    lists = {qid: ranked(docs)[:depth] for qid, docs in run.items() if qid in queries}
    missing_docs = sorted({d for docs in lists.values() for d in docs if d not in corpus})
    if missing_docs:
        raise InvalidInputError(f"{len(missing_docs)} run documents are not in the corpus (e.g. {missing_docs[0]!r})")
    return lists


def rerank_run(scorer: PairScorer, run: Run, queries: dict[str, str], corpus: dict[str, Document], depth: int,
               progress: Callable[[int], None] | None = None, first_stage_weight: float = 0.0) -> Run:
    """A new run: reranked top ``depth`` per query, then the first-stage tail.

    ``first_stage_weight`` > 0 fuses each candidate's score with its first-stage score
    (``crossrank.ranking.score_fusion``) instead of ranking by the reranker alone.
    """
    lists = candidate_lists(run, queries, corpus, depth)
    pairs = [(queries[qid], corpus[doc].full_text) for qid, docs in lists.items() for doc in docs]
    scores = np.asarray(scorer.score(pairs, progress=progress), dtype=np.float64)
    if first_stage_weight:
        first = np.array([run[qid][d] for qid, docs in lists.items() for d in docs], dtype=np.float64)
        scores = fuse_flat(scores, first, [len(docs) for docs in lists.values()], first_stage_weight)
    return merge_scores(run, lists, scores)


def merge_scores(run: Run, lists: dict[str, list[str]], scores: np.ndarray) -> Run:
    """Attach flat pair scores to their queries; put each query's first-stage tail below them."""
    merged: Run = {}
    start = 0
    for qid, docs in lists.items():
        query_scores = [float(s) for s in scores[start:start + len(docs)]]
        start += len(docs)
        merged[qid] = dict(zip(docs, query_scores))
        floor = min(query_scores, default=0.0)
        tail = [d for d in ranked(run[qid]) if d not in merged[qid]]
        for position, doc in enumerate(tail, start=1):
            merged[qid][doc] = floor - position
    return merged
