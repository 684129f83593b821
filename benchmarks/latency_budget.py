"""nDCG@10 against p95 latency under a latency budget: prefix, fallback and cascade policies.

One script, one process, the same queries and candidates for every row. For each dataset a real crossrank
BM25 index (TREC DL 2020: the passages of its BM25 top-100 pool; SciFact: its corpus), ``Searcher.search``
per query with K candidates, then nDCG@10 of the returned top 10 and the p50/p95 of the rerank step
(``timings_ms["rerank"]``: what the budget governs) and of the whole search. Rows:

- first stage only; fallback only (every candidate); main model only (every candidate);
- for each budget: today's prefix (the main model on what fits), budget with fallback, cascade.

Costs are measured by the searcher itself (after a warm-up, outside any budget), as users get them. The
default fallback is the shipped default's cross-encoder alone in bf16 (no bi-encoder partner): about 3x
cheaper per candidate than the shipped ensemble in fp32, until a 2-layer fallback ships.

    python benchmarks/latency_budget.py [--budgets 100 250 500 1000] [--scifact-queries 100] \
        [--fallback path/to/model --fallback-dtype float32 --no-fallback-alone]

Writes benchmarks/results/latency_budget.json, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def build_index(dataset: str, tmp: Path, scifact_queries: int):
    """(index path, queries, qrels): DL 2020 over its pool's passages, SciFact over its corpus."""
    from crossrank.data.formats import read_corpus
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.store import StoredDocument
    from reranker_quality import first_stage

    folder, qrels, queries, run = first_stage(dataset, "test", 100)
    if dataset == "scifact":
        keep = sorted(queries)[:scifact_queries]
        queries = {q: queries[q] for q in keep}
        docs = read_corpus(folder / "corpus.jsonl")
    else:
        docs = read_corpus(folder / "corpus.jsonl", ids={d for ranked in run.values() for d in ranked})
    path = tmp / dataset
    index = CollectionIndex.create(path, IndexSettings(BM25Settings()))
    index.replace_all(StoredDocument(d.id, d.title, d.text) for d in docs.values())
    index.store.close()
    return path, queries, {q: qrels[q] for q in queries}


def run_system(searcher, queries: dict[str, str], qrels, k: int, budget_ms: float | None) -> dict:
    from crossrank.evaluation.metrics import evaluate

    run, rerank_ms, total_ms, main, fallback = {}, [], [], [], []
    for qid, text in queries.items():
        result = searcher.search(text, k=k, top_n=10, budget_ms=budget_ms)
        run[qid] = {h.id: float(10 - i) for i, h in enumerate(result.hits)}
        rerank_ms.append(result.timings_ms["rerank"])
        total_ms.append(result.timings_ms["total"] - result.timings_ms.get("cost_probe", 0.0))
        main.append(result.reranked)
        fallback.append(result.fallback_scored)
    return {"ndcg@10": evaluate(qrels, run, ["ndcg@10"]).metrics["ndcg@10"],
            "rerank_ms_p50": float(np.percentile(rerank_ms, 50)), "rerank_ms_p95": float(np.percentile(rerank_ms, 95)),
            "rerank_ms_max": float(np.max(rerank_ms)),
            "total_ms_p50": float(np.percentile(total_ms, 50)), "total_ms_p95": float(np.percentile(total_ms, 95)),
            "main_scored_mean": float(np.mean(main)), "fallback_scored_mean": float(np.mean(fallback))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["trec-dl-2020", "scifact"])
    parser.add_argument("--main", default="default")
    parser.add_argument("--fallback", default="default")
    parser.add_argument("--fallback-dtype", default="bfloat16")
    parser.add_argument("--fallback-alone", action=argparse.BooleanOptionalAction, default=True,
                        help="the fallback folder's own weights, without its ensemble partners")
    parser.add_argument("--budgets", nargs="+", type=float, default=[100, 250, 500, 1000])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--rescore", type=int, default=20)
    parser.add_argument("--scifact-queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    import torch

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.pipeline.searcher import Searcher

    main_model = CrossEncoder(args.main)
    fallback_model = CrossEncoder(args.fallback, dtype=args.fallback_dtype, use_ensemble=not args.fallback_alone)
    fallback_name = f"{args.fallback} ({'cross-encoder alone, ' if args.fallback_alone else ''}{args.fallback_dtype})"
    results = {"machine": machine_info(), "torch_threads": torch.get_num_threads(), "main": f"{args.main} (fp32)",
               "fallback": fallback_name, "k": args.k, "rescore": args.rescore, "budgets_ms": args.budgets,
               "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            path, queries, qrels = build_index(dataset, Path(tmp), args.scifact_queries)
            searchers = {
                "first stage only": Searcher(path, "bm25"),
                "fallback only": Searcher(path, "bm25", fallback_model),
                "main model only": Searcher(path, "bm25", main_model),
                "prefix": Searcher(path, "bm25", main_model),
                "budget + fallback": Searcher(path, "bm25", main_model, fallback=fallback_model),
                "cascade": Searcher(path, "bm25", main_model, fallback=fallback_model, policy="cascade",
                                    rescore=args.rescore),
            }
            # Warm both models and measure their costs on this dataset (outside every timing below).
            warm = next(iter(queries.values()))
            for name in ("budget + fallback",):
                searchers[name].search(warm, k=args.k, budget_ms=1.0)
            rows = {}
            for name in ("first stage only", "fallback only", "main model only"):
                start = time.perf_counter()
                rows[name] = {"budget_ms": None, **run_system(searchers[name], queries, qrels, args.k, None)}
                print(f"{dataset} {name}: {json.dumps(rows[name])} ({time.perf_counter() - start:.0f} s)", flush=True)
            for budget in args.budgets:
                for name in ("prefix", "budget + fallback", "cascade"):
                    label = f"{name} @ {budget:g} ms"
                    rows[label] = {"budget_ms": budget, "policy": name,
                                   **run_system(searchers[name], queries, qrels, args.k, budget)}
                    print(f"{dataset} {label}: {json.dumps(rows[label])}", flush=True)
            main_cost, fallback_cost = (searchers["budget + fallback"].throughput,
                                        searchers["budget + fallback"].fallback_throughput)
            costs = {"main_us_per_token": 1e6 * main_cost.per_token, "main_overhead_ms": 1e3 * main_cost.overhead_seconds,
                     "fallback_us_per_token": 1e6 * fallback_cost.per_token,
                     "fallback_overhead_ms": 1e3 * fallback_cost.overhead_seconds,
                     "main_margin": main_cost.margin, "fallback_margin": fallback_cost.margin,
                     "chars_per_token": main_cost.chars_per_token}
            results["datasets"][dataset] = {"queries": len(queries), "costs": costs, "rows": rows}
    write(results, args.out)


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency_budget.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Latency budgets: prefix, fallback, cascade", "",
             f"Main model `{results['main']}`, fallback `{results['fallback']}`, K = {results['k']} BM25 candidates, "
             f"cascade rescores the fallback's top {results['rescore']}; torch fp32, "
             f"{results['torch_threads']} threads, {results['machine'].get('cpu', '')}. The budget governs the "
             "rerank step (chunked scoring of the candidates); total = retrieval + fetch + rerank.", ""]
    for dataset, data in results["datasets"].items():
        costs = data["costs"]
        lines += [f"## {dataset} ({data['queries']} queries)", "",
                  f"Measured cost (after the last query): main {costs['main_us_per_token']:.1f} us per token + "
                  f"{costs['main_overhead_ms']:.1f} ms per call, fallback {costs['fallback_us_per_token']:.1f} us per "
                  f"token + {costs['fallback_overhead_ms']:.1f} ms per call; {costs['chars_per_token']:.2f} characters "
                  f"per token; plans multiply these by the measured tail margin (main {costs['main_margin']:.2f}, "
                  f"fallback {costs['fallback_margin']:.2f}: the 90th percentile of actual / predicted time).", "",
                  "| system | budget | nDCG@10 | rerank p50 / p95 / max (ms) | p95 / budget | total p95 (ms) "
                  "| scored by main / fallback |",
                  "|---|---|---|---|---|---|---|"]
        for label, row in data["rows"].items():
            name = label.split(" @ ")[0]
            budget = "-" if row["budget_ms"] is None else f"{row['budget_ms']:g} ms"
            ratio = "-" if row["budget_ms"] is None else f"{row['rerank_ms_p95'] / row['budget_ms']:.2f}"
            lines.append(f"| {name} | {budget} | {row['ndcg@10']:.4f} | {row['rerank_ms_p50']:.0f} / "
                         f"{row['rerank_ms_p95']:.0f} / {row['rerank_ms_max']:.0f} | {ratio} | {row['total_ms_p95']:.0f} | "
                         f"{row['main_scored_mean']:.1f} / {row['fallback_scored_mean']:.1f} |")
        lines.append("")
    (out / "latency_budget.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "latency_budget.png")
    print("\n".join(lines))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(results["datasets"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = results["datasets"][dataset]["rows"]
        for policy, marker in (("prefix", "o"), ("budget + fallback", "s"), ("cascade", "^")):
            points = sorted((r["rerank_ms_p95"], r["ndcg@10"]) for r in rows.values() if r.get("policy") == policy)
            ax.plot(*zip(*points), marker=marker, label=policy)
        for name, marker in (("first stage only", "x"), ("fallback only", "D"), ("main model only", "*")):
            row = rows[name]
            ax.scatter([max(row["rerank_ms_p95"], 1.0)], [row["ndcg@10"]], marker=marker, s=70, label=name,
                       color="black" if name == "main model only" else None)
        for budget in results["budgets_ms"]:
            ax.axvline(budget, color="grey", linewidth=0.5, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlabel("rerank p95 latency per query (ms, log)")
        ax.set_ylabel("nDCG@10")
        ax.set_title(f"{dataset}: K = {results['k']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
