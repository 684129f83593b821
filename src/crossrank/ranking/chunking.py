"""Long documents: score every token window and aggregate, instead of reading only the first 512 tokens.

A document longer than the model's window is split into windows of ``window_tokens`` tokens that overlap
by ``overlap`` tokens (character offsets come from the tokenizer, so windows start and end on token
boundaries). Each window is scored with the query; the document score aggregates the window scores and
the best window's character span is returned as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from crossrank.errors import InvalidInputError

AGGREGATIONS = ("max", "mean", "first", "topk-mean")


@dataclass(frozen=True)
class ChunkedScore:
    score: float  # aggregated document score
    evidence: tuple[int, int]  # [start, end) characters of the best-scoring window
    windows: int


def split_windows(tokenizer, text: str, window_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of overlapping token windows covering ``text`` (one span for a short text)."""
    if window_tokens < 1 or not 0 <= overlap < window_tokens:
        raise InvalidInputError(f"need window_tokens >= 1 and 0 <= overlap < window_tokens, got "
                                f"{window_tokens} / {overlap}")
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    if len(offsets) <= window_tokens:
        return [(0, len(text))]
    spans = []
    step = window_tokens - overlap
    for start in range(0, len(offsets), step):
        end = min(start + window_tokens, len(offsets))
        spans.append((offsets[start][0], offsets[end - 1][1]))
        if end == len(offsets):
            break
    return spans


def aggregate(scores: np.ndarray, how: str, top_k: int = 3) -> float:
    if how == "max":
        return float(scores.max())
    if how == "mean":
        return float(scores.mean())
    if how == "first":
        return float(scores[0])
    if how == "topk-mean":
        return float(np.sort(scores)[::-1][:top_k].mean())
    raise InvalidInputError(f"unknown aggregation {how!r}: use one of {', '.join(AGGREGATIONS)}")


def score_chunked(score_pairs: Callable[[list[tuple[str, str]]], np.ndarray], tokenizer,
                  queries: Sequence[str], documents: Sequence[str], window_tokens: int, overlap: int,
                  how: str = "max", titles: Sequence[str] | None = None) -> list[ChunkedScore]:
    """Score (query, document) pairs through their windows in one batched call of ``score_pairs``.

    With ``titles``, each window is read as ``title + " " + window`` (the title gives every window its
    context) and evidence offsets point into the document text alone.
    """
    if how not in AGGREGATIONS:
        raise InvalidInputError(f"unknown aggregation {how!r}: use one of {', '.join(AGGREGATIONS)}")
    titles = titles if titles is not None else [""] * len(documents)
    spans = [split_windows(tokenizer, doc, window_tokens, overlap) for doc in documents]
    pairs = [(q, f"{title} {doc[s:e]}" if title else doc[s:e])
             for q, doc, title, doc_spans in zip(queries, documents, titles, spans) for s, e in doc_spans]
    flat = score_pairs(pairs)
    out, start = [], 0
    for doc_spans in spans:
        window_scores = np.asarray(flat[start:start + len(doc_spans)], dtype=np.float64)
        start += len(doc_spans)
        best = int(np.argmax(window_scores))
        out.append(ChunkedScore(aggregate(window_scores, how), doc_spans[best], len(doc_spans)))
    return out
