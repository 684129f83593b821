"""Dense retrieval before and after distilling a cross-encoder into the bi-encoder (``crossrank distill``).

Encodes the whole corpus with each bi-encoder, retrieves the exact top 100 by cosine for every test query,
and reports nDCG@10 and Recall@100 with crossrank's trec_eval-compatible metrics.

    crossrank distill --data ../shared/data/scifact --output-dir /tmp/bi-distilled
    python benchmarks/dense_distillation.py --dataset scifact --after /tmp/bi-distilled

Writes benchmarks/results/dense_distillation.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def dense_metrics(encoder, corpus, queries, qrels) -> dict[str, float]:
    from crossrank.evaluation.metrics import evaluate

    ids = list(corpus)
    docs = encoder.encode([corpus[i].full_text for i in ids], progress=True)
    qids = list(queries)
    vectors = encoder.encode([queries[q] for q in qids])
    run = {}
    for row, qid in enumerate(qids):
        cos = docs @ vectors[row]
        top = np.argsort(-cos)[:100]
        run[qid] = {ids[i]: float(cos[i]) for i in top}
    return evaluate(qrels, run, ["ndcg@10", "recall@100"]).metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--after", required=True, help="The distilled bi-encoder folder.")
    parser.add_argument("--before", default=None, help="The bi-encoder before distillation (default all-MiniLM-L6-v2).")
    parser.add_argument("--notes", default="", help="How the distilled model was made (command, teacher, time).")
    parser.add_argument("--name", default="dense_distillation", help="Result file name (without extension).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    from crossrank.data.formats import read_corpus, read_qrels, read_queries
    from crossrank.evaluation.machine import machine_info
    from crossrank.model.bi_encoder import BiEncoder

    folder = DATA / args.dataset
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    queries = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels}
    corpus = read_corpus(folder / "corpus.jsonl")
    rows = {"before": dense_metrics(BiEncoder(args.before), corpus, queries, qrels),
            "after": dense_metrics(BiEncoder(args.after), corpus, queries, qrels)}
    result = {"machine": machine_info(), "dataset": args.dataset, "split": "test", "before": args.before or
              "all-MiniLM-L6-v2", "after": args.after, "notes": args.notes, "metrics": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Dense retrieval before/after cross-encoder distillation ({args.dataset} test, exact search)", "",
             args.notes, "", "| bi-encoder | nDCG@10 | Recall@100 |", "|---|---|---|"]
    for label, metrics in rows.items():
        lines.append(f"| {label} | {metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} |")
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
