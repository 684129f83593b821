"""Bodies of the jobs around reranking: ``crossrank annotate`` (and, later, ``match`` and ``dedup``)."""

from __future__ import annotations

import sys
from pathlib import Path

from crossrank.errors import InvalidInputError


def annotate_command(model, corpus: Path, queries: Path, runs: list[Path], depth: int, output: Path,
                     thresholds: list[float] | None, judged_path: Path | None, format: str,
                     show_progress: bool) -> dict:
    from crossrank.cli.progress import pair_progress
    from crossrank.data.formats import QRELS_FORMATS, ranked, read_corpus, read_qrels, read_queries, read_run, \
        write_qrels
    from crossrank.pipeline.annotate import GradeThresholds, annotate, pool

    if format not in QRELS_FORMATS:
        raise InvalidInputError(f"unknown qrels format {format!r}: use trec or beir")
    if not runs:
        raise InvalidInputError("give at least one --run to pool")
    cuts = GradeThresholds(tuple(thresholds)) if thresholds else GradeThresholds()
    judged = read_qrels(judged_path).qrels if judged_path is not None else None
    loaded = [read_run(path).run for path in runs]
    query_texts = read_queries(queries)
    pooled = pool(loaded, depth, query_texts)
    docs = read_corpus(corpus, ids={d for ids in pooled.values() for d in ids})
    todo = sum(1 for q, ids in pooled.items() for d in ids if d not in (judged or {}).get(q, {}) and d in docs)
    with pair_progress(show_progress, "annotating", todo) as advance:
        result = annotate(model, query_texts, docs, loaded, depth, cuts, judged, progress=advance)
    write_qrels(result.merged_with(judged), output, format)
    grades = [g for d in result.qrels.values() for g in d.values()]
    summary = {"output": str(output), "pooled_pairs": result.pooled, "annotated": len(grades),
               "kept_judgments": result.already_judged, "missing_text": len(result.missing_text),
               "grades": {str(g): grades.count(g) for g in range(len(cuts.cuts) + 1)}, "thresholds": list(cuts.cuts)}
    if result.missing_text:
        qid, doc_id = result.missing_text[0]
        print(f"crossrank annotate: {len(result.missing_text)} pooled documents have no text in the corpus and "
              f"were left unjudged (e.g. {doc_id!r} for query {qid!r})", file=sys.stderr)
    return summary


def _write_jsonl(rows, path: Path) -> None:
    """One JSON object per line, written atomically (``data.formats.write_lines``)."""
    import json

    from crossrank.data.formats import write_lines

    write_lines(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def match_command(load_model, faq: Path, queries: Path, output: Path, threshold: float, top_k: int, shortlist: int,
                  read: str, show_progress: bool, rank_by: str = "cross-encoder", load_bi_encoder=lambda: None) -> dict:
    from dataclasses import asdict

    from crossrank.cli.progress import pair_progress
    from crossrank.data.formats import read_corpus, read_queries
    from crossrank.pipeline.faq_match import FaqMatcher, check_faq

    entries = read_corpus(faq)
    check_faq(entries)
    questions = read_queries(queries)
    matcher = FaqMatcher(entries, load_model(), load_bi_encoder(), shortlist=shortlist, read=read,
                         rank_by=rank_by)  # inputs checked first
    with pair_progress(show_progress, "matching", len(questions) * matcher.shortlist) as advance:
        results = matcher.match(questions, threshold, top_k, progress=advance)
    _write_jsonl(({"query_id": r.query_id, "match": asdict(r.match) if r.match else None,
                   "candidates": [asdict(c) for c in r.candidates]} for r in results), output)
    answered = sum(r.match is not None for r in results)
    return {"output": str(output), "questions": len(results), "answered": answered,
            "no_answer": len(results) - answered, "threshold": threshold}


def dedup_command(load_model, input_path: Path, output: Path, threshold: float, neighbours: int, min_cosine: float,
                  clustering: str, pairs_output: Path | None, show_progress: bool, load_bi_encoder=lambda: None) -> dict:
    from dataclasses import asdict

    from crossrank.cli.progress import pair_progress
    from crossrank.data.formats import read_queries
    from crossrank.pipeline.dedup import CLUSTERINGS, check_questions, cluster, find_duplicates

    if clustering not in CLUSTERINGS:
        raise InvalidInputError(f"unknown clustering {clustering!r}: use one of {', '.join(CLUSTERINGS)}")
    questions = read_queries(input_path)
    check_questions(questions)
    model = load_model()  # inputs checked first
    with pair_progress(show_progress, "verifying pairs", None) as advance:
        pairs = find_duplicates(questions, model, load_bi_encoder(), threshold=threshold, neighbours=neighbours,
                                min_cosine=min_cosine, progress=advance)
    clusters = cluster(list(questions), pairs, clustering)
    _write_jsonl(({"cluster": n, "ids": ids} for n, ids in enumerate(clusters)), output)
    if pairs_output is not None:
        _write_jsonl((asdict(p) for p in pairs), pairs_output)
    return {"output": str(output), "questions": len(questions), "duplicate_pairs": len(pairs),
            "clusters": len(clusters), "clusters_with_duplicates": sum(len(c) > 1 for c in clusters)}
