"""Two-stage search: retrieve K candidates, rerank them with a cross-encoder, return the top N.

Long documents are read window by window (``ranking.chunking``) with the best window as evidence. With a
latency budget, only the best-first-stage prefix whose scoring fits the budget is reranked; the rest follow
in first-stage order, each hit flagged. The budget counts scoring only. Its cost estimate (seconds per
candidate) is measured once per model, backend and device after a warm-up pass, both outside any budget,
kept for the life of the process and refined by every rerank.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field

from crossrank.errors import InvalidInputError
from crossrank.ranking.chunking import AGGREGATIONS, ChunkedScore, score_chunked
from crossrank.ranking.results import sigmoid
from crossrank.retrieval.index import CollectionIndex
from crossrank.retrieval.retriever import Candidate, Retriever

TITLE_ALLOWANCE = 32  # tokens kept free in each window for the document title


@dataclass
class SearchHit:
    id: str
    title: str
    text: str
    first_stage_rank: int
    first_stage_score: float
    rerank_score: float | None = None  # None when not reranked
    probability: float | None = None
    reranked: bool = False
    evidence: tuple[int, int] | None = None  # [start, end) characters of ``text`` that scored best
    windows: int = 0


@dataclass
class SearchResult:
    query: str
    hits: list[SearchHit]
    reranked: int  # how many candidates the cross-encoder scored
    candidates: int
    timings_ms: dict[str, float] = field(default_factory=dict)


class ThroughputEstimate:
    """Seconds per scored pair, an exponential moving average over recent rerank calls."""

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
        return max(0, int(math.floor(budget_seconds / self.seconds_per_pair))) if self.seconds_per_pair else 0


# Measured scoring cost per reranker (one model on one backend and device) and chunking setting, shared by
# every Searcher of the process that uses that reranker, and gone with it.
_COSTS: "weakref.WeakKeyDictionary[object, dict[tuple, ThroughputEstimate]]" = weakref.WeakKeyDictionary()
PROBE_CANDIDATES = 16  # real candidates scored (after a warm-up pass) to measure the cost per candidate


def _shared_estimate(reranker, setting: tuple) -> ThroughputEstimate:
    try:
        per_setting = _COSTS.setdefault(reranker, {})
    except TypeError:  # a reranker that cannot be weakly referenced: this Searcher's own estimate
        return ThroughputEstimate()
    return per_setting.setdefault(setting, ThroughputEstimate())


class Searcher:
    """``search(query, k=100, top_n=10)``: first stage, then (optionally) a cross-encoder rerank."""

    def __init__(self, index: CollectionIndex | str, retriever: Retriever | str = "bm25", reranker=None, *,
                 chunking: bool = True, overlap: int = 64, aggregation: str = "max", fusion: str = "rrf",
                 weight: float = 0.5, approximate: bool = False):
        self.index = index if isinstance(index, CollectionIndex) else CollectionIndex(index)
        self.retriever = retriever if isinstance(retriever, Retriever) else Retriever(
            self.index, retriever, fusion=fusion, weight=weight, approximate=approximate)
        if aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"unknown aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        self.reranker = reranker
        self.chunking, self.overlap, self.aggregation = chunking, overlap, aggregation
        self.throughput = _shared_estimate(reranker, (chunking, overlap)) if reranker is not None \
            else ThroughputEstimate()

    # -- one query ----------------------------------------------------------------------------------------
    def search(self, query: str, k: int = 100, top_n: int = 10, budget_ms: float | None = None) -> SearchResult:
        if top_n < 1:
            raise InvalidInputError(f"top_n must be positive, got {top_n}")
        start = time.perf_counter()
        candidates = self.retriever.retrieve(query, k)
        retrieved = time.perf_counter()
        docs = self.index.documents(c.id for c in candidates)
        hits = [_hit(c, docs[c.id]) for c in candidates if c.id in docs]
        fetched = time.perf_counter()
        prefix = len(hits) if self.reranker is not None else 0
        timings = {"retrieve": 1000 * (retrieved - start), "fetch": 1000 * (fetched - retrieved)}
        if self.reranker is not None and budget_ms is not None:
            if self._measure_cost(query, hits):  # once per model and device, outside the budget
                timings["cost_probe"] = 1000 * (time.perf_counter() - fetched)
            prefix = min(prefix, self.throughput.pairs_within(budget_ms / 1000.0))
        rerank_start = time.perf_counter()
        if prefix:
            scored = self._score([query] * prefix, hits[:prefix])
            self.throughput.update(prefix, time.perf_counter() - rerank_start)
            for hit, result in zip(hits, scored):
                self._apply(hit, result)
        done = time.perf_counter()
        timings["rerank"] = 1000 * (done - rerank_start)
        timings["total"] = 1000 * (done - start)
        return SearchResult(query, _order(hits)[:top_n], prefix, len(hits), timings)

    def _measure_cost(self, query: str, hits: list[SearchHit]) -> bool:
        """Seconds per candidate, measured on real candidates after a warm-up pass (the first pass is slow).
        True when it measured (the first budgeted search of this model on this device)."""
        if self.throughput.seconds_per_pair is not None or not hits:
            return False
        probe = hits[:PROBE_CANDIDATES]
        self._score([query] * len(probe), probe)  # warm-up: allocations, kernels, caches
        begin = time.perf_counter()
        self._score([query] * len(probe), probe)
        self.throughput.update(len(probe), time.perf_counter() - begin)
        return True

    # -- many queries (batch mode): one globally batched rerank ------------------------------------------------
    def search_many(self, queries: dict[str, str], k: int = 100, top_n: int = 10) -> dict[str, list[SearchHit]]:
        per_query = {qid: self.retriever.retrieve(text, k) for qid, text in queries.items()}
        docs = self.index.documents(c.id for cands in per_query.values() for c in cands)
        hits = {qid: [_hit(c, docs[c.id]) for c in cands if c.id in docs] for qid, cands in per_query.items()}
        if self.reranker is not None:
            flat = [(qid, h) for qid, hs in hits.items() for h in hs]
            scored = self._score([queries[qid] for qid, _ in flat], [h for _, h in flat])
            for (_, hit), result in zip(flat, scored):
                self._apply(hit, result)
        return {qid: _order(hs)[:top_n] for qid, hs in hits.items()}

    def _score(self, queries: list[str], hits: list[SearchHit]) -> list[ChunkedScore]:
        ce = self.reranker
        if not self.chunking:
            texts = [f"{h.title} {h.text}" if h.title else h.text for h in hits]
            scores = ce.score(list(zip(queries, texts)))
            return [ChunkedScore(float(s), (0, len(h.text)), 1) for s, h in zip(scores, hits)]
        window = ce.tokenizer.max_length - ce.tokenizer.special_tokens - ce.tokenizer.query_cap - TITLE_ALLOWANCE
        overlap = min(self.overlap, window // 2)
        return score_chunked(ce.score, ce.tokenizer.backend, queries, [h.text for h in hits], max(window, 16),
                             overlap, self.aggregation, titles=[h.title for h in hits])


    def _apply(self, hit: SearchHit, result: ChunkedScore) -> None:
        hit.rerank_score = result.score
        # The reranker's own probability (its calibration), as in every other surface.
        probability = getattr(self.reranker, "probability", None)
        hit.probability = float(probability([result.score])[0]) if probability else sigmoid(result.score)
        hit.reranked = True
        hit.evidence = result.evidence
        hit.windows = result.windows


Pipeline = Searcher


def _hit(candidate: Candidate, doc) -> SearchHit:
    return SearchHit(id=candidate.id, title=doc.title, text=doc.text, first_stage_rank=candidate.rank,
                     first_stage_score=candidate.score)




def _order(hits: list[SearchHit]) -> list[SearchHit]:
    """Reranked hits by score (ties: first-stage rank), then the rest in first-stage order."""
    reranked = sorted((h for h in hits if h.reranked), key=lambda h: (-h.rerank_score, h.first_stage_rank))
    rest = sorted((h for h in hits if not h.reranked), key=lambda h: h.first_stage_rank)
    return reranked + rest
