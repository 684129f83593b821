"""A Haystack ranker component: rank documents by relevance to the query and keep the ``top_k``.

    from crossrank.integrations.haystack import CrossrankRanker

    pipeline.add_component("ranker", CrossrankRanker(top_k=5))   # after a retriever
    pipeline.connect("retriever.documents", "ranker.documents")
    pipeline.run({"retriever": {"query": q}, "ranker": {"query": q}})

As Haystack's own rankers do, the output documents are copies with ``score`` set (the probability), best
first; ``warm_up()`` loads the local model, ``run_async`` serves async pipelines, and the component
serializes with ``to_dict``/``from_dict`` (the API key is not written out: give it through the
environment variable ``CROSSRANK_API_KEY``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from crossrank.errors import BackendUnavailableError, InvalidInputError
from crossrank.integrations.backend import RerankBackend

try:
    from haystack import Document, component, default_from_dict, default_to_dict
except ImportError as exc:  # pragma: no cover - exercised when the extra is missing
    raise BackendUnavailableError("the Haystack integration needs haystack-ai: pip install "
                                  f"'crossrank[haystack]' ({exc.name} is missing)") from None


@component
class CrossrankRanker:
    """Rank Haystack documents by their ``content`` with a crossrank cross-encoder."""

    def __init__(self, model: str | None = None, top_k: int = 10, url: str | None = None,
                 api_key: str | None = None, score_threshold: float | None = None, chunking: bool = False,
                 model_kwargs: dict[str, Any] | None = None):
        if top_k < 1:
            raise InvalidInputError(f"top_k must be positive, got {top_k}")
        self.model, self.top_k, self.url, self.score_threshold = model, top_k, url, score_threshold
        self.chunking, self.model_kwargs = chunking, dict(model_kwargs or {})
        self._backend = RerankBackend(model, url, api_key or os.environ.get("CROSSRANK_API_KEY"),
                                      self.model_kwargs, chunking)

    def warm_up(self) -> None:
        """Load the local model now rather than on the first query (Haystack calls this before running)."""
        if self.url is None:
            _ = self._backend.encoder

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, model=self.model, top_k=self.top_k, url=self.url,
                               score_threshold=self.score_threshold, chunking=self.chunking,
                               model_kwargs=self.model_kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CrossrankRanker":
        return default_from_dict(cls, data)

    def _inputs(self, documents: list[Document], top_k: int | None) -> tuple[list[int], list[str], int]:
        top_k = self.top_k if top_k is None else top_k
        if top_k < 1:
            raise InvalidInputError(f"top_k must be positive, got {top_k}")
        rows = [i for i, d in enumerate(documents) if d.content is not None]  # e.g. image documents: left out
        return rows, [documents[i].content for i in rows], top_k

    def _output(self, documents: list[Document], rows: list[int], ranked, threshold: float | None):
        threshold = self.score_threshold if threshold is None else threshold
        kept = [replace(documents[rows[index]], score=probability) for index, probability in ranked
                if threshold is None or probability >= threshold]
        return {"documents": kept}

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None,
            score_threshold: float | None = None):
        rows, texts, top_k = self._inputs(documents, top_k)
        return self._output(documents, rows, self._backend.rank(query, texts, top_k), score_threshold)

    @component.output_types(documents=list[Document])
    async def run_async(self, query: str, documents: list[Document], top_k: int | None = None,
                        score_threshold: float | None = None):
        rows, texts, top_k = self._inputs(documents, top_k)
        return self._output(documents, rows, await self._backend.arank(query, texts, top_k), score_threshold)
