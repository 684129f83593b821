"""Training data from a BEIR folder (judgments + BM25 hard negatives) or from JSONL, and a dev evaluator."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Callable

from crossrank.data.formats import FormatError, read_corpus, read_qrels, read_queries
from crossrank.evaluation.metrics import evaluate
from crossrank.training.negatives import TrainingGroup, build_groups, mine_hard_negatives


def bm25_candidates(corpus_path: Path, queries: dict[str, str], depth: int) -> dict[str, list[str]]:
    """Each query's BM25 top ``depth`` over the corpus, from a temporary crossrank index."""
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.retriever import Retriever

    with tempfile.TemporaryDirectory() as tmp:
        index = CollectionIndex.create(Path(tmp) / "bm25", IndexSettings(BM25Settings()))
        index.replace_all(read_corpus(corpus_path).values())
        retriever = Retriever(index, "bm25")
        out = {qid: [c.id for c in retriever.retrieve(text, depth)] for qid, text in queries.items() if text.strip()}
        index.store.close()
    return out


def groups_from_beir(folder: Path, split: str, negatives: int, rank_range: tuple[int, int],
                     relevance_level: int = 1, seed: int = 0, max_positives: int | None = None,
                     positive_depth: int | None = None) -> list[TrainingGroup]:
    """Groups of judged positive + BM25 hard negatives. ``positive_depth`` keeps only positives that BM25
    ranks within its top ``positive_depth``: the ones a reranker of that first stage ever sees (on
    NFCorpus most judged documents share no words with the query and only add noise)."""
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv").qrels
    queries = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels}
    candidates = bm25_candidates(folder / "corpus.jsonl", queries, max(rank_range[1], positive_depth or 0))
    mined = mine_hard_negatives(candidates, qrels, negatives, rank_range, relevance_level, seed)
    positives = qrels
    if positive_depth:
        retrieved = {q: set(ranking[:positive_depth]) for q, ranking in candidates.items()}
        positives = {q: {d: g for d, g in judged.items() if d in retrieved.get(q, ())} for q, judged in qrels.items()}
    texts = {d.id: d.full_text for d in read_corpus(folder / "corpus.jsonl").values()}
    return build_groups(queries, texts, positives, mined, relevance_level, max_positives, seed)


def groups_from_jsonl(path: Path) -> list[TrainingGroup]:
    """Lines of {"query", "documents", "labels"} (labels or teacher scores), {"query", "positive",
    "negative"(s)} triples, or {"query", "document", "label"} pairs (each pair its own group, for BCE)."""
    groups = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                query = obj["query"]
                if "documents" in obj:
                    docs, labels = list(obj["documents"]), [float(x) for x in obj["labels"]]
                elif "positive" in obj:
                    negs = obj.get("negatives") or [obj["negative"]]
                    docs, labels = [obj["positive"], *negs], [1.0] + [0.0] * len(negs)
                else:
                    docs, labels = [obj["document"]], [float(obj["label"])]
                if not isinstance(query, str) or len(docs) != len(labels) or not docs:
                    raise ValueError("query must be a string and documents and labels must match")
            except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
                raise FormatError(f"{path}:{number}: not a training example ({exc})") from None
            groups.append(TrainingGroup(str(number), query, docs, labels))
    return groups


def read_labelled_pairs(path: Path) -> list[tuple[str, str, str, float]]:
    """Rows ``(id, text1, text2, label)`` of a labelled-pair TSV with a header (Quora's ``id q1 q2 label``,
    STS-B's ``id s1 s2 score``), read without quote handling (a field may begin with a quote); a malformed
    row, an empty text or a negative or non-numeric label is a ``FormatError`` naming the line."""
    import csv

    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or len(header) != 4:
            raise FormatError(f"{path}:1: expected a header of 4 tab-separated columns (id, text1, text2, label)")
        for number, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != 4:
                raise FormatError(f"{path}:{number}: expected 4 tab-separated columns, got {len(fields)}")
            pair_id, first, second, label = fields
            try:
                value = float(label)
            except ValueError:
                raise FormatError(f"{path}:{number}: label {label!r} is not a number") from None
            if not first.strip() or not second.strip():
                raise FormatError(f"{path}:{number}: empty text")
            if value < 0 or value != value:
                raise FormatError(f"{path}:{number}: label {label!r} must be 0 or more")
            rows.append((pair_id, first, second, value))
    return rows


def groups_from_pairs(path: Path, both_orders: bool = True) -> list[TrainingGroup]:
    """Labelled text pairs for a pair classifier (duplicate questions, paraphrases), read by
    ``read_labelled_pairs``. Labels 0/1, or graded scores divided by the largest (STS-B's 0-5 become 0-1). Each pair is a group of one for BCE, in both orders when ``both_orders`` (a
    cross-encoder is not symmetric; duplicates are)."""
    rows = read_labelled_pairs(path)
    top = max((r[3] for r in rows), default=1.0)
    scale = top if top > 1.0 else 1.0
    groups = []
    for pair_id, first, second, value in rows:
        groups.append(TrainingGroup(pair_id, first, [second], [value / scale]))
        if both_orders:
            groups.append(TrainingGroup(f"{pair_id}:reversed", second, [first], [value / scale]))
    return groups


def dev_ndcg(folder: Path, split: str, depth: int = 50, max_queries: int = 100, seed: int = 0
             ) -> Callable[[Callable], float]:
    """A dev metric for the trainer: nDCG@10 of reranking each dev query's BM25 top ``depth``."""
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv").qrels
    queries = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels}
    if len(queries) > max_queries:
        keep = random.Random(seed).sample(sorted(queries), max_queries)
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    candidates = bm25_candidates(folder / "corpus.jsonl", queries, depth)
    needed = {d for docs in candidates.values() for d in docs}
    texts = {d.id: d.full_text for d in read_corpus(folder / "corpus.jsonl", ids=needed).values()}

    def metric(score) -> float:
        pairs = [(queries[q], texts[d]) for q, docs in candidates.items() for d in docs]
        scores = score(pairs)
        run, offset = {}, 0
        for q, docs in candidates.items():
            run[q] = {d: float(s) for d, s in zip(docs, scores[offset:offset + len(docs)])}
            offset += len(docs)
        return evaluate(qrels, run, ["ndcg@10"]).metrics["ndcg@10"]

    return metric
