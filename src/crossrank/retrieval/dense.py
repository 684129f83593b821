"""Dense retrieval: exact inner-product search over normalised embeddings, and an HNSW index for scale.

Embeddings are L2-normalised float32 rows (row i = document position i), so inner product = cosine.
Exact search is a matrix-vector product over a memory-mapped matrix; the approximate index (usearch
HNSW) trades a little recall for sub-linear latency on large collections. usearch comes with the
``[hnsw]`` extra; exact search needs only numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossrank.errors import BackendUnavailableError

HNSW_EXTRA_HINT = "pip install 'crossrank[hnsw]'"


def _usearch_index():
    """usearch's Index class, or a clear error naming the extra that provides it."""
    try:
        from usearch.index import Index
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the approximate (HNSW) vector index needs usearch, from the [hnsw] extra: {HNSW_EXTRA_HINT} "
            f"({exc})") from None
    return Index


def require_hnsw() -> None:
    """Fail early (before hours of embedding) when an HNSW index is wanted and usearch is missing."""
    _usearch_index()


def save_embeddings(vectors: np.ndarray, path: Path) -> None:
    np.save(path, np.ascontiguousarray(vectors, dtype=np.float32))


def build_hnsw(vectors: np.ndarray, path: Path, connectivity: int = 16, expansion_add: int = 128) -> None:
    Index = _usearch_index()
    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=connectivity,
                  expansion_add=expansion_add)
    if len(vectors):
        index.add(np.arange(len(vectors), dtype=np.uint64), vectors, log=False)
    index.save(str(path))


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    top = np.argpartition(-scores, k - 1)[:k]
    order = top[np.lexsort((top, -scores[top]))]
    return order.astype(np.int64), scores[order].astype(np.float32)


class DenseRetriever:
    """Exact search over the embedding matrix, or HNSW when ``approximate`` and an index exists.

    The HNSW index is opened at the first approximate search, so exact search works without usearch.
    """

    def __init__(self, embeddings_path: Path, hnsw_path: Path | None = None, expansion_search: int = 128):
        self.embeddings = np.load(embeddings_path, mmap_mode="r")
        self.expansion_search = expansion_search
        self._hnsw_path = hnsw_path if hnsw_path is not None and hnsw_path.is_file() and len(self.embeddings) \
            else None
        self._hnsw = None

    @property
    def has_hnsw(self) -> bool:
        return self._hnsw_path is not None

    @property
    def hnsw(self):
        """The usearch index (None when the index was built without one)."""
        if self._hnsw is None and self._hnsw_path is not None:
            index = _usearch_index().restore(str(self._hnsw_path), view=True)
            index.expansion_search = self.expansion_search
            self._hnsw = index
        return self._hnsw

    def search(self, query_vector: np.ndarray, k: int, approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if approximate and self.has_hnsw:
            matches = self.hnsw.search(np.asarray(query_vector, dtype=np.float32), min(k, len(self.embeddings)))
            keys = np.asarray(matches.keys, dtype=np.int64)
            scores = 1.0 - np.asarray(matches.distances, dtype=np.float32)  # usearch "ip" distance = 1 - dot
            return keys, scores
        return _top_k(np.asarray(self.embeddings @ np.asarray(query_vector, dtype=np.float32)), k)
