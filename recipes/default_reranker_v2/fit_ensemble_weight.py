"""Pick the shipped ensemble's bi-encoder weight on held-out dev data, not by hand.

The packaged folder's ``ensemble.json`` holds the members' z statistics; this scores msmarco-dev-graded's
125 questions x BM25 top-20 (held out of training) and, with ``--also DATASET:SPLIT``, the BM25 top 30 of
up to 150 queries of other dev splits (NFCorpus dev: a second domain, never trained on) with both members
once, ranks by ``(1 - w) z(cross-encoder) + w z(cosine)`` for w in a grid, and writes back the w with the
best mean nDCG@10 over the datasets (each domain counts once). Run before the calibration, which is
fitted on the final score.

    python recipes/default_reranker_v2/fit_ensemble_weight.py --folder src/crossrank/default_model \
        --also nfcorpus:dev
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "msmarco-dev-graded")
    parser.add_argument("--grid", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0])
    parser.add_argument("--also", nargs="*", default=[], help="DATASET:SPLIT dev splits (BM25 top 30) to average in")
    parser.add_argument("--queries", type=int, default=150, help="queries per --also split")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.data.formats import ranked, read_corpus, read_qrels, read_queries, read_run
    from crossrank.evaluation.metrics import evaluate
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

    qrels = read_qrels(args.data / "qrels" / "test.tsv").qrels
    queries = read_queries(args.data / "queries.jsonl")
    run = read_run(args.data / "runs" / "bm25.top20.tsv").run
    lists = {q: ranked(docs) for q, docs in run.items() if q in qrels and q in queries}
    corpus = read_corpus(args.data / "corpus.jsonl", ids={d for docs in lists.values() for d in docs})
    sets = {"msmarco-dev-graded": (qrels, lists, [(queries[q], corpus[d].full_text) for q, docs in lists.items()
                                                  for d in docs])}
    for spec in args.also:
        import sys

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from reranker_quality import first_stage, pairs_of

        name, split = spec.split(":")
        folder, dev_qrels, dev_queries, dev_run = first_stage(name, split, 30)
        keep = sorted(dev_run)[:args.queries]
        dev_lists = {q: list(dev_run[q]) for q in keep}
        sets[spec] = ({q: dev_qrels[q] for q in keep}, dev_lists, pairs_of(folder, dev_lists, dev_queries))
    model, bi = CrossEncoder(str(args.folder), use_ensemble=False), BiEncoderReranker(BiEncoder())
    path = args.folder / "ensemble.json"
    config = json.loads(path.read_text())
    (m1, s1), (m2, s2) = config["stats"]
    scored = {}
    for name, (set_qrels, set_lists, pairs) in sets.items():
        z_ce = (np.asarray(model.score(pairs), dtype=np.float64) - m1) / s1
        z_cos = (np.asarray(bi.score(pairs), dtype=np.float64) - m2) / s2
        scored[name] = (set_qrels, set_lists, z_ce, z_cos)

    def ndcg_on(name: str, w: float) -> float:
        set_qrels, set_lists, z_ce, z_cos = scored[name]
        scores, run_out, start = (1 - w) * z_ce + w * z_cos, {}, 0
        for q, docs in set_lists.items():
            run_out[q] = {d: float(s) for d, s in zip(docs, scores[start:start + len(docs)])}
            start += len(docs)
        return evaluate(set_qrels, run_out, ["ndcg@10"]).metrics["ndcg@10"]

    per_set = {name: {w: ndcg_on(name, w) for w in args.grid} for name in scored}

    def ndcg(w: float) -> float:
        return float(np.mean([per_set[name][w] for name in per_set]))

    by_weight = {w: ndcg(w) for w in args.grid}
    best = max(by_weight, key=lambda w: (round(by_weight[w], 4), -abs(w - 0.5)))  # ties: nearer 0.5
    config["weights"] = [1 - best, best]
    config.setdefault("notes", {})["weights"] = (
        f"bi-encoder weight {best} picked on the mean nDCG@10 of held-out dev data: " + "; ".join(
            f"{name} " + ", ".join(f"{w}: {v:.4f}" for w, v in per_set[name].items()) for name in per_set))
    path.write_text(json.dumps(config, indent=2) + "\n")
    report = {"weight": best, "mean_ndcg@10_by_weight": by_weight, "ndcg@10_by_dataset": per_set,
              "queries": {name: len(v[1]) for name, v in scored.items()}}
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
