"""Ensembles: several cross-encoders scored as one, usable wherever a single model is (``score(pairs)``).

Members' raw logits live on different scales, so they are combined either as z-scores (each member's
scores standardised with a mean and deviation fitted once on reference pairs, so that a pair's score
never depends on what else is in the call) or as calibrated probabilities (each member's
``probability``: its calibration.json, else the sigmoid). Weights default to equal.

A model folder can declare itself an ensemble with ``ensemble.json`` (see ``EnsembleConfig``): its own
cross-encoder weights plus, for example, the all-MiniLM-L6-v2 bi-encoder, with fitted weights and
z-score statistics. ``CrossEncoder(folder)`` then scores with the whole ensemble, so an ensemble is
usable anywhere a single model is (Python API, CLI, HTTP server).

A z-score ensemble's output is ``scale * (weighted sum of z-scores) + bias``. With the defaults (1, 0) it
is the plain combination; ``scale`` and ``bias`` fitted by Platt scaling make it a calibrated log-odds, so
that ``sigmoid(score)`` is a calibrated probability (the shipped default does this).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import time

import numpy as np

from crossrank.engine.scorer import ScoreStats
from crossrank.errors import InvalidInputError, ModelLoadError

COMBINATIONS = ("zscore", "probability")
ENSEMBLE_FILE = "ensemble.json"
MEMBER_KINDS = ("cross-encoder", "bi-encoder")


@dataclass
class EnsembleMember:
    """``kind`` cross-encoder with ``path`` relative to the folder ("." = the folder's own weights), or
    kind bi-encoder with ``path`` None for the default all-MiniLM-L6-v2."""

    kind: str
    path: str | None = None


@dataclass
class EnsembleConfig:
    """The contents of ``ensemble.json``."""

    members: list[EnsembleMember]
    weights: list[float]
    combine: str = "zscore"
    stats: list[tuple[float, float]] | None = None  # per member (mean, std) for zscore
    scale: float = 1.0  # output = scale * combination + bias (a Platt calibration folded into the score)
    bias: float = 0.0
    notes: dict = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path) -> "EnsembleConfig | None":
        path = Path(folder) / ENSEMBLE_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            members = [EnsembleMember(m["kind"], m.get("path")) for m in raw["members"]]
            stats = [(float(a), float(b)) for a, b in raw["stats"]] if raw.get("stats") else None
            config = cls(members, [float(w) for w in raw["weights"]], raw.get("combine", "zscore"), stats,
                         float(raw.get("scale", 1.0)), float(raw.get("bias", 0.0)), raw.get("notes", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{path}: not a valid ensemble file ({exc})") from None
        if any(m.kind not in MEMBER_KINDS for m in config.members):
            raise ModelLoadError(f"{path}: member kinds must be one of {', '.join(MEMBER_KINDS)}")
        if config.stats is not None and len(config.stats) != len(config.members):
            raise ModelLoadError(f"{path}: one (mean, std) per member")
        if not config.scale > 0 or not np.isfinite(config.bias):
            raise ModelLoadError(f"{path}: scale must be positive and bias finite")
        if config.combine == "probability" and (config.scale, config.bias) != (1.0, 0.0):
            raise ModelLoadError(f"{path}: scale and bias apply to zscore ensembles only")
        return config

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / ENSEMBLE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


class EnsembleScorer:
    def __init__(self, members: Sequence, weights: Sequence[float] | None = None, combine: str = "zscore",
                 stats: Sequence[tuple[float, float]] | None = None, scale: float = 1.0, bias: float = 0.0):
        if not members:
            raise InvalidInputError("an ensemble needs at least one member")
        if combine not in COMBINATIONS:
            raise InvalidInputError(f"unknown combination {combine!r}: use zscore or probability")
        weights = list(weights) if weights is not None else [1.0] * len(members)
        if len(weights) != len(members) or min(weights) < 0 or sum(weights) == 0:
            raise InvalidInputError("one non-negative weight per member, not all zero")
        self.members = list(members)
        self.weights = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.combine = combine
        self.stats: list[tuple[float, float]] | None = list(stats) if stats is not None else None
        if self.stats is not None and len(self.stats) != len(self.members):
            raise InvalidInputError("one (mean, std) per member")
        self.scale, self.bias = float(scale), float(bias)
        self.last_stats: ScoreStats | None = None

    @property
    def tokenizer(self):
        """The first member's tokenizer (for splitting long documents into windows)."""
        return self.members[0].tokenizer

    def fit_normalization(self, pairs: Sequence[tuple[str, str]]) -> "EnsembleScorer":
        """Mean and deviation of each member's scores on reference pairs (e.g. a sample of real candidates)."""
        return self.normalization_from_scores([member.score(pairs) for member in self.members])

    def normalization_from_scores(self, member_scores: Sequence[np.ndarray]) -> "EnsembleScorer":
        """``fit_normalization`` from each member's scores on the reference pairs, when they are already known."""
        self.stats = []
        for raw in member_scores:
            scores = np.asarray(raw, dtype=np.float64)
            self.stats.append((float(scores.mean()), float(scores.std()) or 1.0))
        return self

    def score(self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The ensemble's scores (``scale * combination + bias``); ``last_stats`` covers every member."""
        if self.combine == "zscore" and self.stats is None:
            raise InvalidInputError("call fit_normalization(reference_pairs) before scoring with zscore")
        stats = ScoreStats(pairs=len(pairs))
        raw = []
        for i, member in enumerate(self.members):
            started = time.perf_counter()
            # Progress follows the first member (the cross-encoder: by far the slowest pass).
            raw.append(member.score(pairs, progress=progress if i == 0 else None))
            member_stats = getattr(member, "last_stats", None)
            if isinstance(member_stats, ScoreStats):
                stats.add(member_stats)
            else:  # a member without an engine (the bi-encoder): count its wall time
                stats.partner_seconds += time.perf_counter() - started
        self.last_stats = stats
        combined = self.combine_scores(raw)
        if self.combine == "zscore":
            combined = self.scale * combined + self.bias
        return combined.astype(np.float32)

    def combine_scores(self, member_scores: Sequence[np.ndarray]) -> np.ndarray:
        """The weighted combination of members' raw scores (one array per member, same pairs), float64,
        before ``scale`` and ``bias``."""
        total = np.zeros(len(member_scores[0]), dtype=np.float64)
        for i, (member, weight, raw) in enumerate(zip(self.members, self.weights, member_scores)):
            raw = np.asarray(raw, dtype=np.float64)
            if self.combine == "zscore":
                mean, std = self.stats[i]
                total += weight * (raw - mean) / std
            else:
                total += weight * np.asarray(member.probability(raw), dtype=np.float64)
        return total

    def probability(self, scores) -> np.ndarray:
        """For ``probability`` combinations the score already is one; z-scores go through a sigmoid."""
        s = np.asarray(scores, dtype=np.float64)
        return s if self.combine == "probability" else 1.0 / (1.0 + np.exp(-s))
