"""``crossrank rerank``: JSONL requests in, ranked JSONL out, batched across requests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO, TextIO

from crossrank.cli.requests import InvalidLine, RerankRequest, read_requests
from crossrank.errors import InvalidInputError
from crossrank.ranking.inputs import Documents

# Requests are scored in groups of about this many pairs: big enough to batch across queries,
# small enough to stream files of any size.
CHUNK_PAIRS = 8192


class InvalidRequestLine(InvalidInputError):
    """A bad input line without --skip-invalid: stops the run (exit code 3)."""


def run_rerank(ce, source: BinaryIO, sink: TextIO, *, top_k: int | None, skip_invalid: bool,
               return_documents: bool, progress, chunking=None) -> tuple[int, int]:
    """Rerank every request in ``source``; return (requests answered, lines skipped). ``chunking``: a
    ``Chunking`` (long documents by their best window; each result gains ``evidence`` and ``chunks``)."""
    answered = skipped = 0
    chunk: list[RerankRequest | InvalidLine] = []
    pairs = 0
    for item in read_requests(source, top_k):
        if isinstance(item, InvalidLine):
            if not skip_invalid:
                answered += _flush(ce, chunk, sink, return_documents, progress, chunking)
                raise InvalidRequestLine(f"line {item.line}: {item.error}")
            print(f"crossrank rerank: line {item.line}: {item.error} (skipped)", file=sys.stderr)
            skipped += 1
        else:
            pairs += len(item.documents.texts)
        chunk.append(item)
        if pairs >= CHUNK_PAIRS:
            answered += _flush(ce, chunk, sink, return_documents, progress, chunking)
            chunk, pairs = [], 0
    answered += _flush(ce, chunk, sink, return_documents, progress, chunking)
    return answered, skipped


def _flush(ce, chunk: list, sink: TextIO, return_documents: bool, progress, chunking=None) -> int:
    """Score the chunk's requests in one engine call and write one line per input line, in order."""
    requests = [item for item in chunk if isinstance(item, RerankRequest)]
    scored = [_cut(ce, r) for r in requests]  # max_tokens_per_doc: what is scored; results show the original
    ranked = iter(ce.rerank_many(
        [r.query for r in requests],
        scored,
        [r.top_k for r in requests],
        return_documents=False,
        progress=progress,
        chunking=chunking,
    ) if requests else [])
    for item in chunk:
        if isinstance(item, InvalidLine):
            sink.write(json.dumps({"line": item.line, "error": item.error}) + "\n")
            continue
        show_text = return_documents if item.return_documents is None else item.return_documents
        results = []
        for result in next(ranked):
            entry = {"index": result.index, "id": result.id, "score": result.score,
                     "probability": result.probability}
            if result.evidence is not None:
                entry["evidence"], entry["chunks"] = list(result.evidence), result.chunks
            if show_text:
                entry["text"] = item.documents.texts[result.index]
            results.append(entry)
        sink.write(json.dumps({**item.echo, "query": item.query, "results": results}, ensure_ascii=False) + "\n")
    sink.flush()
    return len(requests)


def _cut(ce, request: RerankRequest) -> Documents:
    if request.max_tokens_per_doc is None:
        return request.documents
    return Documents([ce.tokenizer.cut_document(t, request.max_tokens_per_doc) for t in request.documents.texts],
                     request.documents.ids)


def open_source(path: Path | None) -> BinaryIO:
    return sys.stdin.buffer if path is None or str(path) == "-" else open(path, "rb")
