"""Ensembles combine members' z-scores or probabilities and work wherever a single model does."""

from __future__ import annotations

import numpy as np
import pytest

from crossrank import CrossEncoder, InvalidInputError
from crossrank.ranking.ensemble import EnsembleScorer
from crossrank.ranking.results import sigmoid

from texts import varied_pairs


def test_zscore_ensemble_of_two_models(tiny_model, tiny_model_2labels):
    a, b = CrossEncoder(str(tiny_model)), CrossEncoder(str(tiny_model_2labels))
    reference = varied_pairs(60, seed=1, long_share=0.0)
    ensemble = EnsembleScorer([a, b], weights=[3, 1]).fit_normalization(reference)
    pairs = varied_pairs(20, seed=2, long_share=0.0)
    sa, sb = a.score(reference).astype(np.float64), b.score(reference).astype(np.float64)
    za = (a.score(pairs) - sa.mean()) / sa.std()
    zb = (b.score(pairs) - sb.mean()) / sb.std()
    np.testing.assert_allclose(ensemble.score(pairs), 0.75 * za + 0.25 * zb, atol=1e-5)
    # A pair's ensemble score does not depend on the rest of the call.
    assert ensemble.score(pairs[:1])[0] == pytest.approx(ensemble.score(pairs)[0], abs=1e-5)


def test_probability_ensemble_and_single_member(tiny_model):
    ce = CrossEncoder(str(tiny_model))
    pairs = varied_pairs(10, seed=3, long_share=0.0)
    same = EnsembleScorer([ce, ce], combine="probability")
    np.testing.assert_allclose(same.score(pairs), [sigmoid(s) for s in ce.score(pairs)], atol=1e-6)
    one = EnsembleScorer([ce]).fit_normalization(pairs)
    assert list(np.argsort(-one.score(pairs), kind="stable")) == list(np.argsort(-ce.score(pairs), kind="stable"))


def test_bad_ensembles_are_refused(tiny_model):
    ce = CrossEncoder(str(tiny_model))
    with pytest.raises(InvalidInputError):
        EnsembleScorer([])
    with pytest.raises(InvalidInputError):
        EnsembleScorer([ce], weights=[1, 2])
    with pytest.raises(InvalidInputError, match="fit_normalization"):
        EnsembleScorer([ce]).score([("q", "d")])
