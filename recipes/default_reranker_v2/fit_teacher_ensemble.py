"""Fit the teacher ensemble of default reranker v2 on TREC DL 2021 judgments; report it on DL 2020.

Members: each bi-encoder teacher's cosine and BM25's score, z-scored within each query's candidate list
(so no member's scale dominates), combined linearly. Weights: a grid over the simplex (steps of 0.1),
the best DL 2021 nDCG@10. DL 2020 is only evaluated. Reads the per-pair scores ``teachers.py`` cached.

    python recipes/default_reranker_v2/fit_teacher_ensemble.py --output ../runs/v2/teacher_ensemble.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def zscore_per_query(scores: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, start = np.empty_like(scores, dtype=np.float64), 0
    for size in sizes:
        block = scores[start:start + size].astype(np.float64)
        out[start:start + size] = (block - block.mean()) / (block.std() + 1e-9)
        start += size
    return out


def combine(members: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(weights[name] * members[name] for name in weights)


def simplex(names: list[str], step: float = 0.1):
    units = round(1 / step)
    for parts in itertools.product(range(units + 1), repeat=len(names) - 1):
        if sum(parts) <= units:
            yield dict(zip(names, [p * step for p in parts] + [(units - sum(parts)) * step]))


def load(dataset: str, names: list[str], cache: Path):
    from reranker_quality import first_stage

    _, qrels, _, run = first_stage(dataset, "test", 100)
    lists = {q: list(docs) for q, docs in run.items()}
    sizes = [len(docs) for docs in lists.values()]
    members = {"bm25": zscore_per_query(np.array([run[q][d] for q, docs in lists.items() for d in docs]), sizes)}
    for name in names:
        members[name] = zscore_per_query(np.load(cache / f"scores-{dataset}-{name}.npy"), sizes)
    return qrels, lists, members


def main() -> None:
    from reranker_quality import to_run

    from crossrank.evaluation.metrics import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=["mpnet", "e5", "minilm"])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "recipe-v2")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--no-bm25", action="store_true",
                        help="teachers only (the distillation targets: the pool has no BM25 scores)")
    args = parser.parse_args()
    fit = load("trec-dl-2021", args.teachers, args.cache)
    test = load("trec-dl-2020", args.teachers, args.cache)

    def ndcg(data, weights) -> float:
        qrels, lists, members = data
        return evaluate(qrels, to_run(lists, combine(members, weights)), ["ndcg@10"]).metrics["ndcg@10"]

    names = list(args.teachers) if args.no_bm25 else ["bm25", *args.teachers]
    best = max(simplex(names), key=lambda w: ndcg(fit, w))
    report = {"weights": best, "fit_dl2021": ndcg(fit, best), "test_dl2020": ndcg(test, best),
              "members": {n: {"dl2021": ndcg(fit, {n: 1.0}), "dl2020": ndcg(test, {n: 1.0})} for n in names},
              "equal_weights": {"dl2021": ndcg(fit, {n: 1 / len(names) for n in names}),
                                "dl2020": ndcg(test, {n: 1 / len(names) for n in names})}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
