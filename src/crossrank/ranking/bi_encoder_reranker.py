"""Reranking by bi-encoder cosine: the baseline a cross-encoder has to beat on the same candidates."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from crossrank.model.bi_encoder import BiEncoder


class BiEncoderReranker:
    """Scores (query, document) pairs by the cosine of their embeddings; same ``score`` as CrossEncoder."""

    def __init__(self, encoder: BiEncoder):
        self.encoder = encoder
        self.name = encoder.name
        self.last_stats = None

    def score(self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None) -> np.ndarray:
        queries = list(dict.fromkeys(q for q, _ in pairs))
        docs = list(dict.fromkeys(d for _, d in pairs))
        q_vec = dict(zip(queries, self.encoder.encode(queries)))
        d_vec = dict(zip(docs, self.encoder.encode(docs)))
        scores = np.array([float(q_vec[q] @ d_vec[d]) for q, d in pairs], dtype=np.float32)
        if progress is not None:
            progress(len(pairs))
        return scores
