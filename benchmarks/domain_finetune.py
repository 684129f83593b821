"""Domain fine-tuning, measured: a cross-encoder fine-tuned on one dataset's train split, then packaged as an
ensemble with the bi-encoder and fused with BM25, every weight fitted on held-out *train* queries.

The recipe (``recipes/domain_finetune/reproduce.sh``) holds out train queries, trains on the rest with
``crossrank train``, then runs this script, which

1. scores the held-out queries' BM25 top ``--fit-depth`` with the trained cross-encoder and the bi-encoder,
2. fits the ensemble's z statistics (label-free) and, on the judgments, the cross-encoder's weight in the
   ensemble and the BM25 fusion weight (a grid; ``crossrank.ranking.score_fusion``),
3. writes the result as a model folder (``--output-model``: the trained weights + ``ensemble.json``;
   fuse with BM25 at serving time with ``crossrank rerank-run --first-stage-weight``),
4. reports nDCG@10 on the test split's BM25 top 100 for each system, beside the no-cross-encoder
   baselines (BM25, bi-encoder, bi-encoder + BM25 with its own fitted weight).

    python benchmarks/domain_finetune.py --dataset scifact --trained /tmp/dom/ce-scifact/final \\
        --fit /tmp/dom/scifact:holdout --output-model /tmp/dom/scifact-model

Writes benchmarks/results/domain_finetune_<dataset>.json and .md. Per-pair scores are cached.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reranker_quality import cached_scores, first_stage, model_cache_key, pairs_of, to_run  # noqa: E402  (shared benchmark helpers)

ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE_GRID = tuple(round(x, 1) for x in np.arange(0.0, 1.01, 0.1))  # the cross-encoder's weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="Test dataset in ../shared/data (scifact, nfcorpus).")
    parser.add_argument("--trained", type=Path, required=True, help="crossrank train's final/ folder.")
    parser.add_argument("--fit", required=True, help="FOLDER_OR_DATASET:SPLIT of held-out judged train queries.")
    parser.add_argument("--fit-queries", type=int, default=150)
    parser.add_argument("--fit-depth", type=int, default=30)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--output-model", type=Path, default=None, help="Write the fitted model folder here.")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "crossrank-quality-cache")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    name = Path(args.dataset).name

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.evaluation.metrics import evaluate
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker
    from crossrank.ranking.ensemble import EnsembleConfig, EnsembleMember, EnsembleScorer
    from crossrank.ranking.score_fusion import fit_first_stage_weight, fuse_flat

    own = CrossEncoder(args.trained, max_length=args.max_length, use_ensemble=False)
    bi = BiEncoderReranker(BiEncoder())
    key = model_cache_key(args.trained, args.max_length)
    training = json.loads((args.trained / "training.json").read_text()) if (args.trained / "training.json").is_file() else {}

    # 1-2. Fit on held-out train queries.
    fit_name, fit_split = args.fit.rsplit(":", 1)
    folder, qrels, queries, run = first_stage(fit_name, fit_split, args.fit_depth)
    keep = sorted(run) if len(run) <= args.fit_queries else sorted(random.Random(0).sample(sorted(run), args.fit_queries))
    run, qrels = {q: run[q] for q in keep}, {q: qrels[q] for q in keep}
    lists = {q: list(docs) for q, docs in run.items()}
    pairs = pairs_of(folder, lists, queries)
    ce = cached_scores(args.cache, key, own, pairs, f"{args.fit} cross-encoder")
    cos = cached_scores(args.cache, "bi-encoder", bi, pairs, f"{args.fit} bi-encoder")
    stats = EnsembleScorer([own, bi]).normalization_from_scores([ce, cos]).stats  # label-free

    def ndcg(r):
        return evaluate(qrels, r, ["ndcg@10"]).metrics["ndcg@10"]

    def ensemble(weight, ce, cos):
        """The score an ensemble.json with this cross-encoder weight gives (z statistics fixed above)."""
        return EnsembleScorer([own, bi], [weight, round(1.0 - weight, 2)], stats=stats).combine_scores([ce, cos])

    grid = {}
    for weight in ENSEMBLE_GRID:
        fit = fit_first_stage_weight(to_run(lists, ensemble(weight, ce, cos)), run, ndcg)
        grid[weight] = {"bm25_weight": fit.weight, "ndcg@10": fit.metric, "without_bm25": fit.by_weight[0.0]}
    best = max(grid, key=lambda w: (grid[w]["ndcg@10"], w))  # ties: more cross-encoder
    best_no_bm25 = max(grid, key=lambda w: (grid[w]["without_bm25"], w))
    choice = {"cross_encoder_weight": best, "bm25_weight": grid[best]["bm25_weight"],
              "cross_encoder_weight_without_bm25": best_no_bm25}
    print(json.dumps({"fit": choice}), flush=True)

    # 3. The fitted model folder: trained weights + ensemble.json.
    if args.output_model is not None:
        shutil.rmtree(args.output_model, ignore_errors=True)
        shutil.copytree(args.trained, args.output_model)
        (args.output_model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": args.max_length}) + "\n")
    if args.output_model is not None and best < 1.0:  # at weight 1 the cross-encoder alone is the model
        EnsembleConfig(
            members=[EnsembleMember("cross-encoder", "."), EnsembleMember("bi-encoder", None)],
            weights=[best, round(1.0 - best, 2)], combine="zscore", stats=stats,
            notes={"fitted": f"on {len(lists)} held-out queries of {args.fit} (BM25 top {args.fit_depth})",
                   "first_stage_weight": f"fuse with BM25 at {grid[best]['bm25_weight']} (crossrank rerank-run "
                                         f"--first-stage-weight)"},
        ).save(args.output_model)

    # 4. Test split.
    folder, qrels, queries, run = first_stage(args.dataset, "test", args.depth)
    lists = {q: list(docs) for q, docs in run.items()}
    pairs = pairs_of(folder, lists, queries)
    sizes = [len(docs) for docs in lists.values()]
    bm25 = np.array([run[q][d] for q, docs in lists.items() for d in docs], dtype=np.float64)
    ce = cached_scores(args.cache, key, own, pairs, f"{args.dataset} cross-encoder")
    cos = cached_scores(args.cache, "bi-encoder", bi, pairs, f"{args.dataset} bi-encoder")

    systems = {
        "BM25": bm25,
        "bi-encoder all-MiniLM-L6-v2 (cosine)": cos,
        f"bi-encoder + BM25 (w={grid[0.0]['bm25_weight']}, no cross-encoder)": fuse_flat(cos, bm25, sizes, grid[0.0]["bm25_weight"]),
        "fine-tuned cross-encoder alone": ce,
        f"fine-tuned cross-encoder + BM25 (w={grid[1.0]['bm25_weight']})": fuse_flat(ce, bm25, sizes, grid[1.0]["bm25_weight"]),
        f"fine-tuned ensemble (cross-encoder weight {best_no_bm25})": ensemble(best_no_bm25, ce, cos),
        f"**fine-tuned ensemble (cross-encoder weight {best}) + BM25 (w={grid[best]['bm25_weight']})**":
            fuse_flat(ensemble(best, ce, cos), bm25, sizes, grid[best]["bm25_weight"]),
    }
    row = {label: evaluate(qrels, to_run(lists, s), ["ndcg@10"]).metrics["ndcg@10"] for label, s in systems.items()}
    results = {"machine": machine_info(), "dataset": args.dataset, "trained": str(args.trained),
               "training": training.get("config"), "training_steps": (training.get("result") or {}).get("steps"),
               "training_seconds": (training.get("result") or {}).get("seconds"),
               "max_length": args.max_length, "depth": args.depth, "test_queries": len(lists),
               "fit": {"on": args.fit, "queries": len(keep), "depth": args.fit_depth, "grid": grid, **choice},
               "ndcg@10": row}
    print(json.dumps({args.dataset: row}, indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"domain_finetune_{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    minutes = (results["training_seconds"] or 0) / 60
    lines = [f"# Domain fine-tuning: {name}", "",
             f"nDCG@10 reranking the BM25 top {args.depth} of the {len(lists)} test queries (max_length {args.max_length}). "
             f"Cross-encoder fine-tuned with `crossrank train` (configuration in the JSON): "
             f"{results['training_steps']} steps, {minutes:.0f} min. Weights fitted on {len(keep)} judged queries "
             f"not trained on ({args.fit}, BM25 top {args.fit_depth}). Machine: {results['machine'].get('cpu', '')}.", "",
             "| system | nDCG@10 |", "|---|---|"]
    lines += [f"| {label} | {value:.4f} |" for label, value in row.items()]
    (args.out / f"domain_finetune_{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
