"""BM25 over title + text with bm25s: English stop words, Snowball stemming, Lucene scoring.

Defaults follow Anserini (k1=0.9, b=0.4), the reference implementation behind published BEIR/TREC
figures, so numbers are comparable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import bm25s
import numpy as np

# bm25s pins its logger to DEBUG on import; let it follow the application's logging level instead.
logging.getLogger("bm25s").setLevel(logging.NOTSET)


@dataclass(frozen=True)
class BM25Settings:
    k1: float = 0.9
    b: float = 0.4
    stemmer: str | None = "english"  # Snowball language, or None
    stopwords: str | None = "en"  # bm25s's "en" list is Lucene's 33 English stop words
    # Words of one or more characters, as Lucene's StandardTokenizer (bm25s's default drops one-letter
    # tokens such as "a" in "vitamin a", which costs ~0.3 nDCG@10 points on NFCorpus).
    token_pattern: str = r"(?u)\b\w+\b"


# Lucene's (and so Anserini's) default English stop words.
LUCENE_STOPWORDS = ("a an and are as at be but by for if in into is it no not of on or such that the their then there "
                    "these they this to was will with").split()


def _stopwords(settings: BM25Settings) -> list[str] | str:
    if settings.stopwords == "lucene":
        return LUCENE_STOPWORDS
    return settings.stopwords or []


def _stemmer(settings: BM25Settings):
    if not settings.stemmer:
        return None
    import Stemmer

    return Stemmer.Stemmer(settings.stemmer).stemWords


# Documents per tokenizer call when indexing: progress counts parts; the merged ids are the one-call ids.
_TOKENIZE_PART = 20_000


def _tokenize(texts: list[str], settings: BM25Settings, progress: Callable[[int], None] | None = None):
    """bm25s tokens of every text, tokenized in parts (so progress can count) and merged into one vocabulary.

    bm25s's own bars stay off: progress belongs to the caller's one bar.
    """
    stopwords, stemmer = _stopwords(settings), _stemmer(settings)
    ids: list[list[int]] = []
    vocab: dict[str, int] = {}
    for start in range(0, len(texts), _TOKENIZE_PART):
        part = texts[start:start + _TOKENIZE_PART]
        tokens = bm25s.tokenize(part, stopwords=stopwords, stemmer=stemmer, token_pattern=settings.token_pattern,
                                show_progress=False)
        to_global = {local: vocab.setdefault(token, len(vocab)) for token, local in tokens.vocab.items()}
        ids.extend([to_global[i] for i in doc] for doc in tokens.ids)
        if progress is not None:
            progress(len(part))
    return bm25s.tokenization.Tokenized(ids=ids, vocab=vocab)


def build_bm25(texts: Iterable[str], folder: Path, settings: BM25Settings,
               progress: Callable[[int], None] | bool | None = None) -> None:
    """Index texts (row i = document position i) and save to ``folder``.

    ``progress`` (a callable) is told how many documents are tokenized; bm25s shows no bars of its own.
    """
    corpus = list(texts)
    model = bm25s.BM25(k1=settings.k1, b=settings.b, method="lucene")
    if corpus:
        model.index(_tokenize(corpus, settings, progress if callable(progress) else None), show_progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder), show_progress=False)


class BM25Retriever:
    """Loads a saved BM25 index (memory-mapped) and answers top-k queries with row positions."""

    def __init__(self, folder: Path, settings: BM25Settings, size: int):
        self.settings = settings
        self.size = size
        self.model = bm25s.BM25.load(str(folder), mmap=True, show_progress=False) if size else None
        self._stem = _stemmer(settings)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, scores) best first; fewer than k when fewer documents match."""
        if self.model is None or k < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        tokens = bm25s.tokenize([query], stopwords=_stopwords(self.settings), stemmer=self._stem,
                                token_pattern=self.settings.token_pattern, show_progress=False,
                                return_ids=False)[0]
        vocab = self.model.vocab_dict
        ids = [vocab[t] for t in tokens if t in vocab]
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.model.get_scores(ids)
        k = min(k, int(np.count_nonzero(scores)))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        order = top[np.lexsort((top, -scores[top]))]  # score descending, then position: deterministic
        return order.astype(np.int64), scores[order].astype(np.float32)
