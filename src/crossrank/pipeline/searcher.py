"""Two-stage search: retrieve K candidates, rerank them with a cross-encoder, return the top N.

Long documents are read window by window (``ranking.chunking``) with the best window as evidence. With a
latency budget, ``pipeline.budget`` plans who scores what: the main model the best-first-stage prefix that
fits, a cheaper ``fallback`` model the candidates the main model cannot reach, or a cascade (the fallback
scores all, the main model rescores its top). Every hit says which model scored it. The budget counts
scoring only. Each model's cost (a cost per call plus a cost per input token, every window of a long
document counted; tokens are estimated from characters) is measured once per model, backend and device
after a warm-up pass, both outside any budget, kept for the life of the process and refined by every call.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field

from crossrank.errors import InvalidInputError
from crossrank.pipeline.budget import POLICIES, CostModel, ScoringPlan, fit_prefix, plan_scoring
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
_COSTS: "weakref.WeakKeyDictionary[object, dict[tuple, CostModel]]" = weakref.WeakKeyDictionary()
PROBE_CANDIDATES = (4, 16)  # real candidates scored in two timed calls (after a warm-up pass) to fit the cost


def _shared_estimate(reranker, setting: tuple) -> CostModel:
    try:
        per_setting = _COSTS.setdefault(reranker, {})
    except TypeError:  # a reranker that cannot be weakly referenced: this Searcher's own estimate
        return CostModel()
    return per_setting.setdefault(setting, CostModel())


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
            else CostModel()
        self.fallback_throughput = _shared_estimate(fallback, (chunking, overlap)) if fallback is not None \
            else CostModel()

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
            budget = None if budget_ms is None else budget_ms / 1000.0
            main_costs = self._costs(self.reranker, self.throughput, query, hits) if budget is not None else None
            fallback_costs = self._costs(self.fallback, self.fallback_throughput, query, hits) \
                if budget is not None and self.policy != "prefix" else None
            plan = plan_scoring(len(hits), self.policy, budget, main_costs, fallback_costs, self.rescore,
                                self.throughput.planned_overhead, self.fallback_throughput.planned_overhead)
        rerank_start = time.perf_counter()
        if plan is not None:
            self._carry_out(query, hits, plan, None if budget_ms is None else rerank_start + budget_ms / 1000.0)
        done = time.perf_counter()
        timings["rerank"] = 1000 * (done - rerank_start)
        timings["total"] = 1000 * (done - start)
        main = sum(h.scored_by == "main" for h in hits)
        fallback = sum(h.fallback_score is not None for h in hits)
        return SearchResult(query, _order(hits)[:top_n], main, len(hits), timings, fallback, plan)

    def _carry_out(self, query: str, hits: list[SearchHit], plan: ScoringPlan, deadline: float | None) -> None:
        if plan.policy == "cascade":
            seen = hits[:plan.fallback]
            self._timed(self.fallback, self.fallback_throughput, query, seen, "fallback")
            best = sorted(seen, key=lambda h: (-h.fallback_score, h.first_stage_rank))[:self.rescore]
            if deadline is not None:  # now that the fallback has chosen them: the ones its real leftover time fits
                costs = self._costs(self.reranker, self.throughput, query, best)
                best = best[:fit_prefix(costs, deadline - time.perf_counter(), self.throughput.planned_overhead)]
            self._timed(self.reranker, self.throughput, query, best, "main")
            return
        self._timed(self.reranker, self.throughput, query, hits[:plan.main], "main")
        self._timed(self.fallback, self.fallback_throughput, query, hits[plan.main:plan.main + plan.fallback],
                    "fallback")

    def _timed(self, model, cost: CostModel, query: str, hits: list[SearchHit], role: str) -> None:
        if not hits:
            return
        begin = time.perf_counter()
        scored = self._score(model, [query] * len(hits), hits)
        cost.update(len(hits), round(sum(self._tokens(model, cost, query, hits))), time.perf_counter() - begin)
        for hit, result in zip(hits, scored):
            self._apply(model, hit, result, role)

    def _measure_cost(self, model, cost: CostModel, query: str, hits: list[SearchHit]) -> bool:
        """Fit the model's cost on real candidates after a warm-up pass (the first pass is slow): characters
        per token from its tokenizer, then two timed calls of different sizes. True when it measured (the
        first budgeted search of this model on this device)."""
        if cost.measured or not hits:
            return False
        probe = hits[:max(PROBE_CANDIDATES)]
        texts = [query] + [t for h in probe for t in (h.title, h.text) if t]
        tokens = sum(len(e.ids) for e in model.tokenizer.backend.encode_batch(texts, add_special_tokens=False))
        cost.chars_per_token = max(1.0, sum(map(len, texts)) / max(tokens, 1))
        self._score(model, [query] * len(probe), probe)  # warm-up: allocations, kernels, caches
        timed = []
        for n in PROBE_CANDIDATES:
            part = probe[:n]
            begin = time.perf_counter()
            self._score(model, [query] * len(part), part)
            timed.append((len(part), sum(self._tokens(model, cost, query, part)), time.perf_counter() - begin))
        cost.fit(timed[0], timed[-1])
        return True

    def _window(self, tokenizer) -> tuple[int, int]:
        """Document tokens per window and the overlap between windows (what ``_score`` reads with)."""
        window = max(tokenizer.max_length - tokenizer.special_tokens - tokenizer.query_cap - TITLE_ALLOWANCE, 16)
        return window, min(self.overlap, window // 2)

    def _tokens(self, model, cost: CostModel, query: str, hits: list[SearchHit]) -> list[float]:
        """Estimated input tokens of each candidate, every window counted (from characters: no tokenizing)."""
        tokenizer, per = model.tokenizer, cost.chars_per_token
        fixed = min(len(query) / per, tokenizer.query_cap) + tokenizer.special_tokens
        window, overlap = self._window(tokenizer)
        out = []
        for hit in hits:
            title, text = min(len(hit.title or "") / per, TITLE_ALLOWANCE), len(hit.text) / per
            if not self.chunking:
                out.append(min(fixed + title + text, tokenizer.max_length))
                continue
            windows = 1 if text <= window else 1 + math.ceil((text - window) / (window - overlap))
            out.append(windows * (fixed + title) + text + (windows - 1) * overlap)
        return out

    def _costs(self, model, cost: CostModel, query: str, hits: list[SearchHit]) -> list[float] | None:
        return cost.candidate_seconds(self._tokens(model, cost, query, hits))

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
