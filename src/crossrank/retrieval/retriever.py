"""One front over BM25, dense and hybrid first-stage retrieval on a CollectionIndex."""

from __future__ import annotations

from dataclasses import dataclass

from crossrank.errors import InvalidInputError
from crossrank.retrieval.fusion import normalized_score_fusion, reciprocal_rank_fusion
from crossrank.retrieval.index import CollectionIndex

METHODS = ("bm25", "dense", "hybrid")
FUSIONS = ("rrf", "score")


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float  # the first stage's own score (BM25, cosine, or fused)
    rank: int  # 1-based first-stage rank


class Retriever:
    """``retrieve(query, k)``: the first stage's top k document ids with scores, best first."""

    def __init__(self, index: CollectionIndex, method: str = "bm25", fusion: str = "rrf", weight: float = 0.5,
                 approximate: bool = False, encoder=None, fusion_depth: int = 100):
        if method not in METHODS:
            raise InvalidInputError(f"unknown retriever {method!r}: use one of {', '.join(METHODS)}")
        if fusion not in FUSIONS:
            raise InvalidInputError(f"unknown fusion {fusion!r}: use rrf or score")
        if method != "bm25" and not index.has_dense:
            raise InvalidInputError(f"retriever {method!r} needs dense embeddings; the index at {index.path} has "
                                    "none (rebuild with `crossrank index build --dense`)")
        if approximate and method != "bm25" and index.dense().has_hnsw:
            from crossrank.retrieval.dense import require_hnsw

            require_hnsw()  # before any query: --approximate on this index needs usearch
        self.index, self.method, self.fusion, self.weight = index, method, fusion, weight
        self.approximate, self.fusion_depth = approximate, fusion_depth
        self._encoder = encoder

    @property
    def encoder(self):
        if self._encoder is None:
            from crossrank.model.bi_encoder import BiEncoder

            model = self.index.settings.dense_model
            self._encoder = BiEncoder(None if model in (None, "default") else model)
        return self._encoder

    def retrieve(self, query: str, k: int = 100) -> list[Candidate]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query is empty")
        if k < 1:
            raise InvalidInputError(f"k must be positive, got {k}")
        if self.method == "bm25":
            scores = self._bm25(query, k)
        elif self.method == "dense":
            scores = self._dense(query, k)
        else:
            depth = max(k, self.fusion_depth)
            lexical, dense = self._bm25(query, depth), self._dense(query, depth)
            if self.fusion == "rrf":
                scores = reciprocal_rank_fusion([list(lexical), list(dense)])
            else:
                scores = normalized_score_fusion(lexical, dense, self.weight)
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [Candidate(doc, float(score), rank) for rank, (doc, score) in enumerate(best, start=1)]

    def _bm25(self, query: str, k: int) -> dict[str, float]:
        positions, scores = self.index.bm25().search(query, k)
        return {self.index.doc_ids[p]: float(s) for p, s in zip(positions, scores)}

    def _dense(self, query: str, k: int) -> dict[str, float]:
        vector = self.encoder.encode([query])[0]
        positions, scores = self.index.dense().search(vector, k, approximate=self.approximate)
        return {self.index.doc_ids[p]: float(s) for p, s in zip(positions, scores) if 0 <= p < self.index.size}
