"""Groups to distil the "fast" fallback from, without any teacher: the fallback learns the shipped default's
scores (``make_fallback.py targets`` writes them), so it needs only queries and candidates in the shapes it
will rerank, not the teachers' pool.

- MS MARCO dev-small queries x BM25 top ``--depth`` over the TREC DL 2020 + 2021 passage pools (their
  judgments never read; the 125 msmarco-dev-graded questions are left out, they calibrate): the BM25 top
  ``--top`` plus ``--sampled`` others of each list, as a reranker sees them;
- SciFact and NFCorpus train groups (judged positive + 7 BM25 negatives), so the fallback also follows the
  default on biomedical text.

Shuffled, so ``targets --limit N`` takes a mix of all three.

    python recipes/default_reranker_v2/fallback_groups.py --output ../runs/fast/groups.jsonl
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_pool import msmarco_groups  # noqa: E402
from make_examples import beir_groups, holdout_queries, write_groups  # noqa: E402
from teachers import ROOT  # noqa: E402


def sample_lists(groups: list[dict], top: int, sampled: int, seed: int) -> list[dict]:
    """Each group cut to its first ``top`` documents plus ``sampled`` drawn from the rest, in list order."""
    rng = random.Random(seed)
    out = []
    for g in groups:
        docs = g["documents"]
        rest = rng.sample(range(top, len(docs)), min(sampled, max(0, len(docs) - top)))
        keep = list(range(min(top, len(docs)))) + sorted(rest)
        out.append({"query": g["query"], "documents": [docs[i] for i in keep], "source": "msmarco-distill"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--top", type=int, default=4)
    parser.add_argument("--sampled", type=int, default=8)
    parser.add_argument("--nfcorpus-groups", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    holdout = holdout_queries(args.data)
    web = [g for g in msmarco_groups(args.data, args.depth, None, args.seed) if g["query"] not in holdout]
    groups = sample_lists(web, args.top, args.sampled, args.seed)
    groups += beir_groups(args.data, "scifact", None, args.seed)
    groups += beir_groups(args.data, "nfcorpus", args.nfcorpus_groups, args.seed)
    write_groups(groups, args.output, args.seed)


if __name__ == "__main__":
    main()
