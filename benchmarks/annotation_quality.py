"""How well the cross-encoder's pseudo-qrels stand in for NIST judgments (TREC DL 2020 and 2021).

For each collection, the runs shipped in ../shared/data (DL 2020: five, DL 2021: three) are pooled to
depth D (``crossrank.pipeline.annotate.pool``), every pooled pair is graded by the model (calibrated
probability -> grade 0-3 by thresholds), and then:

- each run's nDCG@10 under the NIST qrels and under the pseudo-qrels, and Kendall's tau between the two
  system rankings;
- agreement with the NIST grades on the pairs both judged: Cohen's kappa on the four grades (plain and
  quadratic-weighted) and on relevance at grade >= 2.

Depths and threshold sets are swept; the setting is chosen on DL 2021 and reported on DL 2020 as well
(so a choice is never made on the set it is judged on). Probabilities are computed once per pair.

    python benchmarks/annotation_quality.py [--model default] [--depths 10 20 50]

Writes benchmarks/results/annotation_quality.json, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data"
THRESHOLD_SETS = [(0.25, 0.5, 0.8), (0.1, 0.3, 0.6), (0.2, 0.4, 0.7), (0.3, 0.6, 0.9), (0.4, 0.7, 0.9)]


def kappa(a: np.ndarray, b: np.ndarray, labels: int, weights: str | None = None) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(a) == 0:
        return float("nan")
    return float(cohen_kappa_score(a, b, labels=list(range(labels)), weights=weights))


def evaluate_runs(qrels, runs: dict[str, dict]) -> dict[str, float]:
    from crossrank.evaluation.metrics import evaluate

    queries = set(qrels)
    return {name: evaluate(qrels, {q: d for q, d in run.items() if q in queries}, ["ndcg@10"]).metrics["ndcg@10"]
            for name, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--datasets", nargs="+", default=["trec-dl-2021", "trec-dl-2020"])
    parser.add_argument("--depths", nargs="+", type=int, default=[10, 20, 50])
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    from scipy.stats import kendalltau

    from crossrank.cli.progress import pair_progress
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.data.formats import read_corpus, read_qrels, read_queries, read_run
    from crossrank.evaluation.machine import machine_info
    from crossrank.pipeline.annotate import GradeThresholds, pool

    model = CrossEncoder(args.model)
    results = {"machine": machine_info(), "model": args.model, "depths": args.depths,
               "threshold_sets": THRESHOLD_SETS, "datasets": {}}
    for dataset in args.datasets:
        folder = DATA / dataset
        qrels_file = next((folder / "qrels").glob("test*"))
        nist = read_qrels(qrels_file).qrels
        queries = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in nist}
        runs = {p.name.split(".")[0]: read_run(p).run for p in sorted((folder / "runs").glob("*.tsv"))}
        lists = pool(list(runs.values()), max(args.depths), queries)
        corpus = read_corpus(folder / "corpus.jsonl", ids={d for ids in lists.values() for d in ids})
        pairs = [(q, d) for q, ids in lists.items() for d in ids if d in corpus]
        start = time.perf_counter()
        with pair_progress(sys.stderr.isatty(), f"{dataset}: scoring the pool", len(pairs)) as advance:
            scores = model.score([(queries[q], corpus[d].full_text) for q, d in pairs], progress=advance)
        seconds = time.perf_counter() - start
        probs = dict(zip(pairs, np.asarray(model.probability(scores), dtype=np.float64)))
        real = evaluate_runs(nist, runs)
        order = sorted(real, key=real.get, reverse=True)
        row = {"runs": list(runs), "queries": len(queries), "pooled_pairs_at_max_depth": len(pairs),
               "scoring_seconds": seconds, "ndcg@10_nist": real, "settings": []}
        for depth in args.depths:
            depth_lists = pool(list(runs.values()), depth, queries)
            depth_pairs = [(q, d) for q, ids in depth_lists.items() for d in ids if (q, d) in probs]
            for cuts in THRESHOLD_SETS:
                grades = GradeThresholds(cuts).grade(np.array([probs[p] for p in depth_pairs]))
                pseudo: dict[str, dict[str, int]] = {}
                for (q, d), g in zip(depth_pairs, grades):
                    pseudo.setdefault(q, {})[d] = int(g)
                estimated = evaluate_runs(pseudo, runs)
                tau = kendalltau([real[r] for r in runs], [estimated[r] for r in runs]).statistic
                both = [(nist[q][d], g) for (q, d), g in zip(depth_pairs, grades) if d in nist.get(q, {})]
                human = np.array([min(max(h, 0), 3) for h, _ in both], dtype=int)
                machine = np.array([g for _, g in both], dtype=int)
                row["settings"].append({
                    "depth": depth, "thresholds": list(cuts), "pairs": len(depth_pairs),
                    "ndcg@10_pseudo": estimated, "kendall_tau": float(tau),
                    "rank_by_pseudo": sorted(estimated, key=estimated.get, reverse=True),
                    "mean_abs_ndcg_error": float(np.mean([abs(estimated[r] - real[r]) for r in runs])),
                    "judged_overlap": len(both),
                    "kappa_grades": kappa(human, machine, 4), "kappa_grades_quadratic": kappa(human, machine, 4, "quadratic"),
                    "kappa_relevant_ge2": kappa((human >= 2).astype(int), (machine >= 2).astype(int), 2)})
        row["rank_by_nist"] = order
        results["datasets"][dataset] = row
        print(json.dumps({dataset: {k: v for k, v in row.items() if k != "settings"}}), flush=True)
    write(results, args.out)


def choose(row: dict) -> dict:
    """The setting with the best Kendall's tau, then quadratic kappa (how the DL 2021 choice is made)."""
    return max(row["settings"], key=lambda s: (round(s["kendall_tau"], 6), s["kappa_grades_quadratic"]))


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotation_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    datasets = results["datasets"]
    lines = ["# The cross-encoder as annotator: pseudo-qrels against NIST judgments", "",
             f"Model `{results['model']}` (calibrated probability -> grade = how many thresholds it reaches); "
             f"pool = union of the runs' top D. Machine: {results['machine'].get('cpu', '')}.", ""]
    chosen = choose(datasets["trec-dl-2021"]) if "trec-dl-2021" in datasets else None
    for dataset, row in datasets.items():
        lines += [f"## {dataset}: {row['queries']} queries, runs {', '.join(row['runs'])}", "",
                  f"Scoring the depth-{max(results['depths'])} pool ({row['pooled_pairs_at_max_depth']} pairs): "
                  f"{row['scoring_seconds']:.0f} s.", "",
                  "| depth | thresholds (grades 1/2/3) | pairs | Kendall tau | mean abs nDCG@10 error | kappa (4 grades) | "
                  "kappa quadratic | kappa (grade >= 2) | judged overlap |", "|---|---|---|---|---|---|---|---|---|"]
        for s in row["settings"]:
            mark = " **(chosen on DL 2021)**" if chosen and (s["depth"], s["thresholds"]) == \
                (chosen["depth"], chosen["thresholds"]) else ""
            lines.append(f"| {s['depth']} | {'/'.join(f'{c:g}' for c in s['thresholds'])}{mark} | {s['pairs']} | "
                         f"{s['kendall_tau']:.3f} | {s['mean_abs_ndcg_error']:.3f} | {s['kappa_grades']:.3f} | "
                         f"{s['kappa_grades_quadratic']:.3f} | {s['kappa_relevant_ge2']:.3f} | {s['judged_overlap']} |")
        pick = next(s for s in row["settings"] if chosen is None or
                    (s["depth"], s["thresholds"]) == (chosen["depth"], chosen["thresholds"]))
        lines += ["", f"Per system at the chosen setting (depth {pick['depth']}, thresholds "
                      f"{'/'.join(f'{c:g}' for c in pick['thresholds'])}):", "",
                  "| run | nDCG@10 (NIST) | nDCG@10 (pseudo-qrels) |", "|---|---|---|"]
        for run in row["rank_by_nist"]:
            lines.append(f"| {run} | {row['ndcg@10_nist'][run]:.4f} | {pick['ndcg@10_pseudo'][run]:.4f} |")
        lines.append("")
    (out / "annotation_quality.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "annotation_quality.png", chosen)
    print("\n".join(lines))


def plot(results: dict, path: Path, chosen: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = results["datasets"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.5), squeeze=False)
    for ax, (dataset, row) in zip(axes[0], datasets.items()):
        pick = next(s for s in row["settings"] if chosen is None or
                    (s["depth"], s["thresholds"]) == (chosen["depth"], chosen["thresholds"]))
        xs = [row["ndcg@10_nist"][r] for r in row["runs"]]
        ys = [pick["ndcg@10_pseudo"][r] for r in row["runs"]]
        ax.scatter(xs, ys)
        for r, x, y in zip(row["runs"], xs, ys):
            ax.annotate(r, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("nDCG@10 with NIST qrels")
        ax.set_ylabel("nDCG@10 with pseudo-qrels")
        ax.set_title(f"{dataset}: tau {pick['kendall_tau']:.2f} (depth {pick['depth']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
