"""Training examples of default reranker v2's two stages, from the pseudo-pair pool and the judgments.

Stage ``distill``: every MS MARCO dev-small query of the pool as one listwise group, the teachers' top
``--top`` plus ``--sampled`` drawn from the rest; labels = the teacher ensemble's score (each teacher's
cosine z-scored within the query's candidates, weighted as fitted on DL 2021) / ``--temperature``. Plus
SciFact and NFCorpus train judgments (judged positive + 7 BM25 negatives, as in v1), so the model keeps
what v1 learned there.

Stage ``finetune``: human judgments. TREC DL 2021 (graded 0-3; one group per highly relevant passage: it
plus passages of every grade, labels = ``--grade-scale`` x grade), WikiQA train (a question's correct
sentences against the wrong ones from the same article), a replay sample of distillation groups (new
seed) and of the SciFact / NFCorpus groups, so that 53 DL queries do not pull the model off the rest.

The 125 msmarco-dev-graded questions are left out (calibration and ensemble weights are fitted on them).
Groups have at most ``--group-size`` documents; labels are soft targets for ``crossrank train --loss
listwise``. DL 2020's judgments are never read.

    python recipes/default_reranker_v2/make_examples.py --pool ../runs/v2/pool.jsonl --stage distill \
        --output ../runs/v2/distill.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: Teacher weights without BM25 (the pool has no BM25 scores): fit_teacher_ensemble.py --no-bm25 (MiniLM gets 0)
DEFAULT_WEIGHTS = {"mpnet": 0.6, "e5": 0.4}


def ensemble_scores(teachers: dict[str, list[float]], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum of each teacher's per-query z-scored cosine."""
    total = np.zeros(len(next(iter(teachers.values()))))
    for name, weight in weights.items():
        s = np.asarray(teachers[name], dtype=np.float64)
        total += weight * (s - s.mean()) / (s.std() + 1e-9)
    return total


def distill_groups(pool: list[dict], weights: dict[str, float], top: int, sampled: int, temperature: float,
                   seed: int, limit: int | None = None, sources: tuple[str, ...] = ("msmarco-dev-small",)
                   ) -> list[dict]:
    """One listwise group per pseudo-query (MS MARCO by default; ``sources`` may add the pool's Quora
    questions): the teachers' top ``top`` plus ``sampled`` random others."""
    rng = random.Random(seed)
    rows = [g for g in pool if g["source"] in sources and len(g["documents"]) >= top + sampled]
    if limit is not None and len(rows) > limit:
        rows = rng.sample(rows, limit)
    groups = []
    for row in rows:
        scores = ensemble_scores(row["teachers"], weights)
        order = [int(i) for i in np.argsort(-scores)]
        chosen = order[:top] + rng.sample(order[top:], sampled)
        groups.append({"query": row["query"], "documents": [row["documents"][i] for i in chosen],
                       "labels": [round(float(scores[i] / temperature), 4) for i in chosen],
                       "source": "msmarco-distill" if row["source"] == "msmarco-dev-small" else "quora-distill"})
    return groups


def wikiqa_groups(pool: list[dict], size: int, seed: int) -> list[dict]:
    """WikiQA questions with a correct and a wrong sentence: up to 2 positives first, then wrong ones (groups
    of up to ``size``; most questions have fewer candidates, and the trainer masks the padding)."""
    rng = random.Random(seed)
    groups = []
    for row in pool:
        if row["source"] != "wikiqa-train":
            continue
        pos = [i for i, j in enumerate(row["judgments"]) if j > 0]
        neg = [i for i, j in enumerate(row["judgments"]) if j <= 0]
        if not pos or not neg:
            continue
        chosen = rng.sample(pos, min(len(pos), 2))
        chosen += rng.sample(neg, min(len(neg), size - len(chosen)))
        groups.append({"query": row["query"], "documents": [row["documents"][i] for i in chosen],
                       "labels": [10.0 if row["judgments"][i] > 0 else 0.0 for i in chosen],
                       "source": "wikiqa-train"})
    return groups


def dl2021_groups(data: Path, size: int, grade_scale: float, per_query: int, seed: int) -> list[dict]:
    """Graded TREC DL 2021 groups: a passage graded 3 (else 2) against a sample of every other grade."""
    from crossrank.data.formats import read_corpus, read_qrels, read_queries

    folder = data / "trec-dl-2021"
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    queries = read_queries(folder / "queries.jsonl")
    corpus = read_corpus(folder / "corpus.jsonl")
    rng = random.Random(seed)
    groups = []
    for qid in sorted(qrels):
        judged = {d: int(g) for d, g in qrels[qid].items() if d in corpus}
        if qid not in queries or len(judged) < size:
            continue
        top_grade = max(judged.values())
        if top_grade < 2:
            continue
        anchors = [d for d, g in judged.items() if g == top_grade]
        for anchor in rng.sample(sorted(anchors), min(per_query, len(anchors))):
            others = rng.sample(sorted(d for d in judged if d != anchor), size - 1)
            docs = [anchor, *others]
            groups.append({"query": queries[qid], "documents": [corpus[d].full_text for d in docs],
                           "labels": [grade_scale * judged[d] for d in docs], "source": "trec-dl-2021"})
    return groups


def beir_groups(data: Path, name: str, limit: int | None, seed: int) -> list[dict]:
    """SciFact / NFCorpus train judgments: v1's groups (positive + 7 BM25 negatives from ranks 5-100)."""
    sys.path.insert(0, str(ROOT / "recipes" / "default_reranker"))
    from build_data import judged_groups

    return judged_groups(data / name, limit, seed)


def cut_to(groups: list[dict], size: int, seed: int) -> list[dict]:
    """Cut every group to at most ``size`` documents, always keeping its best one (shorter groups stay short:
    the trainer masks padding, so no document is repeated to fill them)."""
    rng = random.Random(seed)
    for g in groups:
        if len(g["documents"]) > size:
            keep = sorted(range(len(g["documents"])), key=lambda i: -g["labels"][i])[:1]
            keep += rng.sample([i for i in range(len(g["documents"])) if i not in keep], size - 1)
            g["documents"] = [g["documents"][i] for i in keep]
            g["labels"] = [g["labels"][i] for i in keep]
    return groups


def read_pool(path: Path, holdout: set[str] = frozenset()) -> list[dict]:
    """The pool's groups, minus queries held out for calibration and fitting (matched by text)."""
    with open(path, encoding="utf-8") as handle:
        groups = [json.loads(line) for line in handle if line.strip()]
    return [g for g in groups if g["query"] not in holdout]


def holdout_queries(data: Path) -> set[str]:
    """msmarco-dev-graded's 125 questions (all from dev-small): the package step calibrates and weighs the
    ensemble on them, so they stay out of training."""
    from crossrank.data.formats import read_queries

    path = data / "msmarco-dev-graded" / "queries.jsonl"
    return set(read_queries(path).values()) if path.is_file() else set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--stage", choices=["distill", "finetune"], required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--weights", type=str, default=json.dumps(DEFAULT_WEIGHTS),
                        help="teacher weights as JSON (fit_teacher_ensemble.py)")
    parser.add_argument("--group-size", type=int, default=12)
    parser.add_argument("--top", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.4, help="z-score units: softmax(z / T)")
    parser.add_argument("--grade-scale", type=float, default=2.0)
    parser.add_argument("--dl-groups-per-query", type=int, default=12)
    parser.add_argument("--replay", type=int, default=1000, help="distillation groups replayed in fine-tuning")
    parser.add_argument("--nfcorpus-groups", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    weights = json.loads(args.weights)
    pool = read_pool(args.pool, holdout_queries(args.data))
    size = args.group_size
    if args.stage == "distill":
        groups = distill_groups(pool, weights, args.top, size - args.top, args.temperature, args.seed)
        groups += beir_groups(args.data, "scifact", None, args.seed)
        groups += beir_groups(args.data, "nfcorpus", args.nfcorpus_groups, args.seed)
    else:
        groups = dl2021_groups(args.data, size, args.grade_scale, args.dl_groups_per_query, args.seed)
        groups += wikiqa_groups(pool, size, args.seed)
        groups += distill_groups(pool, weights, args.top, size - args.top, args.temperature, args.seed + 1,
                                 limit=args.replay)
        groups += beir_groups(args.data, "scifact", 300, args.seed + 1)
        groups += beir_groups(args.data, "nfcorpus", 300, args.seed + 1)
    groups = cut_to(groups, size, args.seed)
    write_groups(groups, args.output, args.seed)


def write_groups(groups: list[dict], output: Path, seed: int) -> None:
    """Shuffle (seeded) and write one group per line; print the counts by source."""
    random.Random(seed).shuffle(groups)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as out:
        for g in groups:
            out.write(json.dumps(g) + "\n")
    counts: dict[str, int] = {}
    for g in groups:
        counts[g["source"]] = counts.get(g["source"], 0) + 1
    print(json.dumps({"groups": len(groups), "pairs": sum(len(g["documents"]) for g in groups),
                      "by_source": counts}))


if __name__ == "__main__":
    main()
