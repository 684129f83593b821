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


def split_windows(tokenizer, text: str, window_tokens: int, overlap: int,
                  max_windows: int | None = None) -> list[tuple[int, int]]:
    """Character spans of overlapping token windows covering ``text`` (one span for a short text); with
    ``max_windows``, only the first that many (the rest of the text is not read)."""
    if window_tokens < 1 or not 0 <= overlap < window_tokens:
        raise InvalidInputError(f"need window_tokens >= 1 and 0 <= overlap < window_tokens, got "
                                f"{window_tokens} / {overlap}")
    return _windows(tokenizer.encode(text, add_special_tokens=False).offsets, len(text), window_tokens, overlap,
                    max_windows)


def _windows(offsets, length: int, window_tokens: int, overlap: int, max_windows: int | None
             ) -> list[tuple[int, int]]:
    if len(offsets) <= window_tokens:
        return [(0, length)]
    spans = []
    step = window_tokens - overlap
    for start in range(0, len(offsets), step):
        end = min(start + window_tokens, len(offsets))
        spans.append((offsets[start][0], offsets[end - 1][1]))
        if end == len(offsets) or len(spans) == max_windows:
            break
    return spans


@dataclass(frozen=True)
class Chunking:
    """How ``rerank`` reads a document longer than the model's window: token windows that overlap by
    ``overlap`` tokens, at most ``max_chunks`` of them (text beyond the last window is not read, and a warning
    says so; 32 windows of a 256-token model hold about 5,000 words), scored together and aggregated (the best
    window by default). Each window holds as many document tokens as the query leaves room for. The HTTP
    service takes Cohere's ``max_chunks_per_doc`` instead (default 10, as Cohere's)."""

    max_chunks: int = 32
    overlap: int = 64
    aggregation: str = "max"

    def __post_init__(self):
        if self.max_chunks < 1:
            raise InvalidInputError(f"max_chunks must be at least 1, got {self.max_chunks}")
        if self.overlap < 0:
            raise InvalidInputError(f"overlap must be 0 or more, got {self.overlap}")
        if self.aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"unknown aggregation {self.aggregation!r}: use one of {', '.join(AGGREGATIONS)}")


@dataclass
class ChunkedPairs:
    """Every document's windows as flat (query, window) pairs, and which document each belongs to."""

    queries: list[str]
    texts: list[str]
    spans: list[list[tuple[int, int]]]  # per document: its windows' [start, end) characters
    unread: int = 0  # documents with text beyond their last window (max_chunks reached)

    def aggregate(self, scores, how: str = "max", roles: Sequence[str] | None = None
                  ) -> tuple[list[ChunkedScore], list[str] | None]:
        """Each document's score from its windows' scores. With ``roles`` (which model scored each window),
        a document takes the role ``"main"`` when any of its windows was scored by the main model, and its
        score from those windows only (two models' scores are never mixed)."""
        scores = np.asarray(scores, dtype=np.float64)
        flat = self.spans_flat
        out, doc_roles, start = [], [] if roles is not None else None, 0
        for doc_spans in self.spans:
            rows = np.arange(start, start + len(doc_spans))
            start += len(doc_spans)
            if roles is not None:
                role = "main" if any(roles[i] == "main" for i in rows) else roles[rows[0]]
                rows = np.array([i for i in rows if roles[i] == role])
                doc_roles.append(role)
            best = int(rows[np.argmax(scores[rows])])
            out.append(ChunkedScore(aggregate(scores[rows], how), flat[best], len(doc_spans)))
        return out, doc_roles

    @property
    def spans_flat(self) -> list[tuple[int, int]]:
        return [span for doc_spans in self.spans for span in doc_spans]


def chunk_documents(tokenizer, queries: Sequence[str], documents: Sequence[str], chunking: Chunking
                    ) -> ChunkedPairs:
    """Split each document into the windows its query leaves room for (``tokenizer``: a ``PairTokenizer``)."""
    content = tokenizer.max_length - tokenizer.special_tokens
    unique = list(dict.fromkeys(queries))
    query_tokens = {q: min(len(e.ids), tokenizer.query_cap)
                    for q, e in zip(unique, tokenizer.backend.encode_batch(unique, add_special_tokens=False))}
    # A token covers at least one UTF-8 byte (WordPiece, byte-level BPE, byte-fallback sentencepiece; one
    # more for a leading word marker): a text of fewer bytes than the window has tokens fits, untokenized.
    shortest = content - max(query_tokens.values(), default=0)
    long_rows = [i for i, d in enumerate(documents)
                 if len(d) >= shortest and len(d.encode("utf-8", "surrogatepass")) + 1 > shortest]
    offsets = dict(zip(long_rows, (e.offsets for e in tokenizer.backend.encode_batch(
        [documents[i] for i in long_rows], add_special_tokens=False)))) if long_rows else {}
    pairs = ChunkedPairs([], [], [])
    for i, (query, document) in enumerate(zip(queries, documents)):
        # Two tokens to spare: a window's text, tokenized on its own, can split one more token at its edges.
        window = max(1, content - query_tokens[query] - 2)
        spans = _windows(offsets[i], len(document), window, min(chunking.overlap, window // 2), chunking.max_chunks) \
            if i in offsets else [(0, len(document))]
        pairs.unread += spans[-1][1] < len(document.rstrip())
        pairs.spans.append(spans)
        pairs.queries += [query] * len(spans)
        pairs.texts += [document[s:e] for s, e in spans]
    return pairs


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
