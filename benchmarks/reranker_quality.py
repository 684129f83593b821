"""Reranking quality of a crossrank model on SciFact, NFCorpus and TREC DL 2020 (BM25 top-100, test splits).

For each dataset: the BM25 top-100 (DL 2020: the shipped Pyserini run; SciFact/NFCorpus: a crossrank BM25
index), then nDCG@10 of BM25 alone, the all-MiniLM-L6-v2 bi-encoder as a reranker, the cross-encoder's own
weights, the model as shipped (with its ensemble.json, if any) and, with ``--fit-fusion DATASET:SPLIT``, the
shipped model fused with the BM25 score (``crossrank.ranking.score_fusion``), its weight fitted on the top 30
of up to ``--fit-queries`` queries of that split (never a test split). Per-pair scores are cached in
``--cache`` so re-running costs nothing.

    python benchmarks/reranker_quality.py --model src/crossrank/default_model --datasets trec-dl-2020 scifact nfcorpus

Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEPTH = 100


def bm25_run(folder: Path, queries: dict[str, str], depth: int) -> dict[str, dict[str, float]]:
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.retriever import Retriever
    from crossrank.data.formats import read_corpus

    with tempfile.TemporaryDirectory() as tmp:
        index = CollectionIndex.create(Path(tmp) / "bm25", IndexSettings(BM25Settings()))
        index.replace_all(read_corpus(folder / "corpus.jsonl").values())
        retriever = Retriever(index, "bm25")
        run = {q: {c.id: float(c.score) for c in retriever.retrieve(t, depth)} for q, t in queries.items()}
        index.store.close()
    return run


def first_stage(name: str, split: str, depth: int):
    """(folder, qrels, queries, BM25 top-``depth`` run) of a split; ``name`` is a dataset in ../shared/data
    or a BEIR folder's path."""
    from crossrank.data.formats import ranked, read_qrels, read_queries, read_run

    folder = Path(name) if "/" in name else DATA / name
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv").qrels
    queries = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels}
    if (folder / "runs" / "bm25.top100.tsv").is_file():
        run = read_run(folder / "runs" / "bm25.top100.tsv").run
    else:
        run = bm25_run(folder, queries, depth)
    run = {q: {d: docs[d] for d in ranked(docs)[:depth]} for q, docs in run.items() if q in queries}
    return folder, qrels, queries, run


def cached_scores(cache: Path, key: str, scorer, pairs, label: str) -> np.ndarray:
    from crossrank.cli.progress import pair_progress

    digest = hashlib.sha1(json.dumps([key, pairs[:50], len(pairs)]).encode()).hexdigest()[:16]
    path = cache / f"{digest}.npy"
    if path.is_file():
        return np.load(path)
    start = time.perf_counter()
    with pair_progress(sys.stderr.isatty(), label, len(pairs)) as advance:
        scores = np.asarray(scorer.score(pairs, progress=advance), dtype=np.float64)
    print(f"  {label}: {len(pairs)} pairs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, scores)
    return scores


def model_cache_key(folder: str | Path, max_length: int) -> str:
    """Cache key of a model's own scores: its folder and weights' mtime (retraining invalidates), max_length."""
    folder = Path(folder).resolve()
    return f"{folder}{(folder / 'model.safetensors').stat().st_mtime}own{max_length}"


def pairs_of(folder: Path, lists: dict[str, list[str]], queries: dict[str, str]) -> list[tuple[str, str]]:
    """(query, document text) for every candidate of every query, in list order."""
    from crossrank.data.formats import read_corpus

    needed = {d for docs in lists.values() for d in docs}
    texts = {d.id: d.full_text for d in read_corpus(folder / "corpus.jsonl", ids=needed).values()}
    return [(queries[q], texts[d]) for q, docs in lists.items() for d in docs]


def to_run(lists, scores) -> dict[str, dict[str, float]]:
    run, start = {}, 0
    for qid, docs in lists.items():
        run[qid] = {d: float(s) for d, s in zip(docs, scores[start:start + len(docs)])}
        start += len(docs)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Model folder (crossrank default, or any cross-encoder).")
    parser.add_argument("--datasets", nargs="+", default=["trec-dl-2020", "scifact", "nfcorpus"])
    parser.add_argument("--depth", type=int, default=DEPTH)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--dtype", default=None, help="float32 (default) or bfloat16: quick checks of a stage")
    parser.add_argument("--fit-fusion", default=None, help="DATASET:SPLIT to fit the BM25 fusion weight on.")
    parser.add_argument("--fit-queries", type=int, default=150, help="Queries used to fit the fusion weight.")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "crossrank-quality-cache")
    parser.add_argument("--name", default="reranker_quality")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.evaluation.metrics import evaluate
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

    from crossrank.evaluation.significance import paired_test

    shipped = CrossEncoder(args.model, max_length=args.max_length, dtype=args.dtype)
    own = CrossEncoder(args.model, max_length=args.max_length, use_ensemble=False, dtype=args.dtype)
    bi = BiEncoderReranker(BiEncoder())
    model_key = model_cache_key(args.model, own.max_length) + (args.dtype or "")
    results = {"machine": machine_info(), "model": args.model, "max_length": own.max_length, "depth": args.depth,
               "dtype": own.dtype,
               "ensemble": None if shipped.ensemble is None else {
                   "weights": shipped.ensemble.weights.tolist(), "stats": shipped.ensemble.stats},
               "datasets": {}}
    def shipped_scores(ce, cos):
        """The shipped ensemble's score from cached member scores (members: own weights, bi-encoder)."""
        return ce if shipped.ensemble is None else shipped.ensemble.combine_scores([ce, cos])

    fusion = None
    if args.fit_fusion:
        from crossrank.ranking.score_fusion import fit_first_stage_weight

        name, split = args.fit_fusion.split(":")
        folder, qrels, queries, run = first_stage(name, split, 30)
        keep = sorted(run)[:args.fit_queries]
        run = {q: run[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
        lists = {q: list(docs) for q, docs in run.items()}
        pairs = pairs_of(folder, lists, queries)
        ce = cached_scores(args.cache, model_key, own, pairs, f"{name}:{split} cross-encoder")
        cos = cached_scores(args.cache, "bi-encoder", bi, pairs, f"{name}:{split} bi-encoder")
        fit = fit_first_stage_weight(to_run(lists, shipped_scores(ce, cos)), run,
                                     lambda r: evaluate(qrels, r, ["ndcg@10"]).metrics["ndcg@10"])
        fusion = fit.weight
        results["fusion_fit"] = {"on": args.fit_fusion, "queries": len(lists), "depth": 30, "weight": fit.weight,
                                 "ndcg@10_by_weight": fit.by_weight}
        print(json.dumps(results["fusion_fit"]), flush=True)

    for name in args.datasets:
        if not (DATA / name).is_dir():
            sys.exit(f"{DATA / name} not found")
        folder, qrels, queries, run = first_stage(name, "test", args.depth)
        lists = {q: list(docs) for q, docs in run.items()}
        pairs = pairs_of(folder, lists, queries)
        bm25 = np.array([run[q][d] for q, docs in lists.items() for d in docs], dtype=np.float64)
        ce = cached_scores(args.cache, model_key, own, pairs, f"{name} cross-encoder")
        cos = cached_scores(args.cache, "bi-encoder", bi, pairs, f"{name} bi-encoder")
        systems = {"BM25": bm25, "bi-encoder (cosine)": cos, "cross-encoder weights alone": ce}
        if shipped.ensemble is not None:
            systems["shipped model (cross-encoder + bi-encoder)"] = shipped_scores(ce, cos)
        if fusion is not None:
            from crossrank.ranking.score_fusion import fuse_flat

            fused = fuse_flat(shipped_scores(ce, cos), bm25, [len(docs) for docs in lists.values()], fusion)
            systems[f"shipped model + BM25 fusion (w={fusion}, fitted on {args.fit_fusion})"] = fused
        row = {"queries": len(lists), "pairs": len(pairs), "ndcg@10": {}, "recall@100 (first stage)": None}
        per_query = {}
        for label, scores in systems.items():
            result = evaluate(qrels, to_run(lists, scores), ["ndcg@10"])
            row["ndcg@10"][label] = result.metrics["ndcg@10"]
            per_query[label] = result.per_query["ndcg@10"]
        # Is the model clearly above the bi-encoder it contains? Paired over queries (randomization + t-test).
        best = "shipped model (cross-encoder + bi-encoder)" if shipped.ensemble is not None else \
            "cross-encoder weights alone"
        test = paired_test(per_query["bi-encoder (cosine)"], per_query[best])
        row["paired_vs_bi_encoder"] = {"system": best, "mean_difference": test.mean_difference,
                                       "p_randomization": test.p_randomization, "p_ttest": test.p_ttest,
                                       "queries": test.queries}
        row["recall@100 (first stage)"] = evaluate(qrels, run, ["recall@100"]).metrics["recall@100"]
        results["datasets"][name] = row
        print(json.dumps({name: row}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    labels = list(next(iter(results["datasets"].values()))["ndcg@10"])
    lines = [f"# Reranking quality: {args.model}", "",
             f"nDCG@10, BM25 top-{args.depth} reranked, test splits; max_length {own.max_length}. "
             f"Machine: {results['machine'].get('cpu', '')}.", "",
             "| system | " + " | ".join(results["datasets"]) + " |", "|---|" + "---|" * len(results["datasets"])]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{r['ndcg@10'][label]:.4f}" for r in results["datasets"].values()) + " |")
    tested = next(iter(results["datasets"].values()))["paired_vs_bi_encoder"]["system"]
    lines.append(f"| p, {tested} vs bi-encoder (paired randomization) | " + " | ".join(
        f"{r['paired_vs_bi_encoder']['p_randomization']:.4f}" for r in results["datasets"].values()) + " |")
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
