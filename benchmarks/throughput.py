"""Throughput of crossrank vs sentence-transformers' CrossEncoder.predict, same model, pairs and threads.

Model: crossrank's shipped default cross-encoder weights alone (trained from all-MiniLM-L6-v2, stored in
fp16, computed in fp32; its ensemble.json partner is left out): the ms-marco-MiniLM-L-6-v2 architecture.
Results measured before the trained default shipped used the same architecture with an untrained head. Pairs: the BM25 top-100 candidates of the
first TREC DL 2020 queries. CPU, float32, warm-up excluded, best of alternating rounds.

    python benchmarks/throughput.py [--queries 7] [--rounds 5] [--threads 2] [--no-backends]

Then the backend table (benchmarks/throughput_backends.py): torch fp32 / bf16 and ONNX fp32 / int8 against
sentence-transformers in the same run, with nDCG@10 on DL 2020 and SciFact, latency and peak RSS.

Writes benchmarks/results/throughput.json, throughput.md and throughput_backends.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "trec-dl-2020"


def load_pairs(data: Path, n_queries: int) -> list[tuple[str, str]]:
    """(query, passage) pairs: each query's BM25 top-100, for the first n queries of the run."""
    queries = {}
    with open(data / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            queries[obj["_id"]] = obj["text"]
    run: dict[str, list[str]] = {}
    with open(data / "runs" / "bm25.top100.tsv", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows)
        for qid, docid, _rank, _score in rows:
            run.setdefault(qid, []).append(docid)
    chosen = list(run)[:n_queries]
    wanted = {d for q in chosen for d in run[q]}
    corpus = {}
    with open(data / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            if obj["_id"] in wanted:
                corpus[obj["_id"]] = obj["text"]
    return [(queries[q], corpus[d]) for q in chosen for d in run[q]]


def reference_scores(folder: str, pairs, max_length: int = 512) -> np.ndarray:
    """transformers eager fp32, one pair at a time: the ground truth both engines are checked against."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager",
                                                               dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for query, doc in pairs:
            enc = tokenizer(query, doc, truncation="only_second", max_length=max_length,
                            return_tensors="pt")
            out.append(float(model(**enc).logits[0, 0]))
    return np.array(out)


def st_padding(st_model, pairs, batch_size: int) -> tuple[int, int]:
    """Real and padded tokens of sentence-transformers' batching (sorted by characters, fixed count)."""
    order = np.argsort([-(len(q) + len(d)) for q, d in pairs], kind="stable")
    real = padded = 0
    for start in range(0, len(order), batch_size):
        batch = [pairs[i] for i in order[start:start + batch_size]]
        enc = st_model.tokenizer([q for q, _ in batch], [d for _, d in batch], truncation=True, max_length=512)
        lengths = [len(ids) for ids in enc["input_ids"]]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
    return real, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--queries", type=int, default=7, help="queries x 100 candidates = pairs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' default")
    parser.add_argument("--batch-tokens", type=int, default=None, help="crossrank's (default: its own)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--no-backends", dest="backends", action="store_false", help="skip the backend table")
    parser.add_argument("--quality-datasets", nargs="+", default=["trec-dl-2020", "scifact"])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "benchmark-scores",
                        help="per-pair scores, reused by later runs")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"benchmark data not found in {args.data} (expected the shared TREC DL 2020 folder)")

    torch.set_num_threads(args.threads)
    from sentence_transformers import CrossEncoder as STCrossEncoder
    import sentence_transformers

    from crossrank import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.model.default import default_model_dir

    folder = str(default_model_dir())
    pairs = load_pairs(args.data, args.queries)
    ours = CrossEncoder(folder, batch_tokens=args.batch_tokens, use_ensemble=False)
    # Ablation: the same engine with the stock last layer, to show what each idea is worth.
    ours_full = CrossEncoder(folder, batch_tokens=args.batch_tokens, cls_only_last_layer=False, use_ensemble=False)
    theirs = STCrossEncoder(folder, device="cpu", model_kwargs={"dtype": torch.float32})
    print(f"{len(pairs)} pairs, {args.threads} threads, model {folder}", file=sys.stderr)

    warm = pairs[:64]
    ours.score(warm)
    ours_full.score(warm)
    theirs.predict(warm, batch_size=args.st_batch_size)
    timings: dict[str, list[float]] = {"crossrank": [], "crossrank, full last layer": [],
                                       "sentence-transformers": []}
    breakdowns = []
    for round_ in range(args.rounds):
        runners = [("crossrank", lambda: ours.score(pairs)),
                   ("crossrank, full last layer", lambda: ours_full.score(pairs)),
                   ("sentence-transformers", lambda: theirs.predict(pairs, batch_size=args.st_batch_size))]
        if round_ % 2:
            runners.reverse()  # alternate who goes first, so drift hits both alike
        for name, run in runners:
            start = time.perf_counter()
            scores = run()
            timings[name].append(time.perf_counter() - start)
            if name == "crossrank":
                ours_scores = scores
                breakdowns.append(ours.last_stats)
            elif name == "sentence-transformers":
                st_scores = np.asarray(scores)
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {len(pairs) / t[-1]:.1f} pairs/s" for n, t in timings.items()),
              file=sys.stderr)

    reference = reference_scores(folder, pairs, ours.max_length)  # truncated as both engines truncate
    best = {name: len(pairs) / min(t) for name, t in timings.items()}
    stats = breakdowns[int(np.argmin(timings["crossrank"]))]
    st_real, st_padded = st_padding(theirs, pairs, args.st_batch_size)
    best_ours = min(timings["crossrank"])
    result = {
        "benchmark": "throughput",
        "pairs": len(pairs),
        "mean_tokens_per_pair": stats.real_tokens / stats.pairs,
        "threads": args.threads,
        "rounds": args.rounds,
        "model": "crossrank default cross-encoder weights (MiniLM-L6, fp32 compute)",
        "machine": {**machine_info(), "sentence_transformers": sentence_transformers.__version__},
        "pairs_per_second": best,
        "pairs_per_second_median": {n: len(pairs) / statistics.median(t) for n, t in timings.items()},
        "ratio_crossrank_over_st": best["crossrank"] / best["sentence-transformers"],
        "max_abs_diff": {
            "crossrank_vs_transformers_reference": float(np.max(np.abs(ours_scores - reference))),
            "sentence_transformers_vs_reference": float(np.max(np.abs(st_scores - reference))),
            "crossrank_vs_sentence_transformers": float(np.max(np.abs(ours_scores - st_scores))),
        },
        "crossrank_breakdown": {
            "total_seconds": best_ours,
            "tokenize_seconds": stats.tokenize_seconds,
            "pad_seconds": stats.pad_seconds,
            "forward_seconds": stats.forward_seconds,
            "other_seconds": best_ours - stats.total_seconds,
            "batches": stats.batches,
            "batch_tokens": ours.engine.batch_tokens,
            "padding_waste": stats.padding_waste,
        },
        "sentence_transformers_padding_waste": 1 - st_real / st_padded,
    }
    markdown = _markdown(result)
    if args.backends:
        from throughput_backends import markdown as backend_markdown
        from throughput_backends import plot, run_backend_table

        result["backends"] = run_backend_table(folder, pairs, args.data, theirs, args)
        plot(result["backends"], args.out / "throughput_backends.png")
        markdown += "\n" + backend_markdown(result["backends"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "throughput.md").write_text(markdown)
    print(markdown)


def _markdown(r: dict) -> str:
    b = r["crossrank_breakdown"]
    d = r["max_abs_diff"]
    pps = r["pairs_per_second"]
    med = r["pairs_per_second_median"]
    return f"""# Throughput: crossrank vs sentence-transformers

{r['pairs']} TREC DL 2020 BM25 top-100 pairs (mean {r['mean_tokens_per_pair']:.1f} tokens), {r['model']},
CPU fp32, {r['threads']} threads, {r['machine']['cpu']} ({r['machine']['cores']} cores), best of {r['rounds']}
alternating rounds, warm-up excluded. torch {r['machine']['torch']}, transformers {r['machine']['transformers']},
sentence-transformers {r['machine']['sentence_transformers']}.

| engine | pairs/s (best) | pairs/s (median) | padding waste | max abs diff vs transformers eager |
|---|---|---|---|---|
| crossrank | {pps['crossrank']:.1f} | {med['crossrank']:.1f} | {100 * b['padding_waste']:.1f}% | {d['crossrank_vs_transformers_reference']:.2e} |
| crossrank, stock last layer (ablation) | {pps['crossrank, full last layer']:.1f} | {med['crossrank, full last layer']:.1f} | {100 * b['padding_waste']:.1f}% | n/a |
| sentence-transformers `CrossEncoder.predict` | {pps['sentence-transformers']:.1f} | {med['sentence-transformers']:.1f} | {100 * r['sentence_transformers_padding_waste']:.1f}% | {d['sentence_transformers_vs_reference']:.2e} |

**Ratio crossrank / sentence-transformers: {r['ratio_crossrank_over_st']:.2f}x**; max |score diff| between them
{d['crossrank_vs_sentence_transformers']:.2e}.

Where crossrank's time goes (best round, {b['total_seconds']:.2f} s): tokenization {b['tokenize_seconds']:.3f} s,
padding {b['pad_seconds']:.3f} s, forward pass {b['forward_seconds']:.2f} s
({100 * b['forward_seconds'] / b['total_seconds']:.1f}%), other {b['other_seconds']:.3f} s;
{b['batches']} batches of at most {b['batch_tokens']} padded tokens, {100 * b['padding_waste']:.1f}% padding.
"""


if __name__ == "__main__":
    main()
