"""Training examples for crossrank's default reranker, built only from ../shared/data.

Three sources, written as one shuffled JSONL of {"query", "documents", "labels"} groups (labels are teacher
scores, already divided by the distillation temperature, so the trainer's listwise loss at temperature 1
is listwise KL distillation):

1. Web distillation (most of the data): every MS MARCO dev-small query against the TREC DL 2020 passage
   pool. Candidates are the union of the bi-encoder's and BM25's top 30; the teacher is the
   all-MiniLM-L6-v2 bi-encoder's cosine / 0.05. Each group: the teacher's top 3 and 7 sampled from the rest.
2. SciFact train judgments: positive + 7 BM25 negatives (ranks 5-100), target 10 / 0.
3. NFCorpus train judgments (a seeded sample): positive + 7 BM25 negatives, target 10 / 0.

TREC DL 2020 judgments are NOT used, so DL 2020 stays a clean held-out test of web relevance.

    python recipes/default_reranker/build_data.py --data ../shared/data --output /tmp/default-train.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from crossrank.data.formats import read_corpus, read_queries
from crossrank.model.bi_encoder import BiEncoder
from crossrank.training.datasets import bm25_candidates, groups_from_beir

TEMPERATURE = 0.05  # on cosine similarities: the softmax then separates the teacher's top candidates


def web_groups(data: Path, encoder: BiEncoder, depth: int, top: int, sampled: int, seed: int) -> list[dict]:
    corpus = read_corpus(data / "trec-dl-2020" / "corpus.jsonl")
    ids = list(corpus)
    texts = [corpus[i].full_text for i in ids]
    queries = {q: t for q, t in read_queries(data / "msmarco-dev-small" / "queries.jsonl").items() if t.strip()}
    qids = list(queries)
    print(f"encoding {len(texts)} passages and {len(qids)} queries", flush=True)
    doc_vectors = encoder.encode(texts, progress=True)
    query_vectors = encoder.encode([queries[q] for q in qids], progress=True)
    lexical = bm25_candidates(data / "trec-dl-2020" / "corpus.jsonl", queries, depth)
    position = {d: i for i, d in enumerate(ids)}
    rng = random.Random(seed)
    groups = []
    for row, qid in enumerate(qids):
        cos = doc_vectors @ query_vectors[row]
        dense = np.argpartition(-cos, depth)[:depth]
        union = sorted(set(dense.tolist()) | {position[d] for d in lexical.get(qid, [])})
        teacher = cos[union] / TEMPERATURE
        order = [union[i] for i in np.argsort(-teacher)]
        chosen = order[:top] + rng.sample(order[top:], min(sampled, len(order) - top))
        groups.append({"query": queries[qid], "documents": [texts[i] for i in chosen],
                       "labels": [round(float(cos[i] / TEMPERATURE), 4) for i in chosen], "source": "msmarco-distill"})
    return groups


def judged_groups(folder: Path, limit: int | None, seed: int) -> list[dict]:
    groups = groups_from_beir(folder, "train", negatives=7, rank_range=(5, 100), seed=seed)
    if limit is not None and len(groups) > limit:
        groups = random.Random(seed).sample(groups, limit)
    return [{"query": g.query, "documents": g.documents, "labels": [10.0 * x for x in g.labels],
             "source": folder.name} for g in groups]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--nfcorpus-groups", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--depth", type=int, default=30, help="Web candidates: union of both first stages' top N.")
    parser.add_argument("--top", type=int, default=3, help="Web group: the teacher's top N ...")
    parser.add_argument("--sampled", type=int, default=7, help="... plus N sampled from the other candidates.")
    args = parser.parse_args()
    encoder = BiEncoder()
    groups = web_groups(args.data, encoder, depth=args.depth, top=args.top, sampled=args.sampled, seed=args.seed)
    groups += judged_groups(args.data / "scifact", None, args.seed)
    groups += judged_groups(args.data / "nfcorpus", args.nfcorpus_groups, args.seed)
    random.Random(args.seed).shuffle(groups)
    tmp = args.output.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for group in groups:
            out.write(json.dumps(group) + "\n")
    tmp.replace(args.output)
    counts = {}
    for g in groups:
        counts[g["source"]] = counts.get(g["source"], 0) + 1
    print(json.dumps({"groups": len(groups), "pairs": sum(len(g["documents"]) for g in groups), "by_source": counts}))


if __name__ == "__main__":
    main()
