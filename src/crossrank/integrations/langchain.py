"""A LangChain document compressor: keep the ``top_n`` documents most relevant to the query.

    from crossrank.integrations.langchain import CrossrankReranker
    from langchain_classic.retrievers import ContextualCompressionRetriever   # langchain.retrievers before 1.0

    reranker = CrossrankReranker(top_n=5)                        # the shipped default, offline
    reranker = CrossrankReranker(url="http://127.0.0.1:8080", api_key=KEY)   # a crossrank serve
    retriever = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=my_retriever)

As LangChain's own rerankers do, each kept document is a copy with ``metadata["relevance_score"]`` (the
probability); the input documents are not changed. ``acompress_documents`` is truly async for a server.
"""

from __future__ import annotations

from typing import Any, Sequence

from crossrank.errors import BackendUnavailableError
from crossrank.integrations.backend import RerankBackend

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
except ImportError as exc:  # pragma: no cover - exercised when the extra is missing
    raise BackendUnavailableError("the LangChain integration needs langchain-core: pip install "
                                  f"'crossrank[langchain]' ({exc.name} is missing)") from None
from pydantic import ConfigDict, PrivateAttr


class CrossrankReranker(BaseDocumentCompressor):
    """Rerank LangChain documents by their ``page_content`` with a crossrank cross-encoder."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    top_n: int | None = 3
    model: str | None = None  # folder, hub id or shipped name; None: the shipped default
    url: str | None = None  # or a crossrank serve
    api_key: str | None = None
    chunking: bool = False
    model_kwargs: dict[str, Any] = {}
    _backend: RerankBackend = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._backend = RerankBackend(self.model, self.url, self.api_key, dict(self.model_kwargs), self.chunking)

    def _keep(self, documents: Sequence[Document], ranked: list[tuple[int, float]]) -> list[Document]:
        kept = []
        for index, probability in ranked:
            doc = documents[index]
            kept.append(Document(page_content=doc.page_content, id=doc.id,
                                 metadata={**doc.metadata, "relevance_score": probability}))
        return kept

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        documents = list(documents)
        return self._keep(documents, self._backend.rank(query, [d.page_content for d in documents], self.top_n))

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Callbacks | None = None) -> Sequence[Document]:
        documents = list(documents)
        ranked = await self._backend.arank(query, [d.page_content for d in documents], self.top_n)
        return self._keep(documents, ranked)
