"""Platt-calibrate the question-similarity cross-encoder on Quora dev pairs, so that its probability means
P(same question) and a threshold such as ``match --threshold 0.5`` means what it says.

Listwise distillation fixes only the order of a model's scores, not where they sit; a sigmoid of the raw
score is no probability. Quora dev (2,000 labelled pairs, both orders, half duplicates) is held out of
training; half its pairs fit the calibration and the other half measure it (ECE before and after).

    python recipes/question_similarity/calibrate.py --model ../runs/questions/final
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from build_groups import DATA


def main() -> None:
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.ranking.calibration import Calibration, expected_calibration_error, fit_calibration
    from crossrank.training.datasets import read_labelled_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Model folder; calibration.json is written into it.")
    parser.add_argument("--method", default="platt")
    args = parser.parse_args()

    rows = read_labelled_pairs(DATA / "quora-duplicates" / "pairs" / "dev.tsv")
    pairs = [(r[1], r[2]) for r in rows] + [(r[2], r[1]) for r in rows]
    labels = np.array([int(r[3]) for r in rows] * 2)
    model = CrossEncoder(str(args.model))
    model.calibration = None  # fit on raw scores
    scores = np.asarray(model.score(pairs), dtype=np.float64)
    half = len(rows) // 2  # pairs (in both orders) split by row: fit on the first half, measure on the second
    fit_rows = np.r_[0:half, len(rows):len(rows) + half]
    held = np.setdiff1d(np.arange(len(pairs)), fit_rows)
    raw = Calibration("temperature").probability(scores)  # sigmoid of the raw score
    calibration = fit_calibration(scores[fit_rows], labels[fit_rows], args.method)
    report = {"pairs": len(pairs), "method": args.method,
              "ece_before": expected_calibration_error(raw[held], labels[held]),
              "ece_after": expected_calibration_error(calibration.probability(scores[held]), labels[held])}
    final = fit_calibration(scores, labels, args.method)  # the one written: fitted on all dev pairs
    final.save(args.model)
    report.update(a=final.a, b=final.b)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
