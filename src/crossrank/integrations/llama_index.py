"""A LlamaIndex node postprocessor: rerank retrieved nodes and keep the ``top_n``.

    from crossrank.integrations.llama_index import CrossrankRerank

    query_engine = index.as_query_engine(similarity_top_k=50, node_postprocessors=[CrossrankRerank(top_n=5)])

As LlamaIndex's own rerankers do, each kept ``NodeWithScore`` carries the new score (the probability) in
``score``; the async path (``apostprocess_nodes``) calls a server without blocking the event loop.
"""

from __future__ import annotations

from typing import Any

from crossrank.errors import BackendUnavailableError, InvalidInputError
from crossrank.integrations.backend import RerankBackend

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised when the extra is missing
    raise BackendUnavailableError("the LlamaIndex integration needs llama-index-core: pip install "
                                  f"'crossrank[llama-index]' ({exc.name} is missing)") from None


class CrossrankRerank(BaseNodePostprocessor):
    """Rerank LlamaIndex nodes (their text, without metadata) with a crossrank cross-encoder."""

    top_n: int = Field(default=2, description="Nodes kept.")
    model: str | None = Field(default=None, description="Folder, hub id or shipped name; None: the default.")
    url: str | None = Field(default=None, description="Or the URL of a crossrank serve.")
    api_key: str | None = Field(default=None, description="The server's API key.")
    chunking: bool = Field(default=False, description="Long nodes by their best window.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="CrossEncoder options.")
    _backend: RerankBackend = PrivateAttr()

    def __init__(self, **data: Any):
        super().__init__(**data)
        self._backend = RerankBackend(self.model, self.url, self.api_key, dict(self.model_kwargs), self.chunking)

    @classmethod
    def class_name(cls) -> str:
        return "CrossrankRerank"

    @staticmethod
    def _inputs(nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> tuple[str, list[str]]:
        if query_bundle is None:
            raise InvalidInputError("CrossrankRerank needs the query: pass query_bundle or query_str")
        return query_bundle.query_str, [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]

    @staticmethod
    def _keep(nodes: list[NodeWithScore], ranked: list[tuple[int, float]]) -> list[NodeWithScore]:
        return [NodeWithScore(node=nodes[index].node, score=probability) for index, probability in ranked]

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
                           ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, texts = self._inputs(nodes, query_bundle)
        return self._keep(nodes, self._backend.rank(query, texts, self.top_n))

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
                                  ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query, texts = self._inputs(nodes, query_bundle)
        return self._keep(nodes, await self._backend.arank(query, texts, self.top_n))
