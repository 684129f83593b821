"""Throughput of the shipped default as shipped (an ensemble: cross-encoder + bi-encoder) against its
cross-encoder alone (``use_ensemble=False``), in one process on the same TREC DL 2020 BM25 pairs.

Why: the README states what `CrossEncoder()` really costs; the ensemble's bi-encoder pass is extra work.

    python benchmarks/default_throughput.py            # needs ../shared/data/trec-dl-2020
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from throughput import DATA, load_pairs  # noqa: E402

from crossrank import CrossEncoder  # noqa: E402
from crossrank.evaluation.machine import machine_info  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--queries", type=int, default=7, help="queries x 100 candidates = pairs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"skipped: {args.data} is not here")
    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.data, args.queries)
    models = {"default as shipped (ensemble)": CrossEncoder(), "its cross-encoder alone": CrossEncoder(use_ensemble=False)}
    result = {"pairs": len(pairs), "threads": args.threads, "machine": machine_info(), "pairs_per_s": {}}
    for name, ce in models.items():
        ce.score(pairs[:64])  # warm-up
        rates = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            ce.score(pairs)
            rates.append(len(pairs) / (time.perf_counter() - start))
        result["pairs_per_s"][name] = round(statistics.median(rates), 1)
        print(f"{name}: {result['pairs_per_s'][name]} pairs/s (median of {args.rounds})", flush=True)
    ensemble, alone = result["pairs_per_s"].values()
    result["ratio_ensemble_to_alone"] = round(ensemble / alone, 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "default_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {rate} |" for name, rate in result["pairs_per_s"].items())
    (args.out / "default_throughput.md").write_text(
        f"# Throughput of the shipped default\n\n`python benchmarks/default_throughput.py`: {len(pairs)} TREC DL 2020 "
        f"BM25 pairs, {args.threads} threads, fp32, median of {args.rounds} rounds, one process.\n\n"
        f"| model | pairs/s |\n|---|---|\n{rows}\n\nEnsemble / cross-encoder alone: "
        f"{result['ratio_ensemble_to_alone']:.2f}x. Machine: {result['machine']}.\n")


if __name__ == "__main__":
    main()
