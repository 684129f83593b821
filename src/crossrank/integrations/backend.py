"""What the framework integrations share: rank texts for a query with a local model or a remote server.

Local: a ``CrossEncoder`` (loaded on first use, so building a pipeline stays cheap). Remote: a
``crossrank serve`` URL, called on its Cohere v2 route with the API key. Both give ``(index, probability)``
pairs, best first: the probability is the score each framework shows (``relevance_score``), the same on
every surface for the same model and pair.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from crossrank.errors import BackendUnavailableError, CrossrankError, InvalidInputError

REMOTE_TIMEOUT_S = 60.0


@dataclass
class RerankBackend:
    """``model``: a folder, hub id or shipped name (None: the shipped default); or ``url`` (+ ``api_key``) of
    a ``crossrank serve``. ``model_kwargs`` go to ``CrossEncoder`` (device, backend, dtype, ...)."""

    model: str | None = None
    url: str | None = None
    api_key: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    chunking: bool = False  # long documents by their best window (local and remote alike)
    _encoder: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self):
        if self.url is not None and self.model is not None:
            raise InvalidInputError("give a local model or the url of a crossrank server, not both")

    @property
    def encoder(self):
        """The local ``CrossEncoder``, loaded once."""
        with self._lock:
            if self._encoder is None:
                from crossrank.cross_encoder import CrossEncoder

                self._encoder = CrossEncoder(self.model, **self.model_kwargs)
            return self._encoder

    def rank(self, query: str, texts: list[str], top_n: int | None = None) -> list[tuple[int, float]]:
        if not texts:
            return []
        if self.url is None:
            results = self.encoder.rerank(query, texts, top_n, return_documents=False, chunking=self.chunking)
            return [(r.index, r.probability) for r in results]
        import httpx

        url, kwargs = self._request(query, texts, top_n)
        with httpx.Client(timeout=REMOTE_TIMEOUT_S) as client:
            return self._parse(client.post(url, **kwargs))

    async def arank(self, query: str, texts: list[str], top_n: int | None = None) -> list[tuple[int, float]]:
        """The same, without blocking the event loop: an async HTTP call, or the local model on a thread."""
        if not texts:
            return []
        if self.url is None:
            import asyncio

            return await asyncio.to_thread(self.rank, query, texts, top_n)
        import httpx

        async with httpx.AsyncClient(timeout=REMOTE_TIMEOUT_S) as client:
            url, kwargs = self._request(query, texts, top_n)
            return self._parse(await client.post(url, **kwargs))

    def _request(self, query: str, texts: list[str], top_n: int | None):
        try:
            import httpx  # noqa: F401
        except ImportError:
            raise BackendUnavailableError("a remote crossrank server needs httpx: pip install httpx") from None
        body: dict[str, Any] = {"query": query, "documents": texts}
        if top_n is not None:
            body["top_n"] = top_n
        if not self.chunking:
            body["max_chunks_per_doc"] = 1
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return f"{self.url.rstrip('/')}/v2/rerank", {"json": body, "headers": headers}

    @staticmethod
    def _parse(response) -> list[tuple[int, float]]:
        if response.status_code != 200:
            try:
                detail = response.json().get("error", response.text)
            except ValueError:
                detail = response.text
            raise CrossrankError(f"crossrank server answered {response.status_code}: {detail}")
        return [(r["index"], float(r["relevance_score"])) for r in response.json()["results"]]
