"""Pick the shipped ensemble's bi-encoder weight on msmarco-dev-graded (held out of training), not by hand.

The packaged folder's ``ensemble.json`` holds the members' z statistics; this scores the 125 questions x BM25
top-20 with both members once, ranks by ``(1 - w) z(cross-encoder) + w z(cosine)`` for w in a grid, and
writes the best w (nDCG@10, graded) back. Run before the calibration, which is fitted on the final score.

    python recipes/default_reranker_v2/fit_ensemble_weight.py --folder src/crossrank/default_model
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
    pairs = [(queries[q], corpus[d].full_text) for q, docs in lists.items() for d in docs]
    ce = CrossEncoder(str(args.folder), use_ensemble=False).score(pairs)
    cos = BiEncoderReranker(BiEncoder()).score(pairs)
    path = args.folder / "ensemble.json"
    config = json.loads(path.read_text())
    (m1, s1), (m2, s2) = config["stats"]
    z_ce, z_cos = (np.asarray(ce, dtype=np.float64) - m1) / s1, (np.asarray(cos, dtype=np.float64) - m2) / s2

    def ndcg(w: float) -> float:
        scores, run_out, start = (1 - w) * z_ce + w * z_cos, {}, 0
        for q, docs in lists.items():
            run_out[q] = {d: float(s) for d, s in zip(docs, scores[start:start + len(docs)])}
            start += len(docs)
        return evaluate(qrels, run_out, ["ndcg@10"]).metrics["ndcg@10"]

    by_weight = {w: ndcg(w) for w in args.grid}
    best = max(by_weight, key=lambda w: (round(by_weight[w], 4), -abs(w - 0.5)))  # ties: nearer 0.5
    config["weights"] = [1 - best, best]
    config.setdefault("notes", {})["weights"] = (
        f"bi-encoder weight {best} picked on msmarco-dev-graded (125 held-out MS MARCO dev questions x BM25 "
        f"top-20, nDCG@10 {by_weight[best]:.4f}); grid: " + ", ".join(f"{w}: {v:.4f}" for w, v in by_weight.items()))
    path.write_text(json.dumps(config, indent=2) + "\n")
    report = {"weight": best, "ndcg@10_by_weight": by_weight, "queries": len(lists), "pairs": len(pairs)}
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
