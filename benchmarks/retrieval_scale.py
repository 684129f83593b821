"""How the index scales: build time, size on disk, memory and query latency at 10k, 100k and 1M documents.

Synthetic collection (Zipf-distributed pseudo-words, 40-120 words per document) so that any size can be
generated; dense vectors are synthetic too (384-d, clustered, L2-normalised: embedding 1M documents with a
transformer on a 2-core CPU would take most of a day, and search cost does not depend on where vectors
come from). Each size runs in its own process so memory figures do not mix.

    python benchmarks/retrieval_scale.py [--sizes 10000 100000 1000000] [--hnsw-max 100000]

Writes benchmarks/results/retrieval_scale.json and .md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 384


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def vocabulary(rng, size=30_000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 11, size=size)
    return np.array(["".join(rng.choice(letters, n)) for n in lengths])


class ClusteredVectors:
    """Stands in for a bi-encoder: clustered unit vectors with a low intrinsic dimension, like real
    sentence embeddings (a 32-d latent mixture mapped into 384-d, plus a little isotropic noise)."""

    dimension = DIM
    latent = 32

    def __init__(self, seed: int = 0, clusters: int = 256):
        self.rng = np.random.default_rng(seed)
        basis = np.random.default_rng(12345)  # the same embedding space for documents and queries
        self.projection = basis.standard_normal((self.latent, DIM)).astype(np.float32)
        self.centers = basis.standard_normal((clusters, self.latent)).astype(np.float32)

    def encode(self, texts, progress=False):
        n = len(texts)
        latent = self.centers[self.rng.integers(0, len(self.centers), n)] + \
            0.5 * self.rng.standard_normal((n, self.latent)).astype(np.float32)
        vectors = latent @ self.projection + 0.5 * self.rng.standard_normal((n, DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def one_size(n: int, hnsw: bool, queries: int = 200) -> dict:
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.store import StoredDocument

    rng = np.random.default_rng(n)
    vocab = vocabulary(rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.07
    weights /= weights.sum()
    lengths = rng.integers(40, 121, size=n)
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=weights)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    start = time.perf_counter()
    docs = [StoredDocument(f"doc{i}", "", " ".join(vocab[words[bounds[i]:bounds[i + 1]]])) for i in range(n)]
    generate = time.perf_counter() - start
    base_rss = rss_mb()

    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        path = Path(tmp) / "idx"
        encoder = ClusteredVectors()
        start = time.perf_counter()
        index = CollectionIndex.create(path, IndexSettings(BM25Settings(), "synthetic", hnsw=hnsw))
        index.replace_all(docs, encoder=encoder)
        build = time.perf_counter() - start
        del docs
        sizes = {}
        for part in path.rglob("*"):
            if part.is_file():
                key = "store" if part.name.startswith("docs.sqlite") else \
                    "bm25" if "bm25" in part.parts else "dense" if part.suffix == ".npy" else \
                    "hnsw" if part.suffix == ".hnsw" else "other"
                sizes[key] = sizes.get(key, 0) + part.stat().st_size / 1e6
        build_rss = rss_mb()

        reopened = CollectionIndex(path)  # what a searching process pays: load, then query
        open_rss = rss_mb()
        mid = vocab[50:3000]
        texts = [" ".join(rng.choice(mid, rng.integers(2, 6))) for _ in range(queries)]
        bm25 = reopened.bm25()
        times = []
        for text in texts:
            t0 = time.perf_counter()
            positions, _ = bm25.search(text, 100)
            _ids = [reopened.doc_ids[p] for p in positions]  # id lookup is part of a query
            times.append(time.perf_counter() - t0)
        bm25_ms = np.array(times) * 1000
        dense = reopened.dense()
        qvecs = ClusteredVectors(seed=1).encode([None] * queries)
        exact, exact_ms = [], []
        for q in qvecs:
            t0 = time.perf_counter()
            exact.append(dense.search(q, 10)[0])
            exact_ms.append((time.perf_counter() - t0) * 1000)
        result = {
            "documents": n, "mean_words": float(lengths.mean()), "generate_seconds": generate,
            "build_seconds": build, "disk_mb": sizes, "disk_mb_total": sum(sizes.values()),
            "rss_mb": {"after_generating": base_rss, "after_build": build_rss, "search_process_after_open": open_rss},
            "bm25_ms": {"p50": float(np.percentile(bm25_ms, 50)), "p95": float(np.percentile(bm25_ms, 95))},
            "dense_exact_ms": {"p50": float(np.percentile(exact_ms, 50)), "p95": float(np.percentile(exact_ms, 95))},
        }
        if hnsw and dense.hnsw is not None:
            approx_ms, recall = [], []
            for q, truth in zip(qvecs, exact):
                t0 = time.perf_counter()
                keys, _ = dense.search(q, 10, approximate=True)
                approx_ms.append((time.perf_counter() - t0) * 1000)
                recall.append(len(set(keys.tolist()) & set(truth.tolist())) / 10)
            result["dense_hnsw_ms"] = {"p50": float(np.percentile(approx_ms, 50)),
                                       "p95": float(np.percentile(approx_ms, 95))}
            result["hnsw_recall_at_10"] = float(np.mean(recall))
        reopened.store.close()
        index.store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest size that also builds HNSW")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hnsw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the saved .json")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.hnsw)))
        return
    if args.markdown_only:
        result = json.loads((args.out / "retrieval_scale.json").read_text())
        (args.out / "retrieval_scale.md").write_text(markdown(result))
        return
    rows = []
    for n in args.sizes:
        command = [sys.executable, __file__, "--one", str(n)] + (["--hnsw"] if n <= args.hnsw_max else [])
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    from crossrank.evaluation.machine import machine_info

    result = {"machine": machine_info(), "sizes": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "retrieval_scale.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = ["# Index scale: build, size, memory, query latency", "",
             "| documents | build s | disk MB (store / BM25 / vectors / HNSW) | search RSS MB | BM25 p50 / p95 ms | "
             "dense exact p50 / p95 ms | HNSW p50 / p95 ms | HNSW recall@10 |", "|---|---|---|---|---|---|---|---|"]
    for r in result["sizes"]:
        d = r["disk_mb"]
        hnsw = r.get("dense_hnsw_ms")
        lines.append(
            f"| {r['documents']:,} | {r['build_seconds']:.1f} | {r['disk_mb_total']:.0f} ({d.get('store', 0):.0f} / "
            f"{d.get('bm25', 0):.0f} / {d.get('dense', 0):.0f} / {d.get('hnsw', 0):.0f}) | "
            f"{r['rss_mb']['search_process_after_open']:.0f} | {r['bm25_ms']['p50']:.2f} / {r['bm25_ms']['p95']:.2f} | "
            f"{r['dense_exact_ms']['p50']:.2f} / {r['dense_exact_ms']['p95']:.2f} | "
            + (f"{hnsw['p50']:.2f} / {hnsw['p95']:.2f} | {r['hnsw_recall_at_10']:.3f} |" if hnsw else "not built | - |"))
    m = result["machine"]
    lines += ["", f"Synthetic documents of 40-120 Zipf-distributed pseudo-words; 384-d clustered unit vectors of intrinsic dimension 32; 200 "
              f"queries of 2-5 words; top 100 for BM25, top 10 for dense. Machine: {m['cpu']}, {m['cores']} cores. "
              "Search RSS: resident memory of the benchmark process after building and reopening the index "
              "(includes the generated corpus; vectors and BM25 matrices are memory-mapped).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
