"""How closely a fast backend's scores follow the fp32 reference: the drift guard of an export.

Low precision rarely moves scores much, but a reranker is judged by its order: the guard compares each
query's top 10, the rank correlation of all scores and the largest score difference, on sample pairs (a
user's own data when given, else a small built-in sample), and says whether they clear the thresholds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).with_name("agreement_sample.json")

# Below these an export warns (and fails under --strict); `crossrank export --min-...` sets others.
MIN_TOP10_OVERLAP = 0.9
MIN_SPEARMAN = 0.99


@dataclass
class SamplePairs:
    """Pairs grouped by query: ``groups[i]`` holds the pair positions of query i."""

    queries: list[str]
    documents: list[str]
    groups: list[np.ndarray]
    source: str


@dataclass
class Agreement:
    pairs: int
    top10_overlap: float  # mean over queries of |top10(fast) & top10(ref)| / 10
    spearman: float
    max_abs_diff: float
    source: str
    min_top10_overlap: float = MIN_TOP10_OVERLAP
    min_spearman: float = MIN_SPEARMAN

    @property
    def passed(self) -> bool:
        return self.top10_overlap >= self.min_top10_overlap and self.spearman >= self.min_spearman

    def summary(self) -> str:
        return (f"top-10 overlap {self.top10_overlap:.3f}, Spearman {self.spearman:.4f}, max score difference "
                f"{self.max_abs_diff:.4f} on {self.pairs} pairs ({self.source})")

    def to_json(self) -> dict:
        fields = asdict(self)
        thresholds = {"top10_overlap": fields.pop("min_top10_overlap"), "spearman": fields.pop("min_spearman")}
        return {**fields, "passed": self.passed, "thresholds": thresholds}


def builtin_sample() -> SamplePairs:
    """Every built-in query against every built-in passage (12 x 48 pairs)."""
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    queries, documents, groups = [], [], []
    for query in data["queries"]:
        start = len(queries)
        queries += [query] * len(data["passages"])
        documents += data["passages"]
        groups.append(np.arange(start, len(queries)))
    return SamplePairs(queries, documents, groups, "built-in sample")


def beir_sample(folder: Path, max_queries: int = 30, depth: int = 20) -> SamplePairs:
    """Pairs from a BEIR folder: each query's top ``depth`` of the first run in ``runs/`` when there is one,
    else its judged documents topped up with other queries' judged documents."""
    from crossrank.data.formats import ranked, read_corpus, read_qrels, read_queries, read_run

    queries = read_queries(folder / "queries.jsonl")
    runs = sorted((folder / "runs").glob("*")) if (folder / "runs").is_dir() else []
    if runs:
        ranking = {q: ranked(scores)[:depth] for q, scores in read_run(runs[0]).run.items() if q in queries}
        source = f"{folder.name}, {runs[0].name} top {depth}"
    else:
        qrels_files = sorted((folder / "qrels").glob("*.tsv"))
        if not qrels_files:
            raise FileNotFoundError(f"{folder} has neither runs/ nor qrels/*.tsv to draw sample pairs from")
        qrels = read_qrels(qrels_files[-1]).qrels
        pool = sorted({d for docs in qrels.values() for d in docs})
        ranking = {}
        for i, (q, docs) in enumerate(sorted(qrels.items())):
            if q in queries:
                judged = sorted(docs)[:depth]
                others = [pool[(i * 7919 + j * 104729) % len(pool)] for j in range(depth)]
                ranking[q] = list(dict.fromkeys(judged + others))[:depth]
        source = f"{folder.name}, judged documents"
    chosen = sorted(ranking)[:max_queries]
    corpus = read_corpus(folder / "corpus.jsonl", {d for q in chosen for d in ranking[q]})
    sample_queries, documents, groups = [], [], []
    for q in chosen:
        docs = [d for d in ranking[q] if d in corpus]
        start = len(sample_queries)
        sample_queries += [queries[q]] * len(docs)
        documents += [corpus[d].full_text for d in docs]
        groups.append(np.arange(start, len(sample_queries)))
    return SamplePairs(sample_queries, documents, groups, source)


def measure(reference: np.ndarray, fast: np.ndarray, sample: SamplePairs, min_top10_overlap: float = MIN_TOP10_OVERLAP,
            min_spearman: float = MIN_SPEARMAN) -> Agreement:
    from scipy.stats import spearmanr

    overlaps = []
    for group in sample.groups:
        k = min(10, len(group))
        top_ref = set(group[np.argsort(-reference[group], kind="stable")[:k]])
        top_fast = set(group[np.argsort(-fast[group], kind="stable")[:k]])
        overlaps.append(len(top_ref & top_fast) / k)
    rho = float(spearmanr(reference, fast)[0]) if len(reference) > 1 else 1.0
    return Agreement(pairs=len(reference), top10_overlap=float(np.mean(overlaps)), spearman=rho,
                     max_abs_diff=float(np.max(np.abs(reference - fast))), source=sample.source,
                     min_top10_overlap=min_top10_overlap, min_spearman=min_spearman)
