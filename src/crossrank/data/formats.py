"""Readers and writers for the files IR people exchange: BEIR JSONL/TSV, TREC qrels and runs.

Every reader names the file, the line and the problem when a file is malformed, and reports duplicate
(query, document) rows instead of merging them silently: the first row is kept and the duplicates are
listed on the returned object (and logged).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from crossrank.errors import InvalidInputError

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]  # query id -> document id -> relevance grade
Run = dict[str, dict[str, float]]  # query id -> document id -> score (higher is better)


class FormatError(InvalidInputError):
    """A file does not follow its format; the message names file, line and problem."""


@dataclass
class Document:
    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        """Title and text as one passage, the way BEIR rerankers read them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass
class Duplicate:
    query_id: str
    doc_id: str
    line: int  # the ignored row
    first_line: int  # the row that was kept


@dataclass
class QrelsFile:
    qrels: Qrels
    duplicates: list[Duplicate] = field(default_factory=list)


@dataclass
class RunFile:
    run: Run
    duplicates: list[Duplicate] = field(default_factory=list)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    path = Path(path)
    if path.is_dir():
        raise FormatError(f"{path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise FormatError(f"{path}:{number}: not valid UTF-8") from None


def _json_objects(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise FormatError(f"{path}:{number}: expected a JSON object")
        for key in required:
            if not isinstance(obj.get(key), (str, int)) or isinstance(obj.get(key), bool):
                raise FormatError(f"{path}:{number}: missing or non-string field {key!r}")
        yield number, obj


def read_corpus(path: Path, ids: set[str] | None = None) -> dict[str, Document]:
    """BEIR corpus.jsonl: {"_id", "title"?, "text"} per line; with ``ids``, keep only those documents."""
    corpus: dict[str, Document] = {}
    for number, obj in _json_objects(path, ("_id",)):
        doc_id = str(obj["_id"])
        if ids is not None and doc_id not in ids:
            continue
        text, title = obj.get("text", ""), obj.get("title") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise FormatError(f"{path}:{number}: 'text' and 'title' must be strings")
        if doc_id in corpus:
            raise FormatError(f"{path}:{number}: duplicate document id {doc_id!r}")
        corpus[doc_id] = Document(doc_id, title, text)
    return corpus


def read_queries(path: Path) -> dict[str, str]:
    """BEIR queries.jsonl: {"_id", "text"} per line."""
    queries: dict[str, str] = {}
    for number, obj in _json_objects(path, ("_id", "text")):
        qid = str(obj["_id"])
        if qid in queries:
            raise FormatError(f"{path}:{number}: duplicate query id {qid!r}")
        queries[qid] = str(obj["text"])
    return queries


def _table(path: Path, widths: dict[int, str]) -> Iterator[tuple[int, list[str]]]:
    """Rows of a whitespace/tab table as (line number, fields); skips blank lines and a BEIR header."""
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
        if number == 1 and fields[0].lower() in ("query-id", "query_id", "qid"):
            continue
        if len(fields) not in widths:
            expected = " or ".join(f"{n} ({name})" for n, name in widths.items())
            raise FormatError(f"{path}:{number}: expected {expected} columns, got {len(fields)}")
        yield number, fields


def _number(path: Path, number: int, value: str, what: str) -> float:
    try:
        parsed = float(value)
    except ValueError:
        raise FormatError(f"{path}:{number}: {what} {value!r} is not a number") from None
    if math.isnan(parsed):
        raise FormatError(f"{path}:{number}: {what} is NaN")
    return parsed


def _grade(path: Path, number: int, value: str) -> int:
    """A relevance grade is a finite whole number: 1.5 is refused, not silently truncated to 1."""
    grade = _number(path, number, value, "relevance")
    if not math.isfinite(grade) or grade != int(grade):
        raise FormatError(f"{path}:{number}: relevance {value!r} is not a whole number")
    return int(grade)


def _collect(path: Path, rows: Iterator[tuple[int, str, str, float]]) -> tuple[dict, list[Duplicate]]:
    """Group (line, query, doc, value) rows by query; the first of duplicate (query, doc) rows wins."""
    table: dict[str, dict] = {}
    seen: dict[tuple[str, str], int] = {}
    duplicates: list[Duplicate] = []
    for number, qid, doc_id, value in rows:
        if (qid, doc_id) in seen:
            duplicates.append(Duplicate(qid, doc_id, number, seen[(qid, doc_id)]))
            continue
        seen[(qid, doc_id)] = number
        table.setdefault(qid, {})[doc_id] = value
    _report(path, duplicates)
    return table, duplicates


def read_qrels(path: Path) -> QrelsFile:
    """BEIR TSV (header ``query-id corpus-id score``) or TREC (``qid 0 docid grade``), detected per file."""
    def rows():
        for number, fields in _table(path, {3: "BEIR", 4: "TREC"}):
            qid, doc_id, grade = (fields[0], fields[1], fields[2]) if len(fields) == 3 else (fields[0], *fields[2:])
            yield number, qid, doc_id, _grade(path, number, grade)

    return QrelsFile(*_collect(path, rows()))


def read_run(path: Path) -> RunFile:
    """TREC six columns (``qid Q0 docid rank score tag``) or TSV with header (``query-id corpus-id rank score``)."""
    def rows():
        for number, fields in _table(path, {6: "TREC", 4: "TSV"}):
            qid, doc_id, score = (fields[0], fields[2], fields[4]) if len(fields) == 6 else \
                (fields[0], fields[1], fields[3])
            yield number, qid, doc_id, _number(path, number, score, "score")

    return RunFile(*_collect(path, rows()))


def ranked(scores: dict[str, float]) -> list[str]:
    """Document ids best first, ties broken as trec_eval does (document id, descending)."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write ``lines`` (each ending in a newline) to ``path`` atomically: a temporary file beside it is
    renamed over it only once complete, so a failed write never leaves half a file (parents are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_trec_run(run: Run, path: Path, tag: str = "crossrank") -> None:
    """TREC six columns, rank from 1 in trec_eval order; written atomically."""
    write_lines(path, (f"{qid} Q0 {doc_id} {rank} {float(run[qid][doc_id])!r} {tag}\n"
                       for qid in run for rank, doc_id in enumerate(ranked(run[qid]), start=1)))


QRELS_FORMATS = ("trec", "beir")


def write_qrels(qrels: Qrels, path: Path, format: str = "trec") -> None:
    """TREC (``qid 0 docid grade``) or BEIR TSV (header ``query-id corpus-id score``); written atomically,
    so an existing file is replaced only by a complete one."""
    if format not in QRELS_FORMATS:
        raise InvalidInputError(f"unknown qrels format {format!r}: use trec or beir")
    rows = ((qid, doc_id, int(grade)) for qid, docs in qrels.items() for doc_id, grade in docs.items())
    if format == "beir":
        write_lines(path, ["query-id\tcorpus-id\tscore\n", *(f"{q}\t{d}\t{g}\n" for q, d, g in rows)])
    else:
        write_lines(path, (f"{q} 0 {d} {g}\n" for q, d, g in rows))


def _report(path: Path, duplicates: list[Duplicate]) -> None:
    if duplicates:
        first = duplicates[0]
        logger.warning("%s: %d duplicate (query, document) rows ignored, e.g. line %d repeats (%s, %s) of line %d",
                       path, len(duplicates), first.line, first.query_id, first.doc_id, first.first_line)
