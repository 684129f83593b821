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


def _ensemble_folder(tmp_path, tiny_model, tiny_model_2labels, members, weights, stats):
    import json
    import shutil

    folder = tmp_path / "ensemble-model"
    shutil.copytree(tiny_model, folder)
    shutil.copytree(tiny_model_2labels, folder / "second")
    (folder / "ensemble.json").write_text(json.dumps({"members": members, "weights": weights, "stats": stats}))
    return folder


def test_a_model_folder_with_ensemble_json_scores_as_the_ensemble(tmp_path, tiny_model, tiny_model_2labels):
    folder = _ensemble_folder(tmp_path, tiny_model, tiny_model_2labels,
                              [{"kind": "cross-encoder", "path": "."}, {"kind": "cross-encoder", "path": "second"}],
                              [1, 3], [[0.5, 2.0], [-1.0, 4.0]])
    pairs = varied_pairs(12, seed=4, long_share=0.0)
    a, b = CrossEncoder(str(tiny_model)).score(pairs), CrossEncoder(str(tiny_model_2labels)).score(pairs)
    expected = 0.25 * (a - 0.5) / 2.0 + 0.75 * (b + 1.0) / 4.0
    ensemble = CrossEncoder(str(folder))
    np.testing.assert_allclose(ensemble.score(pairs), expected, atol=1e-5)
    np.testing.assert_allclose(CrossEncoder(str(folder), use_ensemble=False).score(pairs), a, atol=1e-6)
    # Ranking goes through the same scores, so rerank, the CLI and the server all use the ensemble.
    query = pairs[0][0]
    docs = [d for q, d in pairs if q == query]
    ranked = ensemble.rerank(query, docs)
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert ensemble.last_stats is not None and ensemble.last_stats.pairs == len(docs)


def test_a_bi_encoder_member_and_broken_ensemble_files(tmp_path, tiny_model, tiny_model_2labels, tiny_bi_encoder):
    import shutil

    from crossrank import ModelLoadError
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

    folder = _ensemble_folder(tmp_path, tiny_model, tiny_model_2labels,
                              [{"kind": "cross-encoder", "path": "."}, {"kind": "bi-encoder", "path": "bi"}],
                              [1, 1], [[0.0, 1.0], [0.0, 1.0]])
    shutil.copytree(tiny_bi_encoder, folder / "bi")
    pairs = varied_pairs(8, seed=5, long_share=0.0)
    cosine = BiEncoderReranker(BiEncoder(str(tiny_bi_encoder))).score(pairs)
    own = CrossEncoder(str(tiny_model)).score(pairs)
    np.testing.assert_allclose(CrossEncoder(str(folder)).score(pairs), 0.5 * own + 0.5 * cosine, atol=1e-5)

    (folder / "ensemble.json").write_text('{"members": [{"kind": "magic"}], "weights": [1]}')
    with pytest.raises(ModelLoadError, match="member kinds"):
        CrossEncoder(str(folder))
    (folder / "ensemble.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="ensemble.json"):
        CrossEncoder(str(folder))


def test_first_stage_fusion_values_and_weight_fit():
    from crossrank.ranking.score_fusion import fit_first_stage_weight, fuse_with_first_stage, zscore

    rerank, first = [3.0, 1.0, 2.0], [10.0, 30.0, 20.0]
    np.testing.assert_allclose(fuse_with_first_stage(rerank, first, 0.0), rerank)
    np.testing.assert_allclose(fuse_with_first_stage(rerank, first, 0.25),
                               0.75 * zscore(rerank) + 0.25 * zscore(first))
    assert list(np.argsort(-fuse_with_first_stage(rerank, first, 1.0))) == [1, 2, 0]
    np.testing.assert_allclose(zscore([5.0, 5.0]), [0.0, 0.0])  # constant scores do not divide by zero
    assert zscore([]).shape == (0,) and fuse_with_first_stage([], [], 0.5).shape == (0,)  # a query without candidates
    with pytest.raises(InvalidInputError):
        fuse_with_first_stage(rerank, first[:2], 0.5)
    with pytest.raises(InvalidInputError):
        fuse_with_first_stage(rerank, first, 1.5)
    # The reranker puts the relevant document d1 second; the first stage has it first: some fusion fixes it.
    rerank_run = {"q": {"d0": 2.0, "d1": 1.0, "d2": 0.0}}
    first_run = {"q": {"d0": 0.0, "d1": 9.0, "d2": 1.0}}
    fit = fit_first_stage_weight(rerank_run, first_run, lambda run: float(max(run["q"], key=run["q"].get) == "d1"),
                                 grid=[0.0, 0.25, 0.5, 0.75])
    assert fit.weight == 0.5 and fit.metric == 1.0 and fit.by_weight[0.0] == 0.0
