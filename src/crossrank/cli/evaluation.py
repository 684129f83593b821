"""Bodies of ``crossrank eval``, ``crossrank rerank-run`` and ``crossrank experiment``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crossrank.errors import InvalidInputError


def print_eval(qrels_path: Path, run_path: Path, metrics: list[str], as_json: bool, per_query: bool,
               relevance_level: int | None) -> None:
    from crossrank.data.formats import read_qrels, read_run
    from crossrank.evaluation.metrics import evaluate

    result = evaluate(read_qrels(qrels_path).qrels, read_run(run_path).run, metrics, relevance_level)
    if as_json:
        payload: dict = dict(result.metrics)
        if per_query:
            qids = sorted(next(iter(result.per_query.values())))
            payload["per_query"] = {q: {m: result.per_query[m][q] for m in result.per_query} for q in qids}
        print(json.dumps(payload))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if per_query:
        table = Table("query", *result.metrics)
        for qid in sorted(next(iter(result.per_query.values()))):
            table.add_row(qid, *(f"{result.per_query[m][qid]:.4f}" for m in result.metrics))
        console.print(table)
    table = Table("metric", "value", caption=f"{run_path.name}: {result.queries} queries, "
                  f"binary relevance at grade >= {result.relevance_level}")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)


def load_scorer(reranker: str, model: str | None, device: str, batch_tokens: int | None, max_length: int | None,
                backend: str | None = None, dtype: str | None = None):
    """A cross-encoder, or the bi-encoder cosine baseline; returns (scorer, display name)."""
    if reranker == "bi-encoder":
        from crossrank.engine.torch_backend import resolve_device
        from crossrank.model.bi_encoder import BiEncoder
        from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

        scorer = BiEncoderReranker(BiEncoder(model, device=str(resolve_device(device))))
        return scorer, scorer.name
    if reranker != "cross-encoder":
        raise InvalidInputError(f"unknown reranker {reranker!r}: use cross-encoder or bi-encoder")
    from crossrank.cross_encoder import CrossEncoder

    ce = CrossEncoder(model, device=device, backend=backend, dtype=dtype, batch_tokens=batch_tokens,
                      max_length=max_length)
    return ce, f"cross-encoder {ce.model_dir.name}"


def load_collection(corpus_path: Path, queries_path: Path, run_path: Path, depth: int):
    from crossrank.data.formats import ranked, read_corpus, read_queries, read_run

    run = read_run(run_path).run
    needed = {d for docs in run.values() for d in ranked(docs)[:depth]}
    return read_queries(queries_path), read_corpus(corpus_path, ids=needed), run


def rerank_run_command(scorer, corpus: Path, queries: Path, run_path: Path, depth: int, output: Path,
                       show_progress: bool, first_stage_weight: float = 0.0) -> int:
    from crossrank.cli.progress import pair_progress
    from crossrank.data.formats import write_trec_run
    from crossrank.pipeline.run_reranking import rerank_run

    query_texts, docs, run = load_collection(corpus, queries, run_path, depth)
    total = sum(min(depth, len(v)) for q, v in run.items() if q in query_texts)
    with pair_progress(show_progress, "reranking run", total) as advance:
        reranked = rerank_run(scorer, run, query_texts, docs, depth, progress=advance,
                              first_stage_weight=first_stage_weight)
    write_trec_run(reranked, output, tag="crossrank")
    return len(reranked)


def experiment_command(scorer, name: str, data: Path, split: str, run_path: Path, ks: list[int],
                       metrics: list[str], relevance_level: int | None, latency_queries: int, output_dir: Path,
                       device: str, show_progress: bool) -> Path:
    from crossrank.cli.progress import pair_progress
    from crossrank.data.formats import read_qrels
    from crossrank.evaluation.experiment import ExperimentConfig, run_experiment
    from crossrank.evaluation.report import markdown, write_report

    qrels_path = data / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_path).qrels
    queries, corpus, run = load_collection(data / "corpus.jsonl", data / "queries.jsonl", run_path, max(ks))
    config = ExperimentConfig(ks=tuple(ks), metrics=tuple(metrics), relevance_level=relevance_level,
                              latency_queries=latency_queries)
    total = sum(min(max(ks), len(v)) for q, v in run.items() if q in qrels and q in queries)
    with pair_progress(show_progress, "scoring", total) as advance:
        result = run_experiment(scorer, name, queries, corpus, qrels, run, config,
                                dataset=f"{data.name} ({split})", first_stage=run_path.name,
                                output_dir=output_dir, device=device, progress=advance)
    paths = write_report(result, output_dir)
    print(markdown(result), file=sys.stdout)
    return paths["markdown"]


def calibration_target(model_dir: Path, model_arg: str | None, output: Path | None) -> Path:
    """Where ``crossrank calibrate`` may write calibration.json, checked before any work is done.

    ``--output``: a calibrated copy of the model folder (created when the calibration is saved). Without it,
    only a local folder the user named: the shipped model and the hub cache are read-only.
    """
    if output is not None:
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise InvalidInputError(f"--output {output} already exists and is not an empty folder")
        if output.resolve() == model_dir.resolve():
            return model_dir
        return output
    from crossrank.model.default import default_model_dir

    if model_arg is None or model_dir.resolve() == default_model_dir().resolve():
        raise InvalidInputError("the shipped model is read-only: give --output DIR to write a calibrated copy "
                                "(or --dry-run to only measure)")
    if not Path(model_arg).expanduser().is_dir():
        raise InvalidInputError(f"{model_arg!r} is not a local folder (a hub download is read-only): give "
                                "--output DIR to write a calibrated copy")
    return model_dir


def save_calibration(calibration, model_dir: Path, target: Path) -> Path:
    """Save into ``target``; a target other than the model folder first becomes a copy of it."""
    import shutil

    if target.resolve() != model_dir.resolve():
        shutil.copytree(model_dir, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("calibration.json", ".*"))
    return calibration.save(target)
