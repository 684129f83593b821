"""Calibrated probabilities: map raw cross-encoder scores to P(relevant) fitted on labelled data.

Raw logits cannot be thresholded across models or domains; a calibration fitted on a labelled dev set
can. Three methods:

- ``temperature``: p = sigmoid(s / T), one parameter (Guo et al., ICML 2017); keeps the ranking.
- ``platt``: p = sigmoid(a * s + b) (Platt, 1999); keeps the ranking.
- ``isotonic``: a monotone step function (Zadrozny & Elkan, KDD 2002), interpolated linearly; the most
  flexible, needs more data, and may tie scores.

The fitted map is stored beside the weights as ``calibration.json``; ``CrossEncoder`` and the HTTP
service use it for ``probability`` / ``relevance_score`` whenever it is present.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from crossrank.errors import InvalidInputError, ModelLoadError

FILENAME = "calibration.json"
METHODS = ("temperature", "platt", "isotonic")


@dataclass
class Calibration:
    method: str
    a: float = 1.0  # slope (1 / temperature for the temperature method)
    b: float = 0.0
    xs: list[float] = field(default_factory=list)  # isotonic knots: score -> probability
    ys: list[float] = field(default_factory=list)

    def probability(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(s, self.xs, self.ys)
        z = self.a * s + self.b
        return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / FILENAME
        tmp = path.with_name(f".{FILENAME}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Calibration | None":
        path = Path(folder) / FILENAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            calibration = cls(**data)
            if calibration.method not in METHODS:
                raise ValueError(f"unknown method {calibration.method!r}")
            if calibration.method == "isotonic" and (len(calibration.xs) < 2 or len(calibration.xs) != len(calibration.ys)):
                raise ValueError("isotonic calibration needs matching xs and ys")
            return calibration
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path} is not a valid calibration file ({exc})") from None


def fit_calibration(scores, labels, method: str = "platt") -> Calibration:
    """Fit on raw scores and binary labels (1 relevant, 0 not) by minimising log loss."""
    from scipy.optimize import minimize

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if method not in METHODS:
        raise InvalidInputError(f"unknown calibration method {method!r}: use one of {', '.join(METHODS)}")
    if len(s) != len(y) or len(s) < 2 or y.min() == y.max():
        raise InvalidInputError("calibration needs matching scores and labels with both classes present")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip").fit(s, y)
        return Calibration("isotonic", xs=[float(x) for x in iso.X_thresholds_],
                           ys=[float(v) for v in iso.y_thresholds_])

    def log_loss(params):
        a, b = (params[0], 0.0) if method == "temperature" else params
        z = a * s + b
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    start = [1.0] if method == "temperature" else [1.0, 0.0]
    best = minimize(log_loss, start, method="L-BFGS-B",
                    bounds=[(1e-4, None)] if method == "temperature" else [(1e-4, None), (None, None)])
    a, b = (float(best.x[0]), 0.0) if method == "temperature" else (float(best.x[0]), float(best.x[1]))
    return Calibration(method, a=a, b=b)


def expected_calibration_error(probabilities, labels, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width probability bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(error)


def brier_score(probabilities, labels) -> float:
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean((p - np.asarray(labels, dtype=np.float64)) ** 2))
