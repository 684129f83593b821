"""Ray scale-out: pairs/s of 1 and 2 Ray workers (1 thread each) against the single process at equal cores.

All rows in one script on the same pairs (TREC DL 2020 BM25 top-100 pairs when ../shared/data is there, else
synthetic ones) and the same model (the shipped default's cross-encoder, torch fp32):

- single process, 1 thread and 2 threads (``CrossEncoder.score``);
- ``RayScorer`` with 1 worker x 1 thread and 2 workers x 1 thread (local runtime, one block in flight per
  actor): job time includes the actor pool's start (imports + model load), reported apart as the time of a
  job of one 1-pair block per worker;
- Ray's overhead against the single process at equal cores, the scaling from 1 to 2 workers, the cost per
  block, and an extrapolation to N workers (nodes or GPUs) from the per-worker rate and those overheads.

    python benchmarks/ray_scaling.py [--pairs 2000] [--block 256]

Writes benchmarks/results/ray_scaling.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def load_pairs(count: int) -> tuple[list[tuple[str, str]], str]:
    try:
        from reranker_quality import first_stage, pairs_of

        folder, _, queries, run = first_stage("trec-dl-2020", "test", 100)
        lists = {q: list(docs) for q, docs in run.items()}
        return pairs_of(folder, lists, queries)[:count], "TREC DL 2020 BM25 top-100 pairs"
    except (OSError, SystemExit, KeyError):
        rng = np.random.default_rng(0)
        words = "protein cell river city energy market music brain heart water solar policy".split()
        return [(" ".join(rng.choice(words, 4)), " ".join(rng.choice(words, int(rng.integers(20, 120)))))
                for _ in range(count)], "synthetic pairs (../shared/data absent)"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--block", type=int, default=256, help="pairs per Ray block")
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    import torch

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.distributed import RayConfig, RayScorer, ScorerSpec, connect
    from crossrank.evaluation.machine import machine_info

    pairs, source = load_pairs(args.pairs)
    n = len(pairs)
    results = {"machine": machine_info(), "pairs": n, "source": source, "block_pairs": args.block,
               "model": args.model, "rows": {}}
    local = CrossEncoder(args.model, use_ensemble=False)
    local.score(pairs[:64])  # warm-up
    reference = None
    for threads in (1, 2):
        torch.set_num_threads(threads)
        seconds, scores = timed(lambda: local.score(pairs))
        reference = scores if reference is None else reference
        results["rows"][f"single process, {threads} thread(s)"] = {"seconds": seconds, "pairs_per_s": n / seconds}
        print(f"single {threads}: {n / seconds:.1f} pairs/s", flush=True)
    del local

    ray = connect(RayConfig())
    spec = ScorerSpec(args.model, use_ensemble=False)
    starts = {}
    for workers in (1, 2):
        # The pool's start (worker processes, imports, model load) as the time of a job of one 1-pair block
        # per worker: every job starts its own pool, so it is paid once per job, whatever the job's size.
        starts[workers], _ = timed(lambda: RayScorer(spec, RayConfig(workers=workers, block_pairs=1))
                                   .score(pairs[:workers]))
        results[f"pool_start_s ({workers} worker(s))"] = starts[workers]
        scorer = RayScorer(spec, RayConfig(workers=workers, threads_per_worker=1, block_pairs=args.block))
        seconds, scores = timed(lambda: scorer.score(pairs))
        results["rows"][f"Ray, {workers} worker(s) x 1 thread"] = {
            "seconds": seconds, "pairs_per_s": n / seconds,
            "pairs_per_s_after_start": n / max(seconds - starts[workers], 1e-9),
            "max_abs_diff_vs_single": float(np.abs(np.asarray(scores) - reference).max())}
        print(f"ray {workers}: {n / seconds:.1f} pairs/s", flush=True)
    startup = starts[1]
    ray.shutdown()

    rows = results["rows"]
    single1 = rows["single process, 1 thread(s)"]["pairs_per_s"]
    ray1, ray2 = rows["Ray, 1 worker(s) x 1 thread"], rows["Ray, 2 worker(s) x 1 thread"]
    blocks = -(-n // args.block)
    per_block_overhead = max(ray1["seconds"] - startup - n / single1, 0.0) / blocks
    results["summary"] = {
        "ray_overhead_1_worker (1 - ray/single at 1 core, pool start included)": 1 - ray1["pairs_per_s"] / single1,
        "ray_overhead_1_worker_after_start": 1 - ray1["pairs_per_s_after_start"] / single1,
        "scaling_1_to_2_workers (x linear)": ray2["pairs_per_s"] / (2 * ray1["pairs_per_s"]),
        "scaling_1_to_2_workers_after_start (x linear)": ray2["pairs_per_s_after_start"] /
        (2 * ray1["pairs_per_s_after_start"]),
        "ray_2_workers_vs_single_2_threads": ray2["pairs_per_s"] / rows["single process, 2 thread(s)"]["pairs_per_s"],
        "overhead_per_block_s": per_block_overhead,
    }
    # Extrapolation: N workers, each at the measured 1-thread rate, a fixed pool start, the per-block cost.
    per_worker = ray1["pairs_per_s_after_start"]
    job = 1_000_000
    results["extrapolation_1M_pairs"] = {
        str(w): {"hours": (startup + job / (per_worker * w)) / 3600, "pairs_per_s": per_worker * w}
        for w in (1, 2, 16, 64, 256)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_scaling.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = results["summary"]
    lines = ["# Ray scale-out", "",
             f"{n} {source}; the shipped default's cross-encoder, torch fp32; blocks of {args.block} pairs. "
             f"Machine: {results['machine'].get('cpu', '')}.", "",
             "| run | seconds | pairs/s | pairs/s after pool start | max diff vs single |", "|---|---|---|---|---|"]
    for label, row in rows.items():
        lines.append(f"| {label} | {row['seconds']:.1f} | {row['pairs_per_s']:.1f} | "
                     f"{row.get('pairs_per_s_after_start', row['pairs_per_s']):.1f} | "
                     f"{row.get('max_abs_diff_vs_single', 0.0):.1e} |")
    lines += ["", f"Actor pool start: {starts[1]:.1f} s (1 worker), {starts[2]:.1f} s (2 workers). "
              f"Scaling 1 -> 2 workers: {summary['scaling_1_to_2_workers (x linear)']:.2f}x linear "
              f"({summary['scaling_1_to_2_workers_after_start (x linear)']:.2f}x after the pool start). "
              f"Ray overhead at 1 core: {summary['ray_overhead_1_worker (1 - ray/single at 1 core, pool start included)']:.1%} "
              f"({summary['ray_overhead_1_worker_after_start']:.1%} after the start); "
              f"{summary['overhead_per_block_s'] * 1000:.0f} ms per block.", "",
              "Extrapolation, 1M pairs (10k queries x 100): per-worker rate x workers, plus the pool start:", "",
              "| workers (1 thread each) | pairs/s | hours |", "|---|---|---|"]
    for workers, row in results["extrapolation_1M_pairs"].items():
        lines.append(f"| {workers} | {row['pairs_per_s']:.0f} | {row['hours']:.2f} |")
    (args.out / "ray_scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
