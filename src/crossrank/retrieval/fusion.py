"""Hybrid retrieval: combine ranked lists from BM25 and dense search.

- Reciprocal rank fusion (Cormack et al., SIGIR 2009): sum of 1 / (k + rank), k = 60; needs no score
  calibration, the robust default.
- Normalised score fusion: min-max normalise each list's scores to [0, 1], then
  ``weight * dense + (1 - weight) * bm25`` (a document missing from a list gets 0 there).
"""

from __future__ import annotations


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = 60) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


def normalized_score_fusion(lexical: dict[str, float], dense: dict[str, float], weight: float = 0.5
                            ) -> dict[str, float]:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must be in [0, 1], got {weight}")

    def normalise(scores: dict[str, float]) -> dict[str, float]:
        if not scores:
            return {}
        low, high = min(scores.values()), max(scores.values())
        span = high - low
        return {d: (s - low) / span if span > 0 else 1.0 for d, s in scores.items()}

    lex, den = normalise(lexical), normalise(dense)
    return {d: weight * den.get(d, 0.0) + (1.0 - weight) * lex.get(d, 0.0) for d in set(lex) | set(den)}
