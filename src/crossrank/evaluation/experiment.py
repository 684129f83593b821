"""Two-stage experiment: rerank the first stage's top K for several K and measure quality and latency.

For every K the report puts the reranked nDCG@10 / MRR@10 beside the first stage's Recall@K (the
ceiling a reranker cannot pass), the per-query rerank latency (p50/p95/p99) and throughput, and a paired
significance test against the first stage. Quality comes from one globally batched scoring pass over the
deepest K (scores are batch-invariant, so a prefix's scores are the same as scoring it alone); latency is
timed query by query, as a service would see it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from crossrank.data.formats import Document, Qrels, Run, write_trec_run
from crossrank.evaluation.machine import machine_info
from crossrank.evaluation.metrics import evaluate
from crossrank.evaluation.significance import PairedTest, paired_test
from crossrank.pipeline.run_reranking import PairScorer, candidate_lists, merge_scores


@dataclass
class ExperimentConfig:
    ks: tuple[int, ...] = (10, 20, 50, 100)
    metrics: tuple[str, ...] = ("ndcg@10", "mrr@10")
    relevance_level: int | None = None
    latency_queries: int = 50  # queries timed one by one for each K (0 = none)
    seed: int = 0


@dataclass
class KResult:
    k: int
    metrics: dict[str, float]
    first_stage_recall: float  # Recall@K of the first stage: the reranker's ceiling
    latency_ms: dict[str, float]  # p50, p95, p99, mean per query
    pairs_per_second: float
    significance: dict[str, PairedTest]  # metric -> test against the first stage
    run_file: str | None = None


@dataclass
class ExperimentResult:
    dataset: str
    first_stage: str
    reranker: str
    queries: int
    relevance_level: int
    first_stage_metrics: dict[str, float]
    results: list[KResult]
    machine: dict[str, object]
    scoring_seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def run_experiment(scorer: PairScorer, reranker_name: str, queries: dict[str, str], corpus: dict[str, Document],
                   qrels: Qrels, run: Run, config: ExperimentConfig, *, dataset: str, first_stage: str,
                   output_dir: Path | None = None, device: str = "cpu",
                   progress: Callable[[int], None] | None = None) -> ExperimentResult:
    ks = tuple(sorted(set(config.ks)))
    judged_run = {q: docs for q, docs in run.items() if q in qrels and q in queries}
    deepest = candidate_lists(judged_run, queries, corpus, max(ks))
    pairs = [(queries[q], corpus[d].full_text) for q, docs in deepest.items() for d in docs]

    start = time.perf_counter()
    scores = scorer.score(pairs, progress=progress)
    scoring_seconds = time.perf_counter() - start

    metric_names = tuple(dict.fromkeys(config.metrics))
    base = evaluate(qrels, judged_run, metric_names, config.relevance_level)
    level = base.relevance_level
    latency_ids = _latency_sample(deepest, config.latency_queries, config.seed)
    # The progress display from crossrank.cli.progress counts the timing step too; a plain callable counts pairs.
    stage = getattr(progress, "stage", None)
    timed = progress if stage is not None else None
    if stage is not None:
        stage("timing queries", len(latency_ids) * len(ks), unit="queries")
    if latency_ids:  # warm-up, excluded from timing
        scorer.score([(queries[latency_ids[0]], corpus[d].full_text) for d in deepest[latency_ids[0]][:8]])

    results = []
    for k in ks:
        lists, flat, offset = {}, [], 0
        for qid, docs in deepest.items():
            lists[qid] = docs[:k]
            flat.append(scores[offset:offset + min(k, len(docs))])
            offset += len(docs)
        reranked = merge_scores(judged_run, lists, np.concatenate(flat) if flat else np.zeros(0))
        quality = evaluate(qrels, reranked, metric_names, level)
        recall = evaluate(qrels, judged_run, (f"recall@{k}",), level).metrics[f"recall@{k}"]
        latencies = _time_queries(scorer, queries, corpus, lists, latency_ids, timed)
        run_file = None
        if output_dir is not None:
            path = Path(output_dir) / "runs" / f"reranked.k{k}.trec"
            write_trec_run(reranked, path, tag=f"crossrank-k{k}")
            run_file = str(path)
        results.append(KResult(
            k=k,
            metrics=quality.metrics,
            first_stage_recall=recall,
            latency_ms=_percentiles(latencies),
            pairs_per_second=(sum(len(lists[q]) for q in latency_ids) / sum(latencies)) if latencies else 0.0,
            significance={m: paired_test(base.per_query[m], quality.per_query[m], seed=config.seed)
                          for m in metric_names},
            run_file=run_file,
        ))
    return ExperimentResult(
        dataset=dataset, first_stage=first_stage, reranker=reranker_name, queries=base.queries,
        relevance_level=level, first_stage_metrics=base.metrics, results=results,
        machine=machine_info(device), scoring_seconds=scoring_seconds,
    )


def _latency_sample(lists: dict[str, list[str]], n: int, seed: int) -> list[str]:
    ids = sorted(lists)
    if n <= 0 or not ids:
        return []
    if n >= len(ids):
        return ids
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=n, replace=False).tolist())


def _time_queries(scorer: PairScorer, queries, corpus, lists, ids,
                  progress: Callable[[int], None] | None = None) -> list[float]:
    out = []
    for qid in ids:
        pairs = [(queries[qid], corpus[d].full_text) for d in lists[qid]]
        start = time.perf_counter()
        scorer.score(pairs)
        out.append(time.perf_counter() - start)
        if progress is not None:
            progress(1)
    return out


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0}
    ms = np.array(seconds) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean())}
