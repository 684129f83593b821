"""Hold out some judged train queries of a BEIR folder, to fit ensemble and fusion weights on data the
cross-encoder was not trained on (never on the test split).

Writes a BEIR folder that links the original corpus and queries and has two new qrels splits:
``train_fit`` (train minus the held-out queries) and ``holdout``. The original folder is not touched.

    python recipes/domain_finetune/split_holdout.py --data ../shared/data/scifact --output /tmp/dom/scifact --holdout 100
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder with qrels/<split>.tsv.")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--holdout", type=int, default=100, help="Queries to hold out.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    lines = (args.data / "qrels" / f"{args.split}.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line for line in lines[1:] if line.strip()]
    qids = sorted({row.split("\t")[0] for row in rows})
    random.Random(args.seed).shuffle(qids)
    held = set(qids[:args.holdout])
    (args.output / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        link = args.output / name
        if not link.exists():
            link.symlink_to((args.data / name).resolve())
    for split, keep in (("train_fit", False), ("holdout", True)):
        chosen = [row for row in rows if (row.split("\t")[0] in held) == keep]
        (args.output / "qrels" / f"{split}.tsv").write_text("\n".join([header, *chosen]) + "\n", encoding="utf-8")
    print(f"{len(qids) - len(held)} training queries, {len(held)} held out -> {args.output}")


if __name__ == "__main__":
    main()
