"""Calibration: fitting recovers a known map, lowers ECE, is stored beside the weights and used everywhere."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from crossrank import CrossEncoder, ModelLoadError
from crossrank.ranking.calibration import (Calibration, brier_score, expected_calibration_error,
                                           fit_calibration)
from crossrank.ranking.results import sigmoid


def synthetic(n=4000, a=0.5, b=-1.0, seed=0):
    """Scores whose true P(relevant) is sigmoid(a * s + b): raw sigmoid(s) is badly calibrated."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 4, size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(a * scores + b)))).astype(float)
    return scores, labels


@pytest.mark.parametrize("method, bias", [("temperature", 0.0), ("platt", -1.0), ("isotonic", -1.0)])
def test_fitting_lowers_ece_and_brier_on_held_out_data(method, bias):
    scores, labels = synthetic(b=bias)  # a temperature alone cannot remove a bias, so it gets none
    fit = fit_calibration(scores[:2000], labels[:2000], method)
    raw = np.array([sigmoid(s) for s in scores[2000:]])
    after = fit.probability(scores[2000:])
    assert expected_calibration_error(after, labels[2000:]) < expected_calibration_error(raw, labels[2000:]) / 2
    assert brier_score(after, labels[2000:]) < brier_score(raw, labels[2000:])
    assert np.all(np.diff(fit.probability(np.linspace(-10, 10, 50))) >= 0)  # monotone


def test_platt_recovers_the_generating_parameters():
    scores, labels = synthetic(n=20000, seed=1)
    fit = fit_calibration(scores, labels, "platt")
    assert fit.a == pytest.approx(0.5, abs=0.05) and fit.b == pytest.approx(-1.0, abs=0.1)


def test_metrics_on_known_values():
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0]) == pytest.approx(0.1)
    assert brier_score([1.0, 0.0], [1, 0]) == 0.0 and brier_score([0.5], [1]) == 0.25


def test_calibration_file_is_used_by_the_cross_encoder(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    Calibration("platt", a=2.0, b=-1.0).save(folder)
    ce = CrossEncoder(str(folder))
    ranked = ce.rerank("protein therapy", ["cell protein", "river", "therapy study"])
    for r in ranked:
        assert r.probability == pytest.approx(1 / (1 + np.exp(-(2.0 * r.score - 1.0))), abs=1e-9)
    assert [r.index for r in ranked] == [r.index for r in CrossEncoder(str(tiny_model)).rerank(
        "protein therapy", ["cell protein", "river", "therapy study"])]
    (folder / "calibration.json").write_text(json.dumps({"method": "magic"}))
    with pytest.raises(ModelLoadError, match="calibration.json is not a valid calibration file"):
        CrossEncoder(str(folder))


def test_bad_fitting_input_is_refused():
    from crossrank.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="both classes"):
        fit_calibration([1.0, 2.0], [1, 1])
    with pytest.raises(InvalidInputError, match="unknown calibration method"):
        fit_calibration([1.0, 2.0], [0, 1], "magic")
