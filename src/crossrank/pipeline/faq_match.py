"""Match user questions against a fixed FAQ, with "no answer" as a valid outcome.

A support bot must not answer when nothing fits. The bi-encoder shortlists the FAQ entries whose questions
are nearest to the user question (a small FAQ is read whole), the cross-encoder reads the user question
against each shortlisted entry (its question and answer, or only its question), and the best entry is the
match only when its calibrated probability reaches the threshold; otherwise the match is ``None``.

``rank_by="fused"`` orders the shortlist by reciprocal-rank fusion (k = 60) of the bi-encoder's and the
cross-encoder's ranks instead of the cross-encoder's alone: their errors differ, and a fixed fusion needs no
weight fitted to anyone's FAQ. The threshold still applies to the cross-encoder's probability of the entry
ranked first. ``rank_by="bi-encoder"`` keeps the bi-encoder's order and uses the cross-encoder only to
decide "no answer": the choice when a strong question-question bi-encoder (``--dense-model``) picks better
than the cross-encoder reads, as measured on held-out data (benchmarks/faq_dedup_quality.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from crossrank.data.formats import Document
from crossrank.errors import InvalidInputError

READS = ("entry", "question")  # what the cross-encoder reads of an FAQ entry: question + answer, or question
RANKINGS = ("cross-encoder", "fused", "bi-encoder")
RRF_K = 60


@dataclass(frozen=True)
class MatchCandidate:
    id: str
    question: str
    probability: float  # the cross-encoder's calibrated probability that the entry answers the question
    score: float  # its raw score
    cosine: float  # the bi-encoder's cosine to the FAQ question (what shortlisted it)


@dataclass
class MatchResult:
    query_id: str
    match: MatchCandidate | None  # None: nothing reached the threshold ("no answer")
    candidates: list[MatchCandidate] = field(default_factory=list)  # best first


def check_faq(entries: dict[str, Document]) -> None:
    """An FAQ to match against: at least one entry, every entry with a question (its title) or text."""
    if not entries:
        raise InvalidInputError("the FAQ is empty: nothing to match against")
    empty = [e.id for e in entries.values() if not (e.title or "").strip() and not (e.text or "").strip()]
    if empty:
        raise InvalidInputError(f"{len(empty)} FAQ entries have neither a question (title) nor text "
                                f"(e.g. {empty[0]!r})")


class FaqMatcher:
    """``match(questions)`` -> one ``MatchResult`` per question. Embeds the FAQ questions once."""

    def __init__(self, faq: dict[str, Document], model, bi_encoder=None, shortlist: int = 20, read: str = "entry",
                 rank_by: str = "cross-encoder"):
        check_faq(faq)
        if read not in READS:
            raise InvalidInputError(f"unknown FAQ reading {read!r}: use one of {', '.join(READS)}")
        if rank_by not in RANKINGS:
            raise InvalidInputError(f"unknown FAQ ranking {rank_by!r}: use one of {', '.join(RANKINGS)}")
        self.rank_by = rank_by
        if shortlist < 1:
            raise InvalidInputError(f"the shortlist must hold at least one entry, got {shortlist}")
        if bi_encoder is None:
            from crossrank.model.bi_encoder import BiEncoder

            bi_encoder = BiEncoder()
        self.entries = list(faq.values())
        self.model, self.bi_encoder, self.read = model, bi_encoder, read
        self.shortlist = min(shortlist, len(self.entries))
        self.vectors = bi_encoder.encode([_question(e) for e in self.entries])

    def match(self, questions: dict[str, str], threshold: float = 0.5, top_k: int = 5,
              progress: Callable[[int], None] | None = None) -> list[MatchResult]:
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInputError(f"the threshold is a probability in [0, 1], got {threshold}")
        if top_k < 1:
            raise InvalidInputError(f"top_k must be positive, got {top_k}")
        for qid, text in questions.items():
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"question {qid!r} is empty")
        if not questions:
            return []
        ids = list(questions)
        cosines = self.bi_encoder.encode([questions[q] for q in ids]) @ self.vectors.T
        shortlists = [np.argsort(-row, kind="stable")[:self.shortlist] for row in cosines]
        pairs = [(questions[qid], self._text(self.entries[j])) for qid, rows in zip(ids, shortlists) for j in rows]
        scores = np.asarray(self.model.score(pairs, progress=progress), dtype=np.float64)
        probs = np.asarray(self.model.probability(scores), dtype=np.float64)
        results, start = [], 0
        for i, (qid, rows) in enumerate(zip(ids, shortlists)):
            found = [MatchCandidate(self.entries[j].id, _question(self.entries[j]), float(probs[start + n]),
                                    float(scores[start + n]), float(cosines[i, j])) for n, j in enumerate(rows)]
            start += len(rows)
            found = order_candidates(found, self.rank_by)
            best = found[0] if found and found[0].probability >= threshold else None
            results.append(MatchResult(qid, best, found[:top_k]))
        return results

    def _text(self, entry: Document) -> str:
        return _question(entry) if self.read == "question" else entry.full_text


def order_candidates(candidates: list[MatchCandidate], rank_by: str) -> list[MatchCandidate]:
    """The shortlist in the order ``rank_by`` names (one of ``RANKINGS``), best first."""
    by_score = sorted(candidates, key=lambda c: (-c.score, -c.cosine))
    if rank_by == "fused":
        return fuse_ranks(by_score)
    if rank_by == "bi-encoder":
        return sorted(by_score, key=lambda c: -c.cosine)  # stable: equal cosines keep the cross-encoder's order
    return by_score


def fuse_ranks(candidates: list[MatchCandidate]) -> list[MatchCandidate]:
    """Candidates in the cross-encoder's order, re-ordered by reciprocal-rank fusion (k = 60) with the
    bi-encoder's order (by cosine); ties keep the cross-encoder's order."""
    by_cosine = {c.id: rank for rank, c in enumerate(sorted(candidates, key=lambda c: -c.cosine))}
    fused = {c.id: 1 / (RRF_K + rank) + 1 / (RRF_K + by_cosine[c.id]) for rank, c in enumerate(candidates)}
    return sorted(candidates, key=lambda c: -fused[c.id])


def _question(entry: Document) -> str:
    return entry.title if (entry.title or "").strip() else entry.text
