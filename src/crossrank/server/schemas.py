"""Typed request and response bodies of every API shape, validated in one place.

Unknown fields are refused (422), so a typo such as ``top_k`` for ``top_n`` is an error instead of a
silently ignored option; the optional fields each shape's clients send are all declared, and the few
aliases are documented where they are declared.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class TextObject(BaseModel):
    """A structured document: ``text``, or any fields ranked by ``rank_fields`` (Cohere v1)."""

    model_config = ConfigDict(extra="allow")
    text: str | None = None


class CohereRerankRequest(BaseModel):
    """Cohere /v1/rerank and /v2/rerank; Jina clients send the same fields."""

    model_config = ConfigDict(extra="forbid")
    query: str
    documents: list[str | TextObject]
    model: str | None = None
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    max_tokens_per_doc: int | None = Field(default=None, ge=1)
    rank_fields: list[str] | None = Field(default=None, min_length=1)  # Cohere v1: fields of dict documents
    max_chunks_per_doc: int | None = Field(default=None, ge=1)  # Cohere v1: long documents by their best chunk
    return_best_chunk: bool = False  # crossrank: each result's best chunk (character span)
    truncation: bool | None = None  # Jina: false refuses (413) documents longer than the model's window


class VLLMRerankRequest(CohereRerankRequest):
    """vLLM's /rerank (Jina shape, documents returned unless told otherwise). ``truncate_prompt_tokens`` is
    an alias of ``max_tokens_per_doc`` (vLLM counts the query too; crossrank caps the query separately)."""

    return_documents: bool = True
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None
    scored_by: Literal["main", "fallback"] | None = None  # only from a server with a fallback model
    best_chunk: dict[str, int] | None = None  # with return_best_chunk: {"start", "end", "chunks"}


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: dict[str, Any] | None = None  # Cohere
    model: str | None = None  # Jina and vLLM carry the model
    usage: dict[str, int] | None = None  # and token usage


class TEIRerankRequest(BaseModel):
    """Hugging Face text-embeddings-inference /rerank."""

    model_config = ConfigDict(extra="forbid")
    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool | None = None
    truncation_direction: Literal["right", "left", "Right", "Left"] = "right"


class TEIResult(BaseModel):
    index: int
    score: float
    text: str | None = None
    scored_by: Literal["main", "fallback"] | None = None  # only from a server with a fallback model


def _rerank_shape(body: Any) -> str:
    """/rerank serves TEI (``texts``) and vLLM/Jina (``documents``) clients: the body says which."""
    return "vllm" if isinstance(body, dict) and "documents" in body and "texts" not in body else "tei"


PlainRerankRequest = Annotated[Annotated[TEIRerankRequest, Tag("tei")] | Annotated[VLLMRerankRequest, Tag("vllm")],
                               Discriminator(_rerank_shape)]


class ScoreRequest(BaseModel):
    """vLLM /score and /v1/score: ``text_1`` against each ``text_2`` (or pairwise when both are lists)."""

    model_config = ConfigDict(extra="forbid")
    text_1: str | list[str]
    text_2: str | list[str]
    model: str | None = None
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)  # alias of max_tokens_per_doc
    encoding_format: str | None = None  # accepted for vLLM clients; scores are always floats
    user: str | None = None


class ScoreItem(BaseModel):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ScoreItem]
    usage: dict[str, int]


class VoyageRerankRequest(BaseModel):
    """Voyage AI /v1/rerank, served at /voyage/v1/rerank (its path /v1/rerank is Cohere's here)."""

    model_config = ConfigDict(extra="forbid")
    query: str
    documents: list[str]
    model: str | None = None
    top_k: int | None = Field(default=None, ge=1)
    truncation: bool = True  # false: documents longer than the model's window are refused (413)
    return_documents: bool = False


class VoyageResult(BaseModel):
    index: int
    relevance_score: float
    document: str | None = None
    scored_by: Literal["main", "fallback"] | None = None


class VoyageRerankResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[VoyageResult]
    model: str
    usage: dict[str, int]


class ErrorBody(BaseModel):
    error: str
    error_type: str
