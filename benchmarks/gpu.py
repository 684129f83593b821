"""GPU reranking throughput and latency, in one go (issue 20): crossrank padded vs packed vs sentence-transformers.

Prepared to run whenever a GPU is at hand (about 15 minutes each time): it needs only the project installed
(``pip install torch==2.13.0 -e .`` on the GPU machine installs the CUDA build's matching wheel there) and
finishes in a few minutes. Same pairs, same process, same GPU for every system:

- models: the shipped default's cross-encoder (MiniLM-L6, real weights) and a 12-layer model of the same
  width (random weights: speed only);
- max_length 128 and 512; crossrank over several token budgets, padded (``packed=False``) and packed
  (``packed=True``), bf16 on Ampere and newer (fp16 before);
- sentence-transformers ``CrossEncoder.predict`` in fp16 (``model.half()``), batch 64;
- single-query latency for K = 100 (median of 20 calls) for each system.

Without CUDA it runs on the CPU (fp32, small settings) so it can be checked anywhere: ``--smoke``.

    python benchmarks/gpu.py [--pairs 4000] [--budgets 16384 32768 65536]
    python benchmarks/gpu.py --smoke      # CPU, a few pairs: checks the script, no figures

Writes benchmarks/results/gpu.json and gpu.md (``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CONFIG = ROOT.parent / "shared" / "models" / "ms-marco-MiniLM-L-6-v2-config"


def twelve_layer_model(into: Path, source: Path) -> Path:
    """The default's architecture with 12 layers, random weights (speed only), and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(source)
    config.num_hidden_layers = 12
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(into)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / name).is_file():
            shutil.copy(source / name, into / name)
    return into


def timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[16384, 32768, 65536])
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "bert-12l"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="CPU-sized settings: checks the script")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import torch
    from ray_scaling import load_pairs
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.model.default import default_model_dir

    cuda = torch.cuda.is_available()
    if args.smoke:
        args.pairs, args.budgets, args.max_lengths, args.rounds = 24, [2048], [128], 1
    device = "cuda" if cuda else "cpu"
    dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if cuda else "float32"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    pairs, source = load_pairs(args.pairs)
    latency_pairs = pairs[:100]
    results = {"machine": machine_info(), "device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": dtype,
               "pairs": len(pairs), "source": source, "rows": []}

    with tempfile.TemporaryDirectory() as tmp:
        folders = {"minilm-l6": default_model_dir,  # built only when asked for
                   "bert-12l": lambda: twelve_layer_model(Path(tmp) / "bert-12l",
                                                          CONFIG if CONFIG.is_dir() else default_model_dir())}
        for name in args.models:
            folder = folders[name]()
            for max_length in args.max_lengths:
                systems = {}  # label -> run(pairs)
                for budget in args.budgets:
                    for packed in (False, True):
                        label = f"crossrank {'packed' if packed else 'padded'}, {budget} tokens"
                        systems[label] = CrossEncoder(folder, device=device, dtype=dtype, max_length=max_length,
                                                      batch_tokens=budget, packed=packed, use_ensemble=False).predict
                st = STCrossEncoder(str(folder), device=device, max_length=max_length)
                if cuda:
                    st.model.half()
                systems["sentence-transformers predict, batch 64" + (", fp16" if cuda else "")] = (
                    lambda batch, st=st: st.predict(batch, batch_size=64, show_progress_bar=False))
                for run in systems.values():  # warm-up (CUDA context, kernels, allocator)
                    run(pairs[:64])
                best = {label: float("inf") for label in systems}
                for _ in range(args.rounds):  # alternating rounds: machine noise hits every system alike
                    for label, run in systems.items():
                        best[label] = min(best[label], timed(lambda: run(pairs), sync))
                for label, run in systems.items():
                    calls = [timed(lambda: run(latency_pairs), sync) for _ in range(3 if args.smoke else 20)]
                    row = {"model": name, "max_length": max_length, "system": label,
                           "pairs_per_s": len(pairs) / best[label], "latency_k100_ms": 1000 * statistics.median(calls)}
                    results["rows"].append(row)
                    print(json.dumps(row), flush=True)
                del systems, st
                if cuda:
                    torch.cuda.empty_cache()
    for row in results["rows"]:
        st_row = next(r for r in results["rows"] if r["model"] == row["model"] and r["max_length"] == row["max_length"]
                      and r["system"].startswith("sentence-transformers"))
        row["vs_sentence_transformers"] = row["pairs_per_s"] / st_row["pairs_per_s"]
    if args.smoke:
        print(json.dumps({"smoke": True, "rows": len(results["rows"])}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# GPU reranking throughput", "", f"{results['device']}, {dtype}; {len(pairs)} {source}; best of "
             f"{args.rounds} alternating rounds; latency: median of 20 single-query calls of K = 100.", "",
             "| model | max_length | system | pairs/s | x sentence-transformers | latency K=100 (ms) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['max_length']} | {r['system']} | {r['pairs_per_s']:.0f} | "
              f"{r['vs_sentence_transformers']:.2f}x | {r['latency_k100_ms']:.1f} |" for r in results["rows"]]
    (args.out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
