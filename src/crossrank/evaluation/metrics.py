"""Ranking metrics through ir-measures (pytrec_eval underneath), so numbers match trec_eval exactly.

Metric names follow ir-measures/ranx spelling in lower case: ``ndcg@10``, ``mrr@10``, ``recall@100``,
``map``, ``p@10`` (also ``precision@10``), ``ndcg``, ``map@100``, ``r-prec``. nDCG always uses every
grade (trec_eval's linear gains). Binary metrics (MRR, Recall, MAP, P) count a document as relevant
when its grade is at least the *relevance level*: TREC Deep Learning uses 2, BEIR datasets 1.
``relevance_level=None`` picks 2 when the qrels use a 0-3 scale (grade 3 present), else 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crossrank.data.formats import Qrels, Run
from crossrank.errors import InvalidInputError

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")

_PATTERN = re.compile(r"^(ndcg|mrr|rr|recall|r|map|ap|p|precision|r-prec|rprec)(@(\d+))?$")


@dataclass
class EvalResult:
    """Mean of each metric over the evaluated queries, and the per-query values behind it."""

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    relevance_level: int
    queries: int


def auto_relevance_level(qrels: Qrels) -> int:
    grades = {g for docs in qrels.values() for g in docs.values()}
    return 2 if grades and max(grades) >= 3 else 1


def to_measure(name: str, relevance_level: int):
    """Translate one metric name into an ir-measures measure."""
    import ir_measures as irm

    match = _PATTERN.match(name.strip().lower())
    if not match:
        raise InvalidInputError(
            f"unknown metric {name!r}: use ndcg@k, mrr@k, recall@k, map, map@k, p@k or r-prec"
        )
    family, cutoff = match.group(1), match.group(3)
    rel = relevance_level
    if family == "ndcg":
        measure = irm.nDCG
    elif family in ("mrr", "rr"):
        measure = irm.RR(rel=rel)
    elif family in ("recall", "r"):
        measure = irm.R(rel=rel)
    elif family in ("map", "ap"):
        measure = irm.AP(rel=rel)
    elif family in ("p", "precision"):
        measure = irm.P(rel=rel)
    else:
        if cutoff:
            raise InvalidInputError(f"metric {name!r} takes no cutoff")
        return irm.Rprec(rel=rel)
    if cutoff:
        if int(cutoff) < 1:
            raise InvalidInputError(f"metric {name!r} needs a positive cutoff")
        return measure @ int(cutoff)
    if family in ("recall", "r", "p", "precision", "mrr", "rr"):
        raise InvalidInputError(f"metric {name!r} needs a cutoff, e.g. {family}@10")
    return measure


def evaluate(qrels: Qrels, run: Run, metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
             relevance_level: int | None = None) -> EvalResult:
    """Mean and per-query metrics over the queries that have judgments and appear in the run.

    Judged queries missing from the run count as 0 (a failed query is a real failure, as with
    ``trec_eval -c``); run queries without judgments are ignored.
    """
    import ir_measures as irm

    if not qrels:
        raise InvalidInputError("the qrels hold no judgments")
    level = auto_relevance_level(qrels) if relevance_level is None else int(relevance_level)
    names = [m.strip().lower() for m in metrics]
    measures = {name: to_measure(name, level) for name in names}
    judged = {q: docs for q, docs in qrels.items() if any(g >= 0 for g in docs.values())}
    per_query: dict[str, dict[str, float]] = {name: {qid: 0.0 for qid in judged} for name in names}
    by_measure = {measure: name for name, measure in measures.items()}
    evaluated_run = {qid: docs for qid, docs in run.items() if qid in judged and docs}
    for metric in irm.iter_calc(list(measures.values()), judged, evaluated_run):
        per_query[by_measure[metric.measure]][metric.query_id] = float(metric.value)
    count = len(judged)
    return EvalResult(
        metrics={name: sum(values.values()) / count for name, values in per_query.items()},
        per_query=per_query,
        relevance_level=level,
        queries=count,
    )
