"""The backend table of benchmarks/throughput.py: speed, ranking quality, latency and memory per backend.

Every backend runs the shipped default's cross-encoder weights (``use_ensemble=False``) in this process, on
the same pairs, in alternating rounds beside sentence-transformers' ``CrossEncoder.predict`` (torch fp32),
so each speed is a ratio measured side by side. Quality: nDCG@10 of each backend on TREC DL 2020 and
SciFact BM25 top-100 (test splits), for the cross-encoder alone and for the full default (its ensemble
partner, the bi-encoder, is torch fp32 in every row, so only the cross-encoder's precision changes).
Latency: one query at a time, K = 10, 50, 100. Peak RSS: one fresh process per backend.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BACKENDS = [("torch", "float32"), ("torch", "bfloat16"), ("onnx", "float32"), ("onnx", "int8"), ("openvino", "float32"),
            ("openvino", "int8")]


def label(backend: str, dtype: str) -> str:
    return f"{backend} {dtype}"


def load_backends(folder: str):
    from crossrank import CrossEncoder

    return {label(b, d): CrossEncoder(folder, backend=b, dtype=d, use_ensemble=False) for b, d in BACKENDS}


def speed(engines: dict, st_model, pairs, rounds: int, st_batch_size: int) -> dict:
    """Best pairs/s of each backend and of sentence-transformers, alternating the order every round."""
    runners = {name: (lambda ce=ce: ce.score(pairs)) for name, ce in engines.items()}
    runners["sentence-transformers predict (torch fp32)"] = lambda: st_model.predict(
        pairs, batch_size=st_batch_size, show_progress_bar=False)
    for run in runners.values():
        run()  # warm-up (and the scores below)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(rounds):
        order = list(runners) if round_ % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
        print(f"backends round {round_ + 1}: " + ", ".join(f"{n} {len(pairs) / t[-1]:.0f}" for n, t in times.items()),
              file=sys.stderr)
    st_best = len(pairs) / min(times["sentence-transformers predict (torch fp32)"])
    return {name: {"pairs_per_second": len(pairs) / min(t), "ratio_to_st": len(pairs) / min(t) / st_best,
                   "pairs_per_second_median": len(pairs) / statistics.median(t)} for name, t in times.items()}


def fidelity(engines: dict, pairs) -> dict:
    from scipy.stats import spearmanr

    reference = engines[label("torch", "float32")].score(pairs)
    out = {}
    for name, ce in engines.items():
        scores = ce.score(pairs)
        out[name] = {"max_abs_diff": float(np.max(np.abs(scores - reference))),
                     "spearman": float(spearmanr(scores, reference)[0])}
    return out


def quality(engines: dict, folder: str, datasets: list[str], cache: Path) -> dict:
    """nDCG@10 per dataset and backend, cross-encoder alone and as the full default ensemble."""
    from reranker_quality import cached_scores, first_stage, model_cache_key, pairs_of, to_run

    from crossrank import CrossEncoder
    from crossrank.evaluation.metrics import evaluate
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

    full = CrossEncoder(folder)  # for its ensemble's combination rule (stats, weights, scale, bias)
    bi = BiEncoderReranker(BiEncoder(None))
    results: dict = {}
    for dataset in datasets:
        source, qrels, queries, run = first_stage(dataset, "test", 100)
        lists = {q: list(docs) for q, docs in run.items()}
        pairs = pairs_of(source, lists, queries)
        bi_scores = cached_scores(cache, f"{dataset}-bi-encoder-default", bi, pairs, f"{dataset} bi-encoder")
        results[dataset] = {}
        for name, ce in engines.items():
            key = f"{dataset}-{model_cache_key(folder, ce.max_length)}-{name.replace(' ', '-')}{engine_tag(ce)}"
            ce_scores = cached_scores(cache, key, ce, pairs, f"{dataset} {name}")
            combined = full.ensemble.combine_scores([ce_scores, bi_scores])
            results[dataset][name] = {
                "cross_encoder_alone": evaluate(qrels, to_run(lists, ce_scores), ["ndcg@10"]).metrics["ndcg@10"],
                "full_default": evaluate(qrels, to_run(lists, combined), ["ndcg@10"]).metrics["ndcg@10"],
                "pairs": len(pairs)}
    return results


def engine_tag(ce) -> str:
    """What makes cached scores of one backend stale: the exported graph, or the bf16 method."""
    backend = ce.engine.backend
    if hasattr(backend, "graph"):
        from crossrank.engine.onnx_export import sha256_file

        return "-" + sha256_file(backend.graph)[:12]
    return "-autocast" if getattr(backend, "autocast", False) else ""


def latency(engines: dict, data: Path, ks=(10, 50, 100), queries: int = 30) -> dict:
    """Single-query rerank latency (ms): the first ``queries`` DL 2020 queries, their BM25 top K."""
    from reranker_quality import first_stage

    from crossrank.data.formats import read_corpus

    _, _, query_texts, run = first_stage(str(data), "test", 100)

    chosen = list(run)[:queries]
    corpus = read_corpus(data / "corpus.jsonl", {d for q in chosen for d in run[q]})
    out: dict = {}
    for name, ce in engines.items():
        out[name] = {}
        for k in ks:
            times = []
            for q in chosen:
                docs = [corpus[d].full_text for d in list(run[q])[:k]]
                start = time.perf_counter()
                ce.rerank(query_texts[q], docs)
                times.append(1000 * (time.perf_counter() - start))
            times.sort()
            out[name][f"k{k}"] = {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}
    return out


_RSS_CODE = """
import json, resource, sys, torch
from pathlib import Path
sys.path.insert(0, {bench!r})
torch.set_num_threads({threads})
from throughput import load_pairs
from crossrank import CrossEncoder
ce = CrossEncoder({folder!r}, backend={backend!r}, dtype={dtype!r}, use_ensemble=False)
ce.score(load_pairs(Path({data!r}), {queries}))
# VmHWM, not ru_maxrss: the latter carries the parent's high-water mark across fork and exec.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"peak_rss_mb": peak / 1024}}))
"""


def peak_rss(folder: str, data: Path, queries: int, threads: int) -> dict:
    """Peak resident memory of a fresh process that loads one backend and scores the benchmark pairs."""
    out = {}
    for backend, dtype in BACKENDS:
        code = _RSS_CODE.format(bench=str(Path(__file__).parent), threads=threads, folder=folder, backend=backend,
                                dtype=dtype, data=str(data), queries=queries)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        out[label(backend, dtype)] = json.loads(lines[-1])["peak_rss_mb"] if lines else None
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, (dataset, rows) in zip(axes, result["quality"].items()):
        base = rows[label("torch", "float32")]["cross_encoder_alone"]
        for name, row in rows.items():
            x = result["speed"][name]["ratio_to_st"]
            ax.scatter(x, row["cross_encoder_alone"] - base, s=50)
            ax.annotate(name, (x, row["cross_encoder_alone"] - base), textcoords="offset points", xytext=(5, 5))
        ax.axhspan(-0.005, 0.005, color="green", alpha=0.08)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"{dataset}: cross-encoder alone")
        ax.set_xlabel("speed, x sentence-transformers predict (torch fp32)")
        ax.set_ylabel("nDCG@10 change against torch fp32")
    fig.suptitle("Speed against ranking quality per backend (2-core Zen 4)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict) -> str:
    speed_rows, fid, rss = result["speed"], result["fidelity"], result["peak_rss_mb"]
    lines = ["## Backends", "",
             f"{result['pairs']} pairs as above, {result['threads']} threads; CPU flags: "
             + ", ".join(k for k, v in result["cpu_features"].items() if v) + ".", "",
             "| backend | pairs/s | x sentence-transformers | max abs diff vs torch fp32 | Spearman | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for name, row in speed_rows.items():
        f = fid.get(name, {})
        lines.append(f"| {name} | {row['pairs_per_second']:.1f} | {row['ratio_to_st']:.2f}x | "
                     f"{f.get('max_abs_diff', float('nan')):.4f} | {f.get('spearman', float('nan')):.5f} | "
                     f"{rss.get(name) or float('nan'):.0f} |")
    lines += ["", "nDCG@10 (BM25 top-100, test split); in brackets the change against torch fp32:", "",
              "| backend | " + " | ".join(f"{d} alone | {d} full default" for d in result["quality"]) + " |",
              "|---|" + "---|---|" * len(result["quality"])]
    for name in speed_rows:
        if name not in fid:
            continue
        cells = []
        for dataset, rows in result["quality"].items():
            base = rows[label("torch", "float32")]
            for kind in ("cross_encoder_alone", "full_default"):
                cells.append(f"{rows[name][kind]:.4f} ({rows[name][kind] - base[kind]:+.4f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Single-query latency, ms (p50 / p95), DL 2020 BM25 top K, cross-encoder alone:", "",
              "| backend | K=10 | K=50 | K=100 |", "|---|---|---|---|"]
    for name, row in result["latency"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]['p50_ms']:.0f} / {row[k]['p95_ms']:.0f}"
                                                  for k in ("k10", "k50", "k100")) + " |")
    lines += ["", "![speed against quality](throughput_backends.png)", ""]
    return "\n".join(lines)


def run_backend_table(folder: str, pairs, data: Path, st_model, args) -> dict:
    from crossrank.engine.backends import cpu_features

    engines = load_backends(folder)
    result = {"pairs": len(pairs), "threads": args.threads, "cpu_features": cpu_features(),
              "speed": speed(engines, st_model, pairs, args.rounds, args.st_batch_size),
              "fidelity": fidelity(engines, pairs),
              "latency": latency(engines, data),
              "quality": quality(engines, folder, args.quality_datasets, args.cache),
              "peak_rss_mb": peak_rss(folder, data, args.queries, args.threads)}
    result["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result
