"""Two-stage search: retrieve K candidates, rerank them with a cross-encoder, return the top N.

Long documents are read window by window (``ranking.chunking``) with the best window as evidence. With a
latency budget, ``pipeline.budget`` plans who scores what: the main model the best-first-stage prefix that
fits, a cheaper ``fallback`` model the candidates the main model cannot reach, or a cascade (the fallback
scores all, the main model rescores its top). Every hit says which model scored it. The budget counts
scoring only. Each model's cost (seconds per candidate) is measured once per model, backend and device after
a warm-up pass, both outside any budget, kept for the life of the process and refined by every call.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

from crossrank.errors import InvalidInputError
from crossrank.pipeline.budget import POLICIES, ScoringPlan, ThroughputEstimate, plan_scoring
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
    scored_by: str | None = None  # the model whose score ranks this hit ("main" or "fallback"); None: first stage
    fallback_score: float | None = None  # the fallback's score, when it scored this hit (cascade: all it saw)


@dataclass
class SearchResult:
    query: str
    hits: list[SearchHit]
    reranked: int  # how many candidates the main cross-encoder scored
    candidates: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    fallback_scored: int = 0  # how many the fallback scored
    plan: ScoringPlan | None = None


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
    """``search(query, k=100, top_n=10)``: first stage, then (optionally) a cross-encoder rerank.

    ``fallback``: a cheaper cross-encoder (for example ``CrossEncoder("fast")``) for what the main model
    cannot score within ``budget_ms``. ``policy``: ``prefix`` (no fallback), ``fallback`` (the default when
    a fallback is given) or ``cascade`` (the fallback scores every candidate, the main model rescores its
    top ``rescore``); see ``crossrank.pipeline.budget``.
    """

    def __init__(self, index: CollectionIndex | str, retriever: Retriever | str = "bm25", reranker=None, *,
                 fallback=None, policy: str | None = None, rescore: int = 20,
                 chunking: bool = True, overlap: int = 64, aggregation: str = "max", fusion: str = "rrf",
                 weight: float = 0.5, approximate: bool = False):
        self.index = index if isinstance(index, CollectionIndex) else CollectionIndex(index)
        self.retriever = retriever if isinstance(retriever, Retriever) else Retriever(
            self.index, retriever, fusion=fusion, weight=weight, approximate=approximate)
        if aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"unknown aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        policy = policy or ("fallback" if fallback is not None else "prefix")
        if policy not in POLICIES:
            raise InvalidInputError(f"unknown budget policy {policy!r}: use one of {', '.join(POLICIES)}")
        if policy != "prefix" and (fallback is None or reranker is None):
            raise InvalidInputError(f"the {policy!r} policy needs a main reranker and a fallback model")
        if rescore < 1:
            raise InvalidInputError(f"the cascade's rescore depth must be positive, got {rescore}")
        self.reranker, self.fallback, self.policy, self.rescore = reranker, fallback, policy, rescore
        self.chunking, self.overlap, self.aggregation = chunking, overlap, aggregation
        self.throughput = _shared_estimate(reranker, (chunking, overlap)) if reranker is not None \
            else ThroughputEstimate()
        self.fallback_throughput = _shared_estimate(fallback, (chunking, overlap)) if fallback is not None \
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
        timings = {"retrieve": 1000 * (retrieved - start), "fetch": 1000 * (fetched - retrieved)}
        plan = None
        if self.reranker is not None:
            if budget_ms is not None:  # each model's cost, measured once per model and device, outside the budget
                measured = self._measure_cost(self.reranker, self.throughput, query, hits)
                if self.policy != "prefix":
                    measured |= self._measure_cost(self.fallback, self.fallback_throughput, query, hits)
                if measured:
                    timings["cost_probe"] = 1000 * (time.perf_counter() - fetched)
            plan = plan_scoring(len(hits), self.policy, None if budget_ms is None else budget_ms / 1000.0,
                                self.throughput.seconds_per_pair, self.fallback_throughput.seconds_per_pair,
                                self.rescore)
        rerank_start = time.perf_counter()
        if plan is not None:
            self._carry_out(query, hits, plan)
        done = time.perf_counter()
        timings["rerank"] = 1000 * (done - rerank_start)
        timings["total"] = 1000 * (done - start)
        main = sum(h.scored_by == "main" for h in hits)
        fallback = sum(h.fallback_score is not None for h in hits)
        return SearchResult(query, _order(hits)[:top_n], main, len(hits), timings, fallback, plan)

    def _carry_out(self, query: str, hits: list[SearchHit], plan: ScoringPlan) -> None:
        if plan.policy == "cascade":
            seen = hits[:plan.fallback]
            self._timed(self.fallback, self.fallback_throughput, query, seen, "fallback")
            best = sorted(seen, key=lambda h: (-h.fallback_score, h.first_stage_rank))[:plan.main]
            self._timed(self.reranker, self.throughput, query, best, "main")
            return
        self._timed(self.reranker, self.throughput, query, hits[:plan.main], "main")
        self._timed(self.fallback, self.fallback_throughput, query, hits[plan.main:plan.main + plan.fallback],
                    "fallback")

    def _timed(self, model, estimate: ThroughputEstimate, query: str, hits: list[SearchHit], role: str) -> None:
        if not hits:
            return
        begin = time.perf_counter()
        scored = self._score(model, [query] * len(hits), hits)
        estimate.update(len(hits), time.perf_counter() - begin)
        for hit, result in zip(hits, scored):
            self._apply(model, hit, result, role)

    def _measure_cost(self, model, estimate: ThroughputEstimate, query: str, hits: list[SearchHit]) -> bool:
        """Seconds per candidate, measured on real candidates after a warm-up pass (the first pass is slow).
        True when it measured (the first budgeted search of this model on this device)."""
        if estimate.seconds_per_pair is not None or not hits:
            return False
        probe = hits[:PROBE_CANDIDATES]
        self._score(model, [query] * len(probe), probe)  # warm-up: allocations, kernels, caches
        begin = time.perf_counter()
        self._score(model, [query] * len(probe), probe)
        estimate.update(len(probe), time.perf_counter() - begin)
        return True

    # -- many queries (batch mode): one globally batched rerank ------------------------------------------------
    def search_many(self, queries: dict[str, str], k: int = 100, top_n: int = 10) -> dict[str, list[SearchHit]]:
        """Every query's top ``top_n``, without a budget: the main model scores every candidate (``cascade``:
        the fallback scores every candidate and the main model each query's top ``rescore``)."""
        per_query = {qid: self.retriever.retrieve(text, k) for qid, text in queries.items()}
        docs = self.index.documents(c.id for cands in per_query.values() for c in cands)
        hits = {qid: [_hit(c, docs[c.id]) for c in cands if c.id in docs] for qid, cands in per_query.items()}
        if self.reranker is not None:
            if self.policy == "cascade":
                self._score_flat(self.fallback, queries, hits, "fallback")
                hits_top = {qid: sorted(hs, key=lambda h: (-h.fallback_score, h.first_stage_rank))[:self.rescore]
                            for qid, hs in hits.items()}
                self._score_flat(self.reranker, queries, hits_top, "main")
            else:
                self._score_flat(self.reranker, queries, hits, "main")
        return {qid: _order(hs)[:top_n] for qid, hs in hits.items()}

    def _score_flat(self, model, queries: dict[str, str], hits: dict[str, list[SearchHit]], role: str) -> None:
        flat = [(qid, h) for qid, hs in hits.items() for h in hs]
        scored = self._score(model, [queries[qid] for qid, _ in flat], [h for _, h in flat])
        for (_, hit), result in zip(flat, scored):
            self._apply(model, hit, result, role)

    def _score(self, model, queries: list[str], hits: list[SearchHit]) -> list[ChunkedScore]:
        if not self.chunking:
            texts = [f"{h.title} {h.text}" if h.title else h.text for h in hits]
            scores = model.score(list(zip(queries, texts)))
            return [ChunkedScore(float(s), (0, len(h.text)), 1) for s, h in zip(scores, hits)]
        tokenizer = model.tokenizer
        window = tokenizer.max_length - tokenizer.special_tokens - tokenizer.query_cap - TITLE_ALLOWANCE
        overlap = min(self.overlap, window // 2)
        return score_chunked(model.score, tokenizer.backend, queries, [h.text for h in hits], max(window, 16),
                             overlap, self.aggregation, titles=[h.title for h in hits])

    @staticmethod
    def _apply(model, hit: SearchHit, result: ChunkedScore, role: str) -> None:
        if role == "fallback":
            hit.fallback_score = result.score
            if hit.scored_by == "main":  # never expected: the main model's score outranks the fallback's
                return
        hit.rerank_score = result.score
        # The model's own probability (its calibration), as in every other surface.
        probability = getattr(model, "probability", None)
        hit.probability = float(probability([result.score])[0]) if probability else sigmoid(result.score)
        hit.reranked = True
        hit.scored_by = role
        hit.evidence = result.evidence
        hit.windows = result.windows


Pipeline = Searcher


def _hit(candidate: Candidate, doc) -> SearchHit:
    return SearchHit(id=candidate.id, title=doc.title, text=doc.text, first_stage_rank=candidate.rank,
                     first_stage_score=candidate.score)




def _order(hits: list[SearchHit]) -> list[SearchHit]:
    """In tiers: hits the main model scored (by its score; ties: first-stage rank), then hits the fallback
    scored (by its score), then the rest in first-stage order. Two models' scores are never compared."""
    tiers = {"main": 0, "fallback": 1, None: 2}
    return sorted(hits, key=lambda h: (tiers[h.scored_by], -h.rerank_score if h.reranked else 0.0,
                                       h.first_stage_rank))
