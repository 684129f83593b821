"""Validation of what callers hand to a rerank, in one place for the Python API, CLI and HTTP server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

from crossrank.errors import InvalidInputError


@dataclass
class Documents:
    """Candidate documents split into their texts and optional ids."""

    texts: list[str]
    ids: list[str | None]


def validate_query(query: Any) -> str:
    """A query must be a non-blank string."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty")
    return query


def normalize_documents(documents: Any) -> Documents:
    """Accept strings or {"text", "id"?} objects; refuse empty lists and anything else by position."""
    if isinstance(documents, Documents):
        if not documents.texts:
            raise InvalidInputError("documents is empty: nothing to rerank")
        return documents
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise InvalidInputError(f"documents must be a list, got {type(documents).__name__}")
    if len(documents) == 0:
        raise InvalidInputError("documents is empty: nothing to rerank")
    texts: list[str] = []
    ids: list[str | None] = []
    for position, doc in enumerate(documents):
        if isinstance(doc, str):
            texts.append(doc)
            ids.append(None)
        elif isinstance(doc, Mapping):
            text = doc.get("text")
            if not isinstance(text, str):
                raise InvalidInputError(f"document {position} needs a string 'text' field")
            doc_id = doc.get("id")
            if doc_id is not None and not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
                raise InvalidInputError(f"document {position} has an 'id' that is not a string or integer")
            texts.append(text)
            ids.append(None if doc_id is None else str(doc_id))
        else:
            raise InvalidInputError(
                f"document {position} is {type(doc).__name__}; expected a string or an object with 'text'"
            )
    return Documents(texts, ids)


def validate_top_k(top_k: Any) -> int | None:
    """None keeps every document; otherwise a positive integer."""
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidInputError(f"top_k must be a positive integer or null, got {top_k!r}")
    return top_k
