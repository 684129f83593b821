"""GPU reranking throughput and latency, in one go (issue 20): crossrank padded vs packed vs sentence-transformers.

Prepared to run whenever a GPU is at hand (about 15 minutes each time): it needs only the project installed
(``pip install torch==2.13.0 -e .`` on the GPU machine installs the CUDA build's matching wheel there) and
finishes in a few minutes. Same pairs, same process, same GPU for every system:

- models: the shipped default's cross-encoder (MiniLM-L6, real weights) and a 12-layer model of the same
  width (random weights: speed only);
- max_length 128 and 512; crossrank over several token budgets, padded (``packed=False``) and packed
  (``packed=True``), bf16 on Ampere and newer (fp16 before);
- sentence-transformers ``CrossEncoder.predict`` in fp16 (``model.half()``), batch 64;
- crossrank with no budget given (``batch_tokens=None``: derived from the GPU's free memory) and, on a
  machine with several GPUs, over all of them (``device="cuda"``);
- single-query latency for K = 100 (median of 20 calls) for each system;
- checks: a 1,000-document request of 512-token documents with the defaults (must not run out of memory),
  and the GPU memory reserved before loading, after scoring and after ``close()``.

Pairs: max_length 128 reads TREC DL 2020 BM25 top-100 passages, max_length 512 SciFact BM25 top-100
abstracts (long enough for padding to matter). ``../shared`` does not travel to a GPU machine, so
``--write-pairs DIR`` (run here) writes them to DIR/short.jsonl and DIR/long.jsonl to carry there, and
``--pairs-dir DIR`` reads them (synthetic pairs where neither is available).

Without CUDA it runs on the CPU (fp32, small settings) so it can be checked anywhere: ``--smoke``.

    python benchmarks/gpu.py --write-pairs .gpu-pairs          # here, once
    bash benchmarks/gpu_check.sh                                # on the GPU machine: tests + this benchmark
    python benchmarks/gpu.py --smoke --pairs-dir .gpu-pairs     # CPU, a few pairs: checks the script

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


def write_pairs(folder: Path, count: int) -> None:
    """Short (DL 2020 passages) and long (SciFact abstracts) BM25 top-100 pairs as JSONL, to carry to a GPU."""
    from reranker_quality import first_stage, pairs_of

    folder.mkdir(parents=True, exist_ok=True)
    for name, dataset, split in (("short", "trec-dl-2020", "test"), ("long", "scifact", "test")):
        data, _, queries, run = first_stage(dataset, split, 100)
        pairs = pairs_of(data, {q: list(docs) for q, docs in run.items()}, queries)[:count]
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps({"query": q, "document": d}) + "\n" for q, d in pairs)
        print(f"{folder / name}.jsonl: {len(pairs)} pairs of {dataset}")


def read_pairs(folder: Path | None, name: str, count: int) -> tuple[list[tuple[str, str]], str]:
    source = {"short": "TREC DL 2020 BM25 top-100 passages", "long": "SciFact BM25 top-100 abstracts"}[name]
    if folder is not None and (folder / f"{name}.jsonl").is_file():
        with open(folder / f"{name}.jsonl", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle][:count]
        return [(r["query"], r["document"]) for r in rows], source
    from ray_scaling import load_pairs

    pairs, source = load_pairs(count)
    if name == "long":  # about 300 words: the window fills, as it does with abstracts
        pairs = [(q, " ".join([d] * (1 + 300 // max(1, len(d.split()))))) for q, d in pairs]
        source += ", repeated to about 300 words"
    return pairs, source


def gpu_checks(folder, device: str, cuda: bool, count: int = 1000) -> dict:
    """What must hold on a GPU besides speed: no out-of-memory on the biggest request, memory given back."""
    import torch

    from crossrank.cross_encoder import CrossEncoder

    reserved = (lambda: torch.cuda.memory_reserved() / 2**20) if cuda else (lambda: 0.0)
    if cuda:
        torch.cuda.empty_cache()
    out = {"reserved_mib_before_load": reserved()}
    ce = CrossEncoder(folder, device=device, max_length=512, use_ensemble=False)
    out.update(dtype=ce.dtype, batch_tokens_from_memory=ce.engine.batch_tokens, devices=ce.devices)
    documents = [("protein folding energy landscape " * 200)[: 3000 + i] for i in range(count)]
    start = time.perf_counter()
    try:
        results = ce.rerank("how do proteins fold", documents, top_k=10)
        out["request_1000x512_seconds"] = time.perf_counter() - start
        out["request_1000x512_ok"] = len(results) == min(10, count)
        out["request_1000x512_batches"] = ce.last_stats.batches
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the rest of the run still counts
        out["request_1000x512_ok"], out["request_1000x512_error"] = False, f"{type(exc).__name__}: {exc}"
    out["reserved_mib_after_scoring"] = reserved()
    ce.close()
    out["reserved_mib_after_close"] = reserved()
    del ce
    print(json.dumps({"checks": out}), flush=True)
    return out


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
    parser.add_argument("--pairs-dir", type=Path, default=None, help="short.jsonl / long.jsonl from --write-pairs")
    parser.add_argument("--write-pairs", type=Path, default=None, help="Write the pairs here (needs ../shared) and stop")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.write_pairs is not None:
        write_pairs(args.write_pairs, args.pairs)
        return

    import torch
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.model.default import default_model_dir

    cuda = torch.cuda.is_available()
    if args.smoke:
        args.pairs, args.budgets, args.max_lengths, args.rounds = 24, [2048], [128, 512], 1
    device = "cuda" if cuda else "cpu"
    dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if cuda else "float32"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    pair_sets = {128: read_pairs(args.pairs_dir, "short", args.pairs), 512: read_pairs(args.pairs_dir, "long", args.pairs)}
    gpus = torch.cuda.device_count() if cuda else 0
    results = {"machine": machine_info(), "device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": dtype,
               "gpus": gpus, "torch": torch.__version__, "pairs": {n: s for n, (_, s) in pair_sets.items()},
               "rows": []}

    with tempfile.TemporaryDirectory() as tmp:
        folders = {"minilm-l6": default_model_dir,  # built only when asked for
                   "bert-12l": lambda: twelve_layer_model(Path(tmp) / "bert-12l",
                                                          CONFIG if CONFIG.is_dir() else default_model_dir())}
        for name in args.models:
            folder = folders[name]()
            for max_length in args.max_lengths:
                pairs, _ = pair_sets[512 if max_length > 128 else 128]
                latency_pairs = pairs[:100]
                systems = {}  # label -> run(pairs)
                for budget in args.budgets:
                    for packed in (False, True):
                        label = f"crossrank {'packed' if packed else 'padded'}, {budget} tokens"
                        systems[label] = CrossEncoder(folder, device=device, dtype=dtype, max_length=max_length,
                                                      batch_tokens=budget, packed=packed, use_ensemble=False).predict
                systems["crossrank packed, budget from free memory"] = CrossEncoder(
                    folder, device=device, max_length=max_length, packed=True, use_ensemble=False).predict
                if gpus > 1:
                    systems[f"crossrank packed, {gpus} GPUs"] = CrossEncoder(
                        folder, device="cuda", max_length=max_length, packed=True, use_ensemble=False).predict
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
                    row = {"model": name, "max_length": max_length, "system": label, "pairs": len(pairs),
                           "pairs_per_s": len(pairs) / best[label], "latency_k100_ms": 1000 * statistics.median(calls)}
                    results["rows"].append(row)
                    print(json.dumps(row), flush=True)
                del systems, st
                if cuda:
                    torch.cuda.empty_cache()
            if name == "minilm-l6":
                results["checks"] = gpu_checks(folder, device, cuda, 20 if args.smoke else 1000)
    for row in results["rows"]:
        st_row = next(r for r in results["rows"] if r["model"] == row["model"] and r["max_length"] == row["max_length"]
                      and r["system"].startswith("sentence-transformers"))
        row["vs_sentence_transformers"] = row["pairs_per_s"] / st_row["pairs_per_s"]
    if args.smoke:
        print(json.dumps({"smoke": True, "rows": len(results["rows"])}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# GPU reranking throughput", "", f"{results['device']} x {gpus}, {dtype}, torch {torch.__version__}; "
             f"max_length 128: {pair_sets[128][1]}; 512: {pair_sets[512][1]}; best of {args.rounds} alternating "
             "rounds; latency: median of 20 single-query calls of K = 100.", "",
             "| model | max_length | system | pairs/s | x sentence-transformers | latency K=100 (ms) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['max_length']} | {r['system']} | {r['pairs_per_s']:.0f} | "
              f"{r['vs_sentence_transformers']:.2f}x | {r['latency_k100_ms']:.1f} |" for r in results["rows"]]
    checks = results.get("checks")
    if checks:
        lines += ["", "Checks (MiniLM-L6, max_length 512, defaults): a 1,000-document request of 512-token documents "
                  + (f"ran in {checks['request_1000x512_seconds']:.2f} s in {checks['request_1000x512_batches']} "
                     f"batches of at most {checks['batch_tokens_from_memory']} padded tokens (budget from free memory)"
                     if checks.get("request_1000x512_ok") else f"failed: {checks.get('request_1000x512_error')}")
                  + f"; GPU memory reserved: {checks['reserved_mib_before_load']:.0f} MiB before loading, "
                  f"{checks['reserved_mib_after_scoring']:.0f} MiB after scoring, "
                  f"{checks['reserved_mib_after_close']:.0f} MiB after close()."]
    (args.out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
