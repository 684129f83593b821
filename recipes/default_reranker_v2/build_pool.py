"""The pseudo-pair pool of default reranker v2: queries x candidates, scored by every teacher.

Queries: MS MARCO dev-small (6,980 real Bing queries) and WikiQA train questions. Candidates of an MS MARCO
query: the BM25 top ``--depth`` over the TREC DL 2020 + DL 2021 passage pools (their judgments are never
read). Candidates of a WikiQA question: its own judged sentences. Every (query, candidate) pair gets each
teacher's score (cosine), cached per text, and is written as one JSON line per query:
``{"query", "documents", "teachers": {name: [scores]}, "source"}``. The ensemble and the distillation read
this file; nothing here depends on DL 2020's judgments.

    python recipes/default_reranker_v2/build_pool.py --teachers-dir ../teachers --output ../runs/v2/pool.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from teachers import ROOT, TEACHERS, BiEncoderTeacher  # noqa: E402


def msmarco_groups(data: Path, depth: int, limit: int | None, seed: int, quora: int = 0) -> list[dict]:
    """Dev-small queries against the DL passage pools, BM25 top ``depth`` each; with ``quora`` > 0, also that
    many Quora questions of its train pairs (real user questions, another source of web-like needs: the
    pseudo-query pool a GPU run can afford)."""
    import tempfile

    from crossrank.data.formats import read_corpus, read_queries
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.retriever import Retriever

    corpus = {}
    for name in ("trec-dl-2020", "trec-dl-2021"):
        corpus.update(read_corpus(data / name / "corpus.jsonl"))
    queries = {q: t for q, t in read_queries(data / "msmarco-dev-small" / "queries.jsonl").items() if t.strip()}
    qids = sorted(queries)
    if limit is not None and len(qids) > limit:
        qids = sorted(random.Random(seed).sample(qids, limit))
    wanted = [(queries[q], "msmarco-dev-small") for q in qids]
    wanted += [(t, "quora-train") for t in quora_questions(data, quora, seed)]
    groups = []
    with tempfile.TemporaryDirectory() as tmp:
        index = CollectionIndex.create(Path(tmp) / "bm25", IndexSettings(BM25Settings()))
        index.replace_all(corpus.values())
        retriever = Retriever(index, "bm25")
        for text, source in wanted:
            hits = retriever.retrieve(text, depth)
            if len(hits) >= 4:
                groups.append({"query": text, "documents": [corpus[h.id].full_text for h in hits], "source": source})
        index.store.close()
    return groups


def quora_questions(data: Path, count: int, seed: int) -> list[str]:
    """``count`` distinct questions of Quora's train pairs (never dev or test), CoreNLP spacing undone."""
    import csv
    import re

    path = data / "quora-duplicates" / "pairs" / "train.tsv"
    if count <= 0 or not path.is_file():
        return []
    seen: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            for text in (row["q1"], row["q2"]):
                text = re.sub(r" ([?.,!;:'](?:s |t |re |ve |ll |d |m )?)", r"\1", text.strip())
                text = text.replace("-LRB- ", "(").replace(" -RRB-", ")").replace("``", '"').replace("''", '"')
                if text and text.lower() not in seen:
                    seen[text.lower()] = text
    questions = sorted(seen.values())
    return sorted(random.Random(seed).sample(questions, min(count, len(questions))))


def wikiqa_groups(data: Path) -> list[dict]:
    """WikiQA train questions with their candidate sentences (labels kept for the fine-tuning stage)."""
    from crossrank.data.formats import read_corpus, read_qrels, read_queries

    folder = data / "wikiqa"
    qrels = read_qrels(folder / "qrels" / "train.tsv").qrels
    queries = read_queries(folder / "queries.jsonl")
    corpus = read_corpus(folder / "corpus.jsonl", {d for docs in qrels.values() for d in docs})
    groups = []
    for qid in sorted(qrels):
        docs = [d for d in sorted(qrels[qid]) if d in corpus]
        if len(docs) >= 2 and qid in queries:
            groups.append({"query": queries[qid], "documents": [corpus[d].full_text for d in docs],
                           "judgments": [int(qrels[qid][d]) for d in docs], "source": "wikiqa-train"})
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--teachers-dir", type=Path, required=True)
    parser.add_argument("--teachers", nargs="+", default=list(TEACHERS))
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--msmarco-queries", type=int, default=None, help="a sample of dev-small (default: all)")
    parser.add_argument("--quora-queries", type=int, default=0,
                        help="also this many Quora train questions as pseudo-queries (for a GPU run; default none)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "recipe-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    groups = msmarco_groups(args.data, args.depth, args.msmarco_queries, args.seed, args.quora_queries)
    if (args.data / "wikiqa").is_dir():
        groups += wikiqa_groups(args.data)
    pairs = [(g["query"], d) for g in groups for d in g["documents"]]
    print(f"{len(groups)} queries, {len(pairs)} pairs", file=sys.stderr, flush=True)
    for name in args.teachers:
        scores = BiEncoderTeacher(TEACHERS[name], args.teachers_dir, args.cache).score(pairs)
        start = 0
        for group in groups:
            group.setdefault("teachers", {})[name] = [round(float(s), 5) for s in
                                                     scores[start:start + len(group["documents"])]]
            start += len(group["documents"])
        print(f"teacher {name}: done", file=sys.stderr, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for group in groups:
            out.write(json.dumps(group) + "\n")
    tmp.replace(args.output)
    print(json.dumps({"queries": len(groups), "pairs": len(pairs)}))


if __name__ == "__main__":
    main()
