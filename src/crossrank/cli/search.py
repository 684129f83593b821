"""Bodies of ``crossrank index build/add/delete/info`` and ``crossrank search``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crossrank.errors import InvalidInputError


def corpus_documents(corpus: Path):
    from crossrank.data.formats import read_corpus
    from crossrank.retrieval.store import StoredDocument

    return [StoredDocument(d.id, d.title, d.text) for d in read_corpus(corpus).values()]


def build_index(path: Path, corpus: Path, dense: bool, dense_model: str | None, hnsw: bool, k1: float, b: float,
                overwrite: bool, progress: bool, encoder=None) -> str:
    """``encoder``: what embeds the documents (default: a local bi-encoder; ``RayEncoder`` for --ray)."""
    import time

    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings

    documents = corpus_documents(corpus)  # read (and validate) before touching the index folder
    settings = IndexSettings(BM25Settings(k1=k1, b=b), (dense_model or "default") if dense else None, hnsw and dense)
    start = time.perf_counter()
    index = CollectionIndex.create(path, settings, overwrite=overwrite)
    index.replace_all(documents, encoder=encoder, progress=progress)
    return (f"indexed {index.size} documents into {path} in {time.perf_counter() - start:.1f} s "
            f"({index.disk_bytes() / 1e6:.1f} MB{', with dense embeddings' if dense else ''})")


def update_index(path: Path, corpus: Path | None, ids: list[str], progress: bool) -> str:
    from crossrank.retrieval.index import CollectionIndex

    index = CollectionIndex(path)
    if corpus is not None:
        count = index.add(corpus_documents(corpus), progress=progress)
        return f"added or replaced {count} documents; the index holds {index.size}"
    count = index.delete(ids, progress=progress)
    return f"deleted {count} of {len(ids)} requested documents; the index holds {index.size}"


def index_info(path: Path) -> dict:
    from crossrank.retrieval.index import CollectionIndex

    index = CollectionIndex(path)
    return {"path": str(path), "documents": index.size, "generation": index.generation,
            "bm25": vars(index.settings.bm25), "dense_model": index.settings.dense_model,
            "hnsw": index.settings.hnsw, "disk_bytes": index.disk_bytes()}


def run_search(path: Path, query: str | None, queries: Path | None, output: Path | None, retriever: str, k: int,
               rerank: str | None, top_n: int, budget_ms: float | None, fusion: str, weight: float,
               approximate: bool, chunking: bool, overlap: int, aggregation: str, device: str,
               as_json: bool, backend: str | None = None, dtype: str | None = None,
               fallback_model: str | None = None, policy: str | None = None, rescore: int = 20) -> None:
    from crossrank.pipeline.searcher import Searcher

    if (query is None) == (queries is None):
        raise InvalidInputError("give exactly one of --query TEXT or --queries FILE")
    if queries is not None and output is None:
        raise InvalidInputError("--queries needs --output RUN (a TREC run file)")
    if fallback_model is not None and rerank is None:
        raise InvalidInputError("--fallback-model needs a main model: add --rerank MODEL (or --rerank default)")
    reranker = fallback = None
    if rerank is not None:
        from crossrank.cross_encoder import CrossEncoder

        reranker = CrossEncoder(None if rerank == "default" else rerank, device=device, backend=backend, dtype=dtype)
        if fallback_model is not None:
            fallback = CrossEncoder(fallback_model, device=device, backend=backend, dtype=dtype)
    searcher = Searcher(path, retriever, reranker, fallback=fallback, policy=policy, rescore=rescore,
                        chunking=chunking, overlap=overlap, aggregation=aggregation,
                        fusion=fusion, weight=weight, approximate=approximate)
    if query is not None:
        result = searcher.search(query, k=k, top_n=top_n, budget_ms=budget_ms)
        if as_json:
            print(json.dumps({"query": query, "reranked": result.reranked,
                              "fallback_scored": result.fallback_scored, "candidates": result.candidates,
                              "timings_ms": result.timings_ms, "hits": [_hit_json(h) for h in result.hits]},
                             ensure_ascii=False))
        else:
            _print_hits(result)
        return
    from crossrank.data.formats import read_queries, write_trec_run

    texts = read_queries(queries)
    hits = searcher.search_many(texts, k=k, top_n=top_n)
    run = {qid: _run_scores(hs) for qid, hs in hits.items()}
    write_trec_run(run, output, tag=f"crossrank-{retriever}{'-rerank' if reranker else ''}")
    print(f"crossrank search: wrote {sum(len(h) for h in hits.values())} results for {len(hits)} queries "
          f"to {output}", file=sys.stderr)


def _run_scores(hits) -> dict[str, float]:
    """TREC run scores in the searcher's order. One model's scores as they are; when a cascade mixes two
    models' scores (not comparable), each hit's score is its rank counted from the bottom instead."""
    if len({h.scored_by for h in hits}) == 1:
        return {h.id: (h.rerank_score if h.reranked else -float(h.first_stage_rank)) for h in hits}
    return {h.id: float(len(hits) - position) for position, h in enumerate(hits)}


def _hit_json(hit) -> dict:
    return {"id": hit.id, "title": hit.title, "first_stage_rank": hit.first_stage_rank,
            "first_stage_score": hit.first_stage_score, "rerank_score": hit.rerank_score,
            "probability": hit.probability, "reranked": hit.reranked, "scored_by": hit.scored_by,
            "fallback_score": hit.fallback_score,
            "evidence": list(hit.evidence) if hit.evidence else None,
            "snippet": hit.text[hit.evidence[0]:hit.evidence[1]][:300] if hit.evidence else hit.text[:300]}


def _print_hits(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "id", "first stage", "rerank", "snippet",
                  caption=f"{result.reranked} of {result.candidates} candidates reranked"
                          f"{f' ({result.fallback_scored} by the fallback)' if result.fallback_scored else ''} in "
                          f"{result.timings_ms['rerank']:.0f} ms ({result.timings_ms['total']:.0f} ms in all)")
    for rank, hit in enumerate(result.hits, start=1):
        snippet = _hit_json(hit)["snippet"].replace("\n", " ")
        table.add_row(str(rank), hit.id, f"#{hit.first_stage_rank} {hit.first_stage_score:.3f}",
                      (f"{hit.rerank_score:.3f}" + (" (fallback)" if hit.scored_by == "fallback" else ""))
                      if hit.reranked else "-", snippet[:120])
    Console().print(table)
