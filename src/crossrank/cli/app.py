"""The ``crossrank`` command: verbs, shared options, and the one place errors become exit codes.

Exit codes (documented in the README):
  0 success (also when --skip-invalid skipped lines)   1 unexpected internal error
  2 usage error (bad flag or value)                    3 invalid input line
  4 model or backend could not be loaded               5 a file could not be read or written
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from crossrank.errors import BackendUnavailableError, CrossrankError, InvalidInputError, ModelLoadError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID_INPUT, EXIT_MODEL, EXIT_IO = 0, 1, 2, 3, 4, 5

def _backend_option(env: bool = False):
    return typer.Option(None, "--backend", envvar="CROSSRANK_BACKEND" if env else None,
                        help="torch (default), onnx or openvino; an exported folder brings its own.")


def _dtype_option(env: bool = False):
    return typer.Option(None, "--dtype", envvar="CROSSRANK_DTYPE" if env else None,
                        help="float32 (default), bfloat16, float16 (GPU) or int8 (onnx, openvino).")


def _scoring_device_option(env: bool = False):
    """--device of the verbs that score through CrossEncoder, which takes several devices."""
    return typer.Option("cpu", "--device", envvar="CROSSRANK_DEVICE" if env else None,
                        help="cpu, cuda, cuda:N, mps or auto; several GPUs as cuda:0,cuda:1 (one engine each; "
                             "plain cuda uses every GPU).")


def _ray_option():
    return typer.Option(False, "--ray", help="Run on Ray (the [ray] extra): a local runtime, or --ray-address.")


def _ray_address_option():
    return typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: a local runtime).")


def _workers_option():
    return typer.Option(None, "--workers", min=1, help="Ray actors (default: CPUs / threads per worker).")


def _threads_option():
    return typer.Option(1, "--threads-per-worker", min=1, help="Torch threads (Ray CPUs) per Ray actor.")


def _gpus_option():
    return typer.Option(0.0, "--gpus-per-worker", min=0.0, help="GPUs per Ray actor (a fraction shares one).")


def _ray_config(address: str | None, workers: int | None, threads: int, gpus: float):
    from crossrank.distributed.runtime import RayConfig

    return RayConfig(address=address, workers=workers, threads_per_worker=threads, gpus_per_worker=gpus)


app = typer.Typer(
    name="crossrank",
    help="Fast, exact cross-encoder reranking. Each verb has --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from crossrank import __version__

        typer.echo(f"crossrank {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    log_level: str = typer.Option("WARNING", "--log-level", help="Logging level on stderr (DEBUG, INFO, ...)."),
) -> None:
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="crossrank: %(levelname)s: %(message)s")


@app.command()
def rerank(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder or hub id; default: shipped model."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="JSONL requests; default stdin."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL results; default stdout."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Keep the best N per request (a line's top_k wins)."),
    batch_tokens: Optional[int] = typer.Option(None, "--batch-tokens", min=1, help="Padded tokens per batch."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=8, help="Tokens per pair (default: the model's)."),
    query_max_tokens: int = typer.Option(64, "--query-max-tokens", min=1, help="Tokens kept of each query."),
    device: str = _scoring_device_option(),
    backend: Optional[str] = _backend_option(),
    dtype: Optional[str] = _dtype_option(),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Report bad lines and go on instead of stopping."),
    return_documents: bool = typer.Option(False, "--return-documents", help="Include each document's text."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr: a bar on a terminal, a line every 5 s otherwise."),
    chunking: bool = typer.Option(False, "--chunking", help="Read long documents in overlapping token windows and score each by its best one (each result gains evidence: [start, end) characters, and chunks)."),
    max_chunks: int = typer.Option(10, "--max-chunks", min=1, help="With --chunking: windows read per document (the rest is not scored; a warning says so)."),
) -> None:
    """Rerank JSONL requests: {"query": ..., "documents": [text | {"id", "text"}], "top_k"?} per line."""
    from crossrank.cli.output import atomic_output
    from crossrank.cli.progress import pair_progress
    from crossrank.cli.rerank import open_source, run_rerank
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.ranking.chunking import Chunking

    def work() -> None:
        source = open_source(input)  # a missing input file fails before the model loads
        ce = CrossEncoder(model, device=device, backend=backend, dtype=dtype, max_length=max_length,
                          batch_tokens=batch_tokens, query_max_tokens=query_max_tokens)
        with source, atomic_output(output) as sink, pair_progress(progress, "reranking") as advance:
            answered, skipped = run_rerank(ce, source, sink, top_k=top_k, skip_invalid=skip_invalid,
                                           return_documents=return_documents, progress=advance,
                                           chunking=Chunking(max_chunks=max_chunks) if chunking else None)
        if skipped:
            typer.echo(f"crossrank rerank: answered {answered} requests, skipped {skipped} invalid lines", err=True)

    _run(work)


@app.command("eval")
def eval_(
    qrels: Path = typer.Option(..., "--qrels", help="Judgments: BEIR TSV (with header) or TREC qrels."),
    run: Path = typer.Option(..., "--run", help="Ranking: TREC six columns or TSV (query-id corpus-id rank score)."),
    metrics: list[str] = typer.Option(["ndcg@10", "mrr@10", "recall@100", "map"], "--metrics", "-M",
                                      help="Metric names (repeat or space-separate): ndcg@k mrr@k recall@k map p@k."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object {metric: value}."),
    per_query: bool = typer.Option(False, "--per-query", help="Also give each query's values."),
    relevance_level: Optional[int] = typer.Option(None, "--relevance-level", min=1,
                                                  help="Lowest grade counted relevant by binary metrics (default: 2 for 0-3 scales, else 1)."),
) -> None:
    """Score a run against judgments with trec_eval-compatible metrics."""
    from crossrank.cli.evaluation import print_eval

    _run(lambda: print_eval(qrels, run, _split_names(metrics), as_json, per_query, relevance_level))


@app.command("rerank-run")
def rerank_run(
    corpus: Path = typer.Option(..., "--corpus", help="BEIR corpus.jsonl."),
    queries: Path = typer.Option(..., "--queries", help="BEIR queries.jsonl."),
    run: Path = typer.Option(..., "--run", help="First-stage run (TREC or TSV)."),
    output: Path = typer.Option(..., "--output", "-o", help="Reranked run, TREC format."),
    depth: int = typer.Option(100, "--depth", "-k", min=1, help="Candidates reranked per query."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder or hub id; default: shipped model."),
    reranker: str = typer.Option("cross-encoder", "--reranker", help="cross-encoder, or bi-encoder (cosine baseline)."),
    device: str = _scoring_device_option(),
    backend: Optional[str] = _backend_option(),
    dtype: Optional[str] = _dtype_option(),
    batch_tokens: Optional[int] = typer.Option(None, "--batch-tokens", min=1, help="Padded tokens per batch."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=8, help="Tokens per pair."),
    first_stage_weight: float = typer.Option(0.0, "--first-stage-weight", min=0.0, max=1.0,
                                             help="Fuse with the run's own scores: (1-w) z(rerank) + w z(first stage), per query."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr: a bar on a terminal, a line every 5 s otherwise."),
    ray: bool = _ray_option(),
    ray_address: Optional[str] = _ray_address_option(),
    workers: Optional[int] = _workers_option(),
    threads_per_worker: int = _threads_option(),
    gpus_per_worker: float = _gpus_option(),
) -> None:
    """Rerank the top K of a first-stage run and write the new run (documents below K keep their order)."""
    from crossrank.cli.evaluation import load_scorer, rerank_run_command

    def work() -> None:
        if ray or ray_address:
            if reranker != "cross-encoder":
                raise InvalidInputError("--ray runs the cross-encoder reranker; drop --reranker bi-encoder")
            from crossrank.distributed.scoring import RayScorer, ScorerSpec

            spec = ScorerSpec(model, backend, dtype, device, batch_tokens, max_length)
            scorer = RayScorer(spec, _ray_config(ray_address, workers, threads_per_worker, gpus_per_worker))
        else:
            scorer, _ = load_scorer(reranker, model, device, batch_tokens, max_length, backend, dtype)
        count = rerank_run_command(scorer, corpus, queries, run, depth, output, progress, first_stage_weight)
        typer.echo(f"crossrank rerank-run: reranked {count} queries -> {output}", err=True)

    _run(work)


@app.command()
def experiment(
    data: Path = typer.Option(..., "--data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."),
    run: Path = typer.Option(..., "--run", help="First-stage run to rerank (TREC or TSV)."),
    split: str = typer.Option("test", "--split", help="Qrels split."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Reranker folder or hub id; default: shipped model."),
    reranker: str = typer.Option("cross-encoder", "--reranker", help="cross-encoder, or bi-encoder (cosine baseline; --model picks the bi-encoder)."),
    ks: list[str] = typer.Option(["10", "20", "50", "100"], "--ks", "-K", help="Depths to rerank (repeat or comma-separate)."),
    metrics: list[str] = typer.Option(["ndcg@10", "mrr@10"], "--metrics", "-M", help="Quality metrics."),
    relevance_level: Optional[int] = typer.Option(None, "--relevance-level", min=1, help="Binary relevance grade."),
    latency_queries: int = typer.Option(50, "--latency-queries", min=0, help="Queries timed one by one per K."),
    output_dir: Path = typer.Option(Path("experiment"), "--output-dir", "-o", help="Report, plots and runs go here."),
    device: str = _scoring_device_option(),
    backend: Optional[str] = _backend_option(),
    dtype: Optional[str] = _dtype_option(),
    batch_tokens: Optional[int] = typer.Option(None, "--batch-tokens", min=1, help="Padded tokens per batch."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=8, help="Tokens per pair."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr: a bar on a terminal, a line every 5 s otherwise."),
) -> None:
    """Two-stage evaluation: quality, first-stage recall, latency and significance for several K."""
    from crossrank.cli.evaluation import experiment_command, load_scorer

    def work() -> None:
        names = _split_names(ks)
        if not names or not all(k.isdigit() and int(k) > 0 for k in names):
            raise InvalidInputError(f"--ks needs positive integer depths, got {' '.join(ks)!r}")
        depths = [int(k) for k in names]
        scorer, name = load_scorer(reranker, model, device, batch_tokens, max_length, backend, dtype)
        path = experiment_command(scorer, name, data, split, run, depths, _split_names(metrics), relevance_level,
                                  latency_queries, output_dir, device, progress)
        typer.echo(f"crossrank experiment: report in {path}", err=True)

    _run(work)


index_app = typer.Typer(help="Build and update an on-disk collection index (documents, BM25, dense vectors).",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    path: Path = typer.Argument(..., help="Index folder to create."),
    corpus: Path = typer.Option(..., "--corpus", help="BEIR corpus.jsonl ({_id, title, text} per line)."),
    dense: bool = typer.Option(False, "--dense", help="Also embed documents for dense and hybrid retrieval."),
    dense_model: Optional[str] = typer.Option(None, "--dense-model", help="Bi-encoder folder or hub id (default all-MiniLM-L6-v2, offline)."),
    hnsw: bool = typer.Option(False, "--hnsw", help="Also build an approximate (HNSW) vector index."),
    k1: float = typer.Option(0.9, "--k1", help="BM25 k1 (Anserini default 0.9)."),
    b: float = typer.Option(0.4, "--b", help="BM25 b (Anserini default 0.4)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing index's documents."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr: a bar on a terminal, a line every 5 s otherwise."),
    ray: bool = _ray_option(),
    ray_address: Optional[str] = _ray_address_option(),
    workers: Optional[int] = _workers_option(),
    threads_per_worker: int = _threads_option(),
    gpus_per_worker: float = _gpus_option(),
) -> None:
    """Build an index from a corpus (--dense --ray: embed the documents on Ray actors)."""
    from crossrank.cli.search import build_index

    def work() -> None:
        encoder = None
        if ray or ray_address:
            if not dense:
                raise InvalidInputError("--ray embeds documents for a dense index: add --dense")
            from crossrank.distributed.scoring import RayEncoder

            device = "cuda" if gpus_per_worker else "cpu"
            encoder = RayEncoder(dense_model, device,
                                 _ray_config(ray_address, workers, threads_per_worker, gpus_per_worker))
        typer.echo(build_index(path, corpus, dense, dense_model, hnsw, k1, b, overwrite, progress, encoder), err=True)

    _run(work)


@index_app.command("add")
def index_add(
    path: Path = typer.Argument(..., help="Existing index folder."),
    corpus: Path = typer.Option(..., "--corpus", help="Documents to add; an existing id is replaced."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr: a bar on a terminal, a line every 5 s otherwise."),
) -> None:
    """Add or replace documents (atomically: an interrupted update leaves the old index intact)."""
    from crossrank.cli.search import update_index

    _run(lambda: typer.echo(update_index(path, corpus, [], progress), err=True))


@index_app.command("delete")
def index_delete(
    path: Path = typer.Argument(..., help="Existing index folder."),
    ids: list[str] = typer.Option([], "--id", help="Document id to delete (repeatable)."),
    ids_file: Optional[Path] = typer.Option(None, "--ids-file", help="File with one document id per line."),
) -> None:
    """Delete documents by id."""
    from crossrank.cli.search import update_index

    def work() -> None:
        wanted = list(ids)
        if ids_file is not None:
            wanted += [line.strip() for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not wanted:
            raise InvalidInputError("give --id or --ids-file")
        typer.echo(update_index(path, None, wanted, False), err=True)

    _run(work)


@index_app.command("info")
def index_info(path: Path = typer.Argument(..., help="Index folder.")) -> None:
    """Print an index's size and settings as JSON."""
    import json

    from crossrank.cli.search import index_info as info

    _run(lambda: typer.echo(json.dumps(info(path))))


@app.command()
def search(
    path: Path = typer.Argument(..., help="Index folder."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="One query; prints the hits."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="BEIR queries.jsonl; batch mode."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="TREC run written in batch mode."),
    retriever: str = typer.Option("bm25", "--retriever", help="bm25, dense or hybrid."),
    k: int = typer.Option(100, "--k", min=1, help="Candidates from the first stage."),
    rerank: Optional[str] = typer.Option(None, "--rerank", help="Cross-encoder folder or hub id ('default': shipped model)."),
    top_n: int = typer.Option(10, "--top-n", min=1, help="Results returned per query."),
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", min=0, help="Latency budget: rerank only what fits."),
    fallback_model: Optional[str] = typer.Option(None, "--fallback-model", help="A cheaper cross-encoder ('fast': the shipped 2-layer model) for what the main model cannot score within the budget."),
    policy: Optional[str] = typer.Option(None, "--policy", help="prefix, fallback (default with --fallback-model) or cascade (fallback scores all, --rerank rescores its top --rescore)."),
    rescore: int = typer.Option(20, "--rescore", min=1, help="Cascade: candidates the main model rescores."),
    fusion: str = typer.Option("rrf", "--fusion", help="Hybrid fusion: rrf (k=60) or score (min-max, weighted)."),
    weight: float = typer.Option(0.5, "--weight", min=0, max=1, help="Dense weight for --fusion score."),
    approximate: bool = typer.Option(False, "--approximate", help="Use the HNSW index for dense search."),
    chunking: bool = typer.Option(True, "--chunking/--no-chunking", help="Score long documents window by window."),
    overlap: int = typer.Option(64, "--overlap", min=0, help="Tokens shared by consecutive windows."),
    aggregation: str = typer.Option("max", "--aggregation", help="Window scores -> document: max, mean, first, topk-mean."),
    device: str = _scoring_device_option(),
    backend: Optional[str] = _backend_option(),
    dtype: Optional[str] = _dtype_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the single query's hits as JSON."),
) -> None:
    """One- or two-stage search over an index."""
    from crossrank.cli.search import run_search

    _run(lambda: run_search(path, query, queries, output, retriever, k, rerank, top_n, budget_ms, fusion, weight,
                            approximate, chunking, overlap, aggregation, device, as_json, backend, dtype,
                            fallback_model, policy, rescore))


@app.command()
def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", envvar="CROSSRANK_MODEL", help="Model folder or hub id; default: shipped model."),
    host: str = typer.Option("127.0.0.1", "--host", envvar="CROSSRANK_HOST", help="Interface to bind (loopback by default)."),
    port: int = typer.Option(8080, "--port", envvar="CROSSRANK_PORT", min=0, max=65535, help="Port (0: any free port)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="CROSSRANK_API_KEY", help="Require 'Authorization: Bearer KEY'. A flag shows in `ps`: prefer the environment variable or --api-key-file."),
    api_key_file: Optional[Path] = typer.Option(None, "--api-key-file", envvar="CROSSRANK_API_KEY_FILE", help="Read the API key from this file (its first line)."),
    device: str = _scoring_device_option(env=True),
    backend: Optional[str] = _backend_option(env=True),
    dtype: Optional[str] = _dtype_option(env=True),
    batch_tokens: Optional[int] = typer.Option(None, "--batch-tokens", envvar="CROSSRANK_BATCH_TOKENS", min=1, help="Padded tokens per batch."),
    max_length: Optional[int] = typer.Option(None, "--max-length", envvar="CROSSRANK_MAX_LENGTH", min=8, help="Tokens per pair."),
    max_documents: int = typer.Option(1000, "--max-documents", envvar="CROSSRANK_MAX_DOCUMENTS", min=1, help="Documents per request (413 beyond)."),
    max_document_chars: int = typer.Option(100_000, "--max-document-chars", envvar="CROSSRANK_MAX_DOCUMENT_CHARS", min=1, help="Characters per document (413 beyond)."),
    max_body_bytes: int = typer.Option(20_000_000, "--max-body-bytes", envvar="CROSSRANK_MAX_BODY_BYTES", min=1, help="Request body size (413 beyond, reading stops there)."),
    max_header_bytes: int = typer.Option(16_384, "--max-header-bytes", envvar="CROSSRANK_MAX_HEADER_BYTES", min=1024, help="Request line and headers (431 beyond)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", envvar="CROSSRANK_HEADER_TIMEOUT", min=0.001, help="Seconds for a request's headers to arrive (the connection is closed beyond)."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", envvar="CROSSRANK_BODY_TIMEOUT", min=0.001, help="Seconds for a request's body to arrive (408 beyond)."),
    queue_size: int = typer.Option(256, "--queue-size", envvar="CROSSRANK_QUEUE_SIZE", min=1, help="Waiting requests (429 beyond)."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", envvar="CROSSRANK_MAX_WAIT_MS", min=0, help="Wait to gather concurrent requests."),
    request_timeout: float = typer.Option(60.0, "--request-timeout", envvar="CROSSRANK_REQUEST_TIMEOUT", min=0.001, help="Seconds per request (504 beyond)."),
    log_level: str = typer.Option("info", "--server-log-level", envvar="CROSSRANK_LOG_LEVEL", help="JSON request logs at this level."),
    shutdown_grace: float = typer.Option(20.0, "--shutdown-grace", envvar="CROSSRANK_SHUTDOWN_GRACE", min=0, help="Seconds after SIGTERM to finish accepted requests; the rest get 503."),
    docs: bool = typer.Option(False, "--docs/--no-docs", envvar="CROSSRANK_DOCS", help="Serve /docs and /redoc (their scripts load from a CDN: needs internet)."),
    public_metrics: bool = typer.Option(False, "--public-metrics", envvar="CROSSRANK_PUBLIC_METRICS", help="Serve /metrics without the API key (for a Prometheus scraper)."),
    ray: bool = _ray_option(),
    ray_address: Optional[str] = _ray_address_option(),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Ray Serve replicas (with --ray)."),
    max_replicas: Optional[int] = typer.Option(None, "--max-replicas", min=1, help="Autoscale from --replicas up to this many (with --ray)."),
    target_ongoing_requests: float = typer.Option(32.0, "--target-ongoing-requests", min=1.0, help="Autoscaling target: in-flight requests per replica."),
    threads_per_worker: int = _threads_option(),
    gpus_per_worker: float = _gpus_option(),
    max_chunks_per_doc: int = typer.Option(32, "--max-chunks-per-doc", envvar="CROSSRANK_MAX_CHUNKS_PER_DOC", min=1, help="Cap on a request's max_chunks_per_doc (Cohere's default 10 applies when a request sets none, within this cap; 1: long documents are cut, not chunked)."),
    fallback_model: Optional[str] = typer.Option(None, "--fallback-model", envvar="CROSSRANK_FALLBACK_MODEL", help="A cheaper cross-encoder for the documents the main model cannot score within --budget-ms (or, with --policy cascade, for every document)."),
    fallback_dtype: Optional[str] = typer.Option(None, "--fallback-dtype", envvar="CROSSRANK_FALLBACK_DTYPE", help="The fallback's dtype (default: --dtype), e.g. bfloat16 for a cheaper copy of the main model."),
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", envvar="CROSSRANK_BUDGET_MS", min=1, help="Scoring time per request, queueing included (needs --fallback-model): the main model scores what fits, the fallback the rest."),
    policy: str = typer.Option("fallback", "--policy", envvar="CROSSRANK_POLICY", help="fallback (main model on the prefix that fits) or cascade (fallback scores all, the main model rescores its top --rescore)."),
    rescore: int = typer.Option(20, "--rescore", envvar="CROSSRANK_RESCORE", min=1, help="Cascade: documents per request the main model rescores."),
) -> None:
    """Serve the Cohere / Jina / TEI rerank API over HTTP (needs the [serve] extra; --ray: on Ray Serve)."""
    def work() -> None:
        if budget_ms is not None and fallback_model is None:
            raise InvalidInputError("--budget-ms needs --fallback-model: a rerank API must score every document, so "
                                    "the documents the main model cannot reach in time need a cheaper model")
        if fallback_model is not None:
            from crossrank.server.budget import SERVICE_POLICIES

            if policy not in SERVICE_POLICIES:
                raise InvalidInputError(f"unknown --policy {policy!r}: use one of {', '.join(SERVICE_POLICIES)}")
            if policy == "fallback" and budget_ms is None:
                raise InvalidInputError("--fallback-model with --policy fallback needs --budget-ms (or use --policy "
                                        "cascade)")
            if ray or ray_address:
                raise InvalidInputError("--fallback-model is not available with --ray yet: serve it without --ray")
        try:
            from crossrank.server.runner import serve as run_server
            from crossrank.server.settings import ServerSettings
        except ImportError as exc:
            raise BackendUnavailableError(f"crossrank serve needs the [serve] extra: pip install 'crossrank[serve]' "
                                          f"({exc.name} is missing)") from None
        from crossrank.cross_encoder import CrossEncoder

        settings = ServerSettings(host=host, port=port, api_key=_api_key(api_key, api_key_file),
                                  max_documents=max_documents, max_document_chars=max_document_chars,
                                  max_body_bytes=max_body_bytes, max_header_bytes=max_header_bytes,
                                  header_timeout_s=header_timeout, body_timeout_s=body_timeout,
                                  queue_size=queue_size, max_wait_ms=max_wait_ms, request_timeout_s=request_timeout,
                                  shutdown_grace_s=shutdown_grace, docs=docs, public_metrics=public_metrics,
                                  budget_ms=budget_ms, policy=policy, rescore=rescore,
                                  max_chunks_per_doc=max_chunks_per_doc)
        if ray or ray_address:
            from crossrank.distributed.scoring import ScorerSpec
            from crossrank.distributed.serving import ReplicaSettings, serve_on_ray

            autoscaling = {} if max_replicas is None else {
                "min_replicas": replicas, "max_replicas": max(replicas, max_replicas),
                "target_ongoing_requests": target_ongoing_requests}
            serve_on_ray(ScorerSpec(model, backend, dtype, device, batch_tokens, max_length), settings,
                         _ray_config(ray_address, None, threads_per_worker, gpus_per_worker),
                         ReplicaSettings(replicas, autoscaling))
            return
        load_fallback = None if fallback_model is None else (
            lambda: CrossEncoder(fallback_model, device=device, backend=backend, dtype=fallback_dtype or dtype,
                                 batch_tokens=batch_tokens, max_length=max_length))
        run_server(lambda: CrossEncoder(model, device=device, backend=backend, dtype=dtype, batch_tokens=batch_tokens,
                                        max_length=max_length),
                   settings, log_level=log_level, load_fallback=load_fallback)

    _run(work)


def _api_key(key: str | None, key_file: Path | None) -> str | None:
    """The key from the flag or environment, or from the first line of a file (which `ps` never shows)."""
    if key_file is None:
        return key or None
    if key:
        raise InvalidInputError("give the API key once: --api-key (CROSSRANK_API_KEY) or --api-key-file, not both")
    lines = key_file.read_text(encoding="utf-8").splitlines()  # a missing file is an OSError: exit 5
    if not lines or not lines[0].strip():
        raise InvalidInputError(f"API key file {key_file} is empty")
    return lines[0].strip()


@app.command()
def export(
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id; default: the shipped model."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to write (the graph, tokenizer, config, manifest)."),
    backend: str = typer.Option("onnx", "--backend", help="onnx (ONNX Runtime) or openvino (OpenVINO; int8 is static, calibrated on the sample pairs)."),
    dtype: str = typer.Option("int8", "--dtype", help="int8 (fastest on CPUs with VNNI) or float32."),
    calibration_data: Optional[Path] = typer.Option(None, "--calibration-data", help="BEIR folder whose queries and documents (top 20 of its first run, else judged ones) calibrate int8 (activation ranges for smoothing) and measure agreement with fp32; default: a built-in sample."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 4) when agreement with fp32 is below the thresholds, instead of warning."),
    min_top10_overlap: float = typer.Option(0.9, "--min-top10-overlap", min=0, max=1, help="Threshold: mean share of each query's fp32 top 10 kept in the export's top 10."),
    min_spearman: float = typer.Option(0.99, "--min-spearman", min=-1, max=1, help="Threshold: Spearman correlation of all sample scores with fp32."),
) -> None:
    """Export a model folder for a fast backend; `CrossEncoder(OUTPUT)` and every --model option load it."""
    def work() -> None:
        import json

        from crossrank.engine.agreement import beir_sample
        from crossrank.engine.backends import check_combination
        from crossrank.engine.onnx_export import export_onnx
        from crossrank.model.default import default_model_dir
        from crossrank.model.loading import load_model

        check_combination(backend, dtype, "cpu")
        if backend not in ("onnx", "openvino"):
            raise BackendUnavailableError(f"crossrank export writes graphs for --backend onnx or openvino, not {backend!r}")
        sample = beir_sample(calibration_data) if calibration_data is not None else None
        loaded = load_model(model if model is not None else default_model_dir())
        result = export_onnx(loaded, output, dtype, sample=sample, strict=strict, backend=backend,
                             thresholds={"min_top10_overlap": min_top10_overlap, "min_spearman": min_spearman})
        typer.echo(json.dumps({"output": str(result.folder), "backend": backend, "dtype": dtype,
                               "seconds": round(result.seconds, 1), "agreement": result.manifest["agreement"]}))

    _run(work)


@app.command()
def calibrate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder to calibrate (default: the shipped model)."),
    data: Path = typer.Option(..., "--data", help="BEIR folder with judgments for the split."),
    run: Path = typer.Option(..., "--run", help="First-stage run giving the candidates."),
    split: str = typer.Option("dev", "--split", help="Qrels split to fit on (never the test split you report)."),
    depth: int = typer.Option(50, "--depth", min=1, help="Candidates per query."),
    method: str = typer.Option("platt", "--method", help="temperature, platt or isotonic."),
    relevance_level: int = typer.Option(1, "--relevance-level", min=1, help="Lowest relevant grade."),
    holdout: float = typer.Option(0.5, "--holdout", min=0.05, max=0.95, help="Share of queries held out to measure."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write a calibrated copy of the model here (needed for the shipped model and hub ids)."),
    write: bool = typer.Option(True, "--write/--dry-run", help="Write calibration.json (into --output, else into the --model folder)."),
) -> None:
    """Fit a probability calibration on judged data; report ECE and Brier before and after on held-out queries."""
    def work() -> None:
        import json

        from crossrank.cli.evaluation import calibration_target, load_collection, save_calibration
        from crossrank.cross_encoder import CrossEncoder
        from crossrank.data.formats import read_qrels
        from crossrank.evaluation.calibration_study import study_calibration

        ce = CrossEncoder(model)
        # Decided before the slow part: the shipped model and the hub cache are never written to.
        target = calibration_target(ce.model_dir, model, output) if write else None
        qrels = read_qrels(data / "qrels" / f"{split}.tsv").qrels
        queries, corpus, first_stage = load_collection(data / "corpus.jsonl", data / "queries.jsonl", run, depth)
        study = study_calibration(ce, queries, corpus, qrels, first_stage, depth, method, relevance_level, holdout)
        if target is not None:
            save_calibration(study.calibration, ce.model_dir, target)
        typer.echo(json.dumps({"method": method, "fit_pairs": study.fit_pairs, "holdout_pairs": study.holdout_pairs,
                               "ece_before": study.ece_before, "ece_after": study.ece_after,
                               "brier_before": study.brier_before, "brier_after": study.brier_after,
                               "written": str(target / "calibration.json") if target is not None else None}))

    _run(work)


@app.command()
def train(
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Checkpoints, best/ and final/ model folders."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Start from this encoder or cross-encoder (default: all-MiniLM-L6-v2)."),
    data: Optional[Path] = typer.Option(None, "--data", help="BEIR folder: judgments of --split plus BM25 hard negatives."),
    split: str = typer.Option("train", "--split", help="Qrels split to train on."),
    examples: Optional[Path] = typer.Option(None, "--examples", help="JSONL training examples instead of --data."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Labelled text pairs (TSV: id, text1, text2, label): a pair classifier (BCE), e.g. duplicate questions."),
    dev_split: Optional[str] = typer.Option(None, "--dev-split", help="Qrels split of --data for dev nDCG@10 (best checkpoint kept)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="bce, ranknet, margin, listwise or margin-mse (default: listwise; bce with --pairs)."),
    negatives: int = typer.Option(7, "--negatives", min=1, help="Hard negatives per positive."),
    rank_range: tuple[int, int] = typer.Option((10, 100), "--rank-range", help="BM25 ranks to mine negatives from."),
    max_positives: int = typer.Option(0, "--max-positives", min=0, help="Positives per query, a seeded sample (0: all)."),
    positive_depth: int = typer.Option(0, "--positive-depth", min=0, help="Only positives BM25 ranks in its top N (0: all)."),
    epochs: float = typer.Option(1.0, "--epochs", min=0.001),
    learning_rate: float = typer.Option(3e-5, "--lr", min=0),
    groups_per_batch: int = typer.Option(8, "--batch-groups", min=1, help="Queries (groups) per batch."),
    gradient_accumulation: int = typer.Option(1, "--grad-accum", min=1),
    max_length: int = typer.Option(256, "--max-length", min=16),
    eval_every: int = typer.Option(0, "--eval-every", min=0, help="Steps between dev evaluations (0: per epoch)."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", min=0, help="Steps between resumable checkpoints (0: with each evaluation)."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from output-dir/checkpoint."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16 (fast on CPUs with AMX) or fp16."),
) -> None:
    """Fine-tune a cross-encoder on judgments with hard negatives (or on JSONL examples)."""
    def work() -> None:
        import json

        from crossrank.model.default import encoder_dir
        from crossrank.training.datasets import dev_ndcg, groups_from_beir, groups_from_jsonl, groups_from_pairs
        from crossrank.training.trainer import TrainConfig, Trainer

        if sum(x is not None for x in (data, examples, pairs)) != 1:
            raise InvalidInputError("give exactly one of --data BEIR_FOLDER, --examples FILE or --pairs FILE")
        chosen_loss = loss or ("bce" if pairs is not None else "listwise")
        if pairs is not None and chosen_loss != "bce":
            raise InvalidInputError(f"--pairs trains a pair classifier with --loss bce, not {chosen_loss!r} "
                                    "(each pair is a group of one)")
        if pairs is not None:
            groups = groups_from_pairs(pairs)
        elif examples is not None:
            groups = groups_from_jsonl(examples)
        else:
            groups = groups_from_beir(data, split, negatives, rank_range, seed=seed,
                                      max_positives=max_positives or None, positive_depth=positive_depth or None)
        if not groups:
            raise InvalidInputError("no training groups: check the split and that queries have judged positives")
        metric = dev_ndcg(data, dev_split) if data is not None and dev_split else None
        config = TrainConfig(loss=chosen_loss, epochs=epochs, learning_rate=learning_rate, groups_per_batch=groups_per_batch,
                             gradient_accumulation=gradient_accumulation, max_length=max_length,
                             eval_every=eval_every, checkpoint_every=checkpoint_every, seed=seed, precision=precision)
        trainer = Trainer(model or str(encoder_dir()), output_dir, config, device=device, dev_metric=metric)
        from crossrank.cli.progress import pair_progress

        with pair_progress(True, "training steps", unit="steps") as advance:
            result = trainer.train(groups, resume=resume, progress=lambda step, value: advance(1))
        typer.echo(json.dumps({"groups": len(groups), "steps": result.steps, "seconds": round(result.seconds, 1),
                               "first_loss": result.losses[0] if result.losses else None,
                               "last_loss": result.losses[-1] if result.losses else None,
                               "dev_history": result.dev_history, "best_dev": result.best_dev,
                               "best_model": str(output_dir / "best")}))

    _run(work)


@app.command()
def distill(
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Where the distilled bi-encoder is saved."),
    data: Optional[Path] = typer.Option(None, "--data", help="BEIR folder: judged positives of --split plus BM25 negatives."),
    examples: Optional[Path] = typer.Option(None, "--examples", help="JSONL groups {query, documents, labels} whose labels are already teacher scores (any teacher, e.g. a bigger bi-encoder's scaled cosines); the first document is the one the others are compared with. Instead of --data and --teacher."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Cross-encoder teacher (default: the shipped reranker)."),
    student: Optional[str] = typer.Option(None, "--student", help="Sentence-transformers bi-encoder (default: all-MiniLM-L6-v2)."),
    split: str = typer.Option("train", "--split", help="Qrels split to train on."),
    negatives: int = typer.Option(7, "--negatives", min=1, help="Hard negatives per positive."),
    rank_range: tuple[int, int] = typer.Option((5, 100), "--rank-range", help="BM25 ranks to mine negatives from."),
    epochs: float = typer.Option(1.0, "--epochs", min=0.01),
    learning_rate: float = typer.Option(2e-5, "--lr", min=0),
    groups_per_batch: int = typer.Option(8, "--batch-groups", min=1),
    max_length: int = typer.Option(256, "--max-length", min=16),
    scale: float = typer.Option(20.0, "--scale", min=0.01, help="Student score = scale x cosine."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA if supported, else fp32), fp32 or bf16 (fast on CPUs with AMX)."),
) -> None:
    """Distil a cross-encoder into the bi-encoder (dense first stage) with Margin-MSE on teacher scores."""
    def work() -> None:
        import json

        from crossrank.cross_encoder import CrossEncoder
        from crossrank.model.default import encoder_dir
        from crossrank.training.bi_encoder_distillation import DistillConfig, distil_bi_encoder, teacher_groups
        from crossrank.cli.progress import pair_progress
        from crossrank.training.datasets import groups_from_beir, groups_from_jsonl

        if (data is None) == (examples is None):
            raise InvalidInputError("give exactly one of --data BEIR_FOLDER or --examples FILE")
        if examples is not None:
            if teacher is not None:
                raise InvalidInputError("--examples already holds the teacher's scores: drop --teacher")
            scored = groups_from_jsonl(examples)
            if not any(len(g.documents) >= 2 for g in scored):
                raise InvalidInputError(f"{examples}: no group has two or more documents to compare")
        else:
            groups = groups_from_beir(data, split, negatives, rank_range, seed=seed)
            if not groups:
                raise InvalidInputError("no training groups: check the split and that queries have judged positives")
            ce = CrossEncoder(teacher, device=device)
            total = sum(len(g.documents) for g in groups)
            with pair_progress(True, "teacher scoring", total) as advance:
                scored = teacher_groups(groups, lambda pairs: ce.score(pairs, progress=advance))
        config = DistillConfig(epochs=epochs, learning_rate=learning_rate, groups_per_batch=groups_per_batch,
                               scale=scale, max_length=max_length, seed=seed, precision=precision)
        with pair_progress(True, "distillation steps", unit="steps") as advance:
            result = distil_bi_encoder(student or encoder_dir(), scored, output_dir, config, device=device,
                                       progress=lambda step, value: advance(1))
        typer.echo(json.dumps({"groups": len(scored), "steps": result.steps, "seconds": round(result.seconds, 1),
                               "first_loss": result.losses[0], "last_loss": result.losses[-1],
                               "bi_encoder": str(output_dir)}))

    _run(work)


@app.command()
def annotate(
    corpus: Path = typer.Option(..., "--corpus", help="BEIR corpus.jsonl."),
    queries: Path = typer.Option(..., "--queries", help="BEIR queries.jsonl."),
    run: list[Path] = typer.Option(..., "--run", help="A run to pool (TREC or TSV); repeat for several."),
    output: Path = typer.Option(..., "--output", "-o", help="Pseudo-qrels written here."),
    depth: int = typer.Option(20, "--depth", "-k", min=1, help="Top K of each run pooled per query."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder or hub id; default: shipped model."),
    thresholds: Optional[str] = typer.Option(None, "--thresholds", help="Calibrated probabilities for grades 1,2,3 (increasing), e.g. 0.25,0.5,0.8 (the default)."),
    judged: Optional[Path] = typer.Option(None, "--judged", help="Existing qrels: kept as they are; only the holes are annotated."),
    format: str = typer.Option("trec", "--format", help="trec (qid 0 docid grade) or beir (TSV with header)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    backend: Optional[str] = _backend_option(),
    dtype: Optional[str] = _dtype_option(),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr."),
) -> None:
    """Pseudo-qrels: grade the pooled top K of runs 0-3 with the cross-encoder's calibrated probability."""
    from crossrank.cli.jobs import annotate_command

    def work() -> None:
        cuts = None
        if thresholds is not None:
            try:
                cuts = [float(x) for x in thresholds.replace(",", " ").split()]
            except ValueError:
                raise InvalidInputError(f"--thresholds {thresholds!r}: give numbers, e.g. 0.25,0.5,0.8") from None
        from crossrank.cross_encoder import CrossEncoder

        ce = CrossEncoder(model, device=device, backend=backend, dtype=dtype)
        summary = annotate_command(ce, corpus, queries, run, depth, output, cuts, judged, format, progress)
        typer.echo(json.dumps(summary))

    _run(work)


@app.command()
def match(
    faq: Path = typer.Option(..., "--faq", help="The FAQ as a BEIR corpus.jsonl: title = question, text = answer."),
    queries: Path = typer.Option(..., "--queries", help="User questions, BEIR queries.jsonl."),
    output: Path = typer.Option(..., "--output", "-o", help="One JSON line per question."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0, help="Calibrated probability a match needs; below it the match is null (0: always answer)."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Candidates listed per question."),
    shortlist: int = typer.Option(20, "--shortlist", min=1, help="FAQ entries the bi-encoder passes to the cross-encoder."),
    read: str = typer.Option("entry", "--read", help="What the cross-encoder reads of an entry: entry (question + answer) or question."),
    rank_by: str = typer.Option("cross-encoder", "--rank-by", help="Order of the shortlist: cross-encoder, fused (reciprocal-rank fusion with the bi-encoder), or bi-encoder (its cosine; the cross-encoder only decides 'no answer')."),
    dense_model: Optional[str] = typer.Option(None, "--dense-model", help="Bi-encoder folder or hub id that shortlists the FAQ (default all-MiniLM-L6-v2, offline)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder or hub id; default: shipped model."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr."),
) -> None:
    """Match user questions against an FAQ; "no answer" (null) when nothing reaches the threshold."""
    from crossrank.cli.jobs import match_command

    def work() -> None:
        from crossrank.cross_encoder import CrossEncoder
        from crossrank.pipeline.faq_match import READS

        if read not in READS:
            raise InvalidInputError(f"unknown --read {read!r}: use one of {', '.join(READS)}")
        summary = match_command(lambda: CrossEncoder(model, device=device), faq, queries, output, threshold, top_k,
                                shortlist, read, progress, rank_by, _bi_encoder_loader(dense_model, device))
        typer.echo(json.dumps(summary))

    _run(work)


@app.command()
def dedup(
    input: Path = typer.Option(..., "--input", "-i", help="Questions, JSONL of {\"_id\", \"text\"}."),
    output: Path = typer.Option(..., "--output", "-o", help="One JSON line per cluster: {\"cluster\", \"ids\"}, singletons included."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0, help="Calibrated probability a verified duplicate needs."),
    neighbours: int = typer.Option(10, "--neighbours", min=1, help="Bi-encoder neighbours proposed per question."),
    min_cosine: float = typer.Option(0.5, "--min-cosine", min=-1.0, max=1.0, help="Proposed pairs need at least this cosine."),
    clustering: str = typer.Option("components", "--clustering", help="components (transitive) or strict (complete linkage)."),
    pairs_output: Optional[Path] = typer.Option(None, "--pairs-output", help="Also write the verified pairs (JSONL)."),
    dense_model: Optional[str] = typer.Option(None, "--dense-model", help="Bi-encoder folder or hub id that proposes candidate pairs (default all-MiniLM-L6-v2, offline)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model folder or hub id; default: shipped model."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, mps or auto."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress on stderr."),
) -> None:
    """Cluster duplicate questions: bi-encoder candidate pairs, verified by the cross-encoder."""
    from crossrank.cli.jobs import dedup_command

    def work() -> None:
        from crossrank.cross_encoder import CrossEncoder

        summary = dedup_command(lambda: CrossEncoder(model, device=device), input, output, threshold, neighbours,
                                min_cosine, clustering, pairs_output, progress, _bi_encoder_loader(dense_model, device))
        typer.echo(json.dumps(summary))

    _run(work)


def _bi_encoder_loader(dense_model: Optional[str], device: str):
    """Loads the named bi-encoder when called (after the inputs are checked); None: the matcher's default."""
    def load():
        from crossrank.model.bi_encoder import BiEncoder

        return BiEncoder(dense_model, device=device) if dense_model else None

    return load


def _split_names(values: list[str]) -> list[str]:
    """Accept --metrics a b, --metrics a --metrics b and --metrics a,b alike."""
    return [part for value in values for part in value.replace(",", " ").split()]


def _run(work) -> None:
    """Run a verb, turning crossrank's errors into a one-line message and a documented exit code."""
    try:
        work()
    except InvalidInputError as exc:
        _fail(EXIT_INVALID_INPUT, f"invalid input: {exc}")
    except (ModelLoadError, BackendUnavailableError) as exc:
        _fail(EXIT_MODEL, str(exc))
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(EXIT_OK)
    except OSError as exc:  # missing file, a file where a folder should be, permissions, full disk...
        _fail(EXIT_IO, f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
    except CrossrankError as exc:  # e.g. a damaged or foreign index folder
        _fail(EXIT_IO, str(exc))
    except KeyboardInterrupt:
        _fail(130, "interrupted")


def _fail(code: int, message: str) -> None:
    typer.echo(f"crossrank: error: {message}", err=True)
    raise typer.Exit(code)


# Options that take several space-separated values (`--metrics ndcg@10 mrr@10`), which click cannot express.
_MULTI_VALUE = {"--metrics", "-M", "--ks", "-K"}


def _join_multi_values(argv: list[str]) -> list[str]:
    """Rewrite `--metrics a b c` into `--metrics a,b,c`; values never start with '-'."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] in _MULTI_VALUE:
            values = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("-") and (not values or _looks_like_value(argv[i + 1])):
                values.append(argv[i + 1])
                i += 1
            if values:
                out.append(",".join(values))
        i += 1
    return out


def _looks_like_value(arg: str) -> bool:
    """A further metric name or depth, not a sub-command's positional argument."""
    return "@" in arg or arg.isdigit() or arg.lower() in {"map", "ndcg", "r-prec", "rprec"}


def main() -> None:
    app(args=_join_multi_values(sys.argv[1:]), prog_name="crossrank")


if __name__ == "__main__":
    main()
