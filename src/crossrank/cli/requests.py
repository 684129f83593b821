"""Parse and validate ``crossrank rerank`` JSONL requests, one line at a time, with line numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

from crossrank.errors import InvalidInputError
from crossrank.ranking.inputs import Documents, normalize_documents, validate_query, validate_top_k


@dataclass
class RerankRequest:
    """One valid input line."""

    line: int
    query: str
    documents: Documents
    top_k: int | None
    echo: dict[str, Any]  # request fields copied to the output (qid, id)


@dataclass
class InvalidLine:
    """One input line that could not be used, and why."""

    line: int
    error: str


_ECHOED = ("qid", "id")


def parse_line(raw: bytes, line: int, default_top_k: int | None) -> RerankRequest:
    """Decode, parse and validate one line; every problem raises InvalidInputError naming it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise InvalidInputError(f"expected a JSON object, got {type(obj).__name__}")
    if "query" not in obj:
        raise InvalidInputError("missing field 'query'")
    if "documents" not in obj:
        raise InvalidInputError("missing field 'documents'")
    top_k = validate_top_k(obj.get("top_k", default_top_k))
    return RerankRequest(
        line=line,
        query=validate_query(obj["query"]),
        documents=normalize_documents(obj["documents"]),
        top_k=top_k,
        echo={key: obj[key] for key in _ECHOED if key in obj},
    )


def read_requests(stream: BinaryIO, default_top_k: int | None) -> Iterator[RerankRequest | InvalidLine]:
    """Yield a request or an InvalidLine for every non-blank line (line numbers start at 1)."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            yield parse_line(raw.rstrip(b"\r\n"), number, default_top_k)
        except InvalidInputError as exc:
            yield InvalidLine(number, str(exc))
