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
    return_documents: bool | None = None  # None: the --return-documents flag decides
    max_tokens_per_doc: int | None = None  # cut each document to this many tokens before scoring


@dataclass
class InvalidLine:
    """One input line that could not be used, and why."""

    line: int
    error: str


_ECHOED = ("qid", "id")
# Every field a request line may carry. The Cohere / Jina spellings the HTTP service takes are accepted
# with the same meaning (top_n = top_k; model is ignored: --model decides); anything else is refused, as
# the service refuses it, so a typo never silently changes the answer.
KNOWN_FIELDS = ("query", "documents", "top_k", "top_n", "return_documents", "max_tokens_per_doc", "model", *_ECHOED)


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
    except RecursionError:  # e.g. 100,000 nested brackets
        raise InvalidInputError("invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise InvalidInputError(f"expected a JSON object, got {type(obj).__name__}")
    if "query" not in obj:
        raise InvalidInputError("missing field 'query'")
    if "documents" not in obj:
        raise InvalidInputError("missing field 'documents'")
    unknown = [key for key in obj if key not in KNOWN_FIELDS]
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0]!r}; a request may have {', '.join(KNOWN_FIELDS)}")
    if "top_k" in obj and "top_n" in obj and obj["top_k"] != obj["top_n"]:
        raise InvalidInputError("top_k and top_n (its Cohere spelling) disagree; give one")
    top_k = validate_top_k(obj.get("top_k", obj.get("top_n", default_top_k)))
    return_documents = obj.get("return_documents")
    if return_documents is not None and not isinstance(return_documents, bool):
        raise InvalidInputError(f"return_documents must be true or false, got {return_documents!r}")
    max_tokens = obj.get("max_tokens_per_doc")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidInputError(f"max_tokens_per_doc must be a positive integer, got {max_tokens!r}")
    if obj.get("model") is not None and not isinstance(obj["model"], str):
        raise InvalidInputError("model must be a string")
    return RerankRequest(
        line=line,
        query=validate_query(obj["query"]),
        documents=normalize_documents(obj["documents"]),
        top_k=top_k,
        echo={key: obj[key] for key in _ECHOED if key in obj},
        return_documents=return_documents,
        max_tokens_per_doc=max_tokens,
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
