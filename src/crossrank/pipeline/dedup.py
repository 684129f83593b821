"""Duplicate questions: bi-encoder candidate pairs, verified by a cross-encoder, then clustered.

Comparing every pair with a cross-encoder costs n^2 / 2 passes; the bi-encoder proposes each question's
nearest ``neighbours`` (cosine at least ``min_cosine``), and the cross-encoder verifies each proposed pair
in both orders (its score is not symmetric; the mean probability is kept). Pairs at or above ``threshold``
are duplicates.

Clusters: ``components`` (default) joins every verified pair transitively (connected components): with a
verifier at a probability threshold chaining errors are rare, and duplicate questions often paraphrase
each other only through a third. ``strict`` (complete linkage, greedy by probability) adds a question to a
cluster only when it is a verified duplicate of every member: no chains, smaller clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from crossrank.errors import InvalidInputError

CLUSTERINGS = ("components", "strict")


@dataclass(frozen=True)
class DuplicatePair:
    first: str
    second: str
    probability: float  # mean of the cross-encoder's calibrated probabilities in both orders
    cosine: float


def check_questions(questions: dict[str, str]) -> None:
    if not questions:
        raise InvalidInputError("no questions to de-duplicate")
    empty = [qid for qid, text in questions.items() if not isinstance(text, str) or not text.strip()]
    if empty:
        raise InvalidInputError(f"{len(empty)} questions have no text (e.g. {empty[0]!r})")


def candidate_pairs(vectors: np.ndarray, neighbours: int, min_cosine: float) -> list[tuple[int, int, float]]:
    """(i, j, cosine) with i < j: each row's nearest ``neighbours`` at cosine >= ``min_cosine``, once each."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    found: dict[tuple[int, int], float] = {}
    k = min(neighbours, len(vectors) - 1)
    if k < 1:
        return []
    for i, row in enumerate(sims):
        for j in np.argpartition(-row, k - 1)[:k]:
            if row[j] >= min_cosine:
                found[(min(i, int(j)), max(i, int(j)))] = float(row[j])
    return [(i, j, c) for (i, j), c in sorted(found.items())]


def find_duplicates(questions: dict[str, str], model, bi_encoder=None, threshold: float = 0.5,
                    neighbours: int = 10, min_cosine: float = 0.5,
                    progress: Callable[[int], None] | None = None) -> list[DuplicatePair]:
    """Verified duplicate pairs, most probable first."""
    check_questions(questions)
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"the threshold is a probability in [0, 1], got {threshold}")
    if neighbours < 1:
        raise InvalidInputError(f"neighbours must be positive, got {neighbours}")
    if bi_encoder is None:
        from crossrank.model.bi_encoder import BiEncoder

        bi_encoder = BiEncoder()
    ids = list(questions)
    texts = [questions[q] for q in ids]
    proposed = candidate_pairs(bi_encoder.encode(texts), neighbours, min_cosine)
    if not proposed:
        return []
    pairs = [(texts[i], texts[j]) for i, j, _ in proposed] + [(texts[j], texts[i]) for i, j, _ in proposed]
    scores = np.asarray(model.score(pairs, progress=progress), dtype=np.float64)
    probs = np.asarray(model.probability(scores), dtype=np.float64)
    both = (probs[:len(proposed)] + probs[len(proposed):]) / 2
    found = [DuplicatePair(ids[i], ids[j], float(p), c) for (i, j, c), p in zip(proposed, both) if p >= threshold]
    return sorted(found, key=lambda d: (-d.probability, d.first, d.second))


def cluster(ids: list[str], pairs: list[DuplicatePair], method: str = "components") -> list[list[str]]:
    """Every id in exactly one cluster (singletons included), clusters largest first, ids in input order."""
    if method not in CLUSTERINGS:
        raise InvalidInputError(f"unknown clustering {method!r}: use one of {', '.join(CLUSTERINGS)}")
    position = {q: n for n, q in enumerate(ids)}
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if method == "components":
        for pair in pairs:
            a, b = root(position[pair.first]), root(position[pair.second])
            if a != b:
                parent[max(a, b)] = min(a, b)
    else:
        linked = {(p.first, p.second) for p in pairs} | {(p.second, p.first) for p in pairs}
        members: dict[int, list[int]] = {i: [i] for i in range(len(ids))}
        for pair in pairs:  # most probable first
            a, b = root(position[pair.first]), root(position[pair.second])
            if a == b:
                continue
            if all((ids[x], ids[y]) in linked for x in members[a] for y in members[b]):
                keep, gone = min(a, b), max(a, b)
                parent[gone] = keep
                members[keep] += members.pop(gone)
    groups: dict[int, list[str]] = {}
    for n, q in enumerate(ids):
        groups.setdefault(root(n), []).append(q)
    return sorted(groups.values(), key=lambda g: (-len(g), position[g[0]]))
