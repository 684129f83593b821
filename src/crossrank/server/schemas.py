"""Typed request and response bodies of the three API shapes, validated in one place.

Unknown fields are refused (422), so a typo such as ``top_k`` for ``top_n`` is an error instead of a
silently ignored option; the optional fields Cohere and Jina clients send are all declared.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TextObject(BaseModel):
    model_config = ConfigDict(extra="allow")  # Cohere v1 documents may carry other fields (rank_fields)
    text: str


class CohereRerankRequest(BaseModel):
    """Cohere /v1/rerank and /v2/rerank; Jina clients send the same fields."""

    model_config = ConfigDict(extra="forbid")
    query: str
    documents: list[str | TextObject]
    model: str | None = None
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    max_tokens_per_doc: int | None = Field(default=None, ge=1)
    rank_fields: list[str] | None = None
    max_chunks_per_doc: int | None = None
    truncation: bool | None = None  # Jina


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, str] | None = None
    scored_by: Literal["main", "fallback"] | None = None  # only from a server with a fallback model


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: dict[str, Any]
    model: str | None = None  # Jina's response carries the model
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


class ErrorBody(BaseModel):
    error: str
    error_type: str
