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


def validate_text(text: str, what: str) -> str:
    """A text must be valid Unicode: JSON's ``"\\ud800"`` escape yields a lone surrogate, which no
    tokenizer can read and which cannot be written back as UTF-8."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(f"{what} contains a lone surrogate (U+{ord(text[exc.start]):04X}) at character "
                                    f"{exc.start}: not valid Unicode") from None
    return text


def validate_query(query: Any) -> str:
    """A query must be a non-blank string of valid Unicode."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty")
    return validate_text(query, "query")


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
            texts.append(validate_text(doc, f"document {position}"))
            ids.append(None)
        elif isinstance(doc, Mapping):
            text = doc.get("text")
            if not isinstance(text, str):
                raise InvalidInputError(f"document {position} needs a string 'text' field")
            doc_id = doc.get("id")
            if doc_id is not None and not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
                raise InvalidInputError(f"document {position} has an 'id' that is not a string or integer")
            texts.append(validate_text(text, f"document {position}"))
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
