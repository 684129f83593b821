"""CPU speed of the shipped models side by side: the shipped default, "fast", and optionally the default
as shipped at a commit (``--v1``) and a candidate folder (``--v2``).

Same pairs (TREC DL 2020 BM25 top-100 pairs when ../shared/data is there, else synthetic), same threads,
torch fp32 and bf16, each model as shipped (the default with its bi-encoder partner); best of ``--rounds``
alternating rounds, so machine noise hits every model alike. Reports pairs/s and each model's speed
against the shipped default (issue 16: a new default at least 0.8x v1; fast about 3x the default), and
the default's cross-encoder alone (no bi-encoder partner), the fallback that stood in before "fast".

    python benchmarks/shipped_models_speed.py [--v1 bd1be72] [--v2 path/to/candidate-folder]

Writes benchmarks/results/shipped_models_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def v1_folder(commit: str, into: Path) -> Path:
    """The default model folder as shipped at ``commit`` (v1 stays reproducible from git history)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src/crossrank/default_model"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src" / "crossrank" / "default_model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v1", default=None, help="also the default as shipped at this commit (e.g. bd1be72)")
    parser.add_argument("--v2", default=None, help="also this candidate folder")
    parser.add_argument("--pairs", type=int, default=700)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import torch

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from ray_scaling import load_pairs

    torch.set_num_threads(args.threads)
    pairs, source = load_pairs(args.pairs)
    results = {"machine": machine_info(), "pairs": len(pairs), "source": source, "threads": args.threads,
               "v1_commit": args.v1, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        from crossrank.model.default import SHIPPED_MODELS

        folders = {"shipped default": "default"}
        if args.v1:
            folders[f"default at {args.v1}"] = str(v1_folder(args.v1, Path(tmp)))
        if args.v2:
            folders["candidate " + Path(args.v2).name] = args.v2
        # The default's cross-encoder without its bi-encoder partner: the fallback that stood in before "fast".
        folders["default, cross-encoder alone"] = "default"
        if "fast" in SHIPPED_MODELS:
            folders["fast"] = "fast"
        for dtype in ("float32", "bfloat16"):
            models = {name: CrossEncoder(folder, dtype=dtype, use_ensemble="alone" not in name)
                      for name, folder in folders.items()}
            for model in models.values():
                model.score(pairs[:64])  # warm-up
            best = {name: float("inf") for name in models}
            for _ in range(args.rounds):
                for name, model in models.items():
                    start = time.perf_counter()
                    model.score(pairs)
                    best[name] = min(best[name], time.perf_counter() - start)
            for name, seconds in best.items():
                results["rows"][f"{name}, {dtype}"] = {"seconds": seconds, "pairs_per_s": len(pairs) / seconds}
                print(f"{name} {dtype}: {len(pairs) / seconds:.1f} pairs/s", flush=True)
            del models
    rows = results["rows"]
    names = [label.rsplit(", ", 1)[0] for label in rows if label.endswith(", float32")]
    results["ratios"] = {dtype: {f"{name} / shipped default": rows[f"{name}, {dtype}"]["pairs_per_s"] /
                                 rows[f"shipped default, {dtype}"]["pairs_per_s"]
                                 for name in names if name != "shipped default"}
                         for dtype in ("float32", "bfloat16")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shipped_models_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Shipped models: CPU speed", "",
             f"{len(pairs)} {source}; {args.threads} threads; each model as shipped (the defaults with their "
             f"bi-encoder partner); best of {args.rounds} alternating rounds. Machine: "
             f"{results['machine'].get('cpu', '')}.", "",
             "| model | dtype | pairs/s |", "|---|---|---|"]
    for label, row in rows.items():
        name, dtype = label.rsplit(", ", 1)
        lines.append(f"| {name} | {dtype} | {row['pairs_per_s']:.1f} |")
    lines += ["", "| ratio | float32 | bfloat16 |", "|---|---|---|"]
    for ratio in results["ratios"]["float32"]:
        lines.append(f"| {ratio} | {results['ratios']['float32'][ratio]:.2f}x | {results['ratios']['bfloat16'][ratio]:.2f}x |")
    (args.out / "shipped_models_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
