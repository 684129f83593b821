"""Training groups for a question-similarity cross-encoder: listwise distillation from all-mpnet-base-v2.

Matching a user question against FAQ questions (or finding duplicates) asks "is this the same question?",
not "does this passage answer it?", which is what the shipped reranker learnt. all-mpnet-base-v2 was trained
on a billion sentence pairs, duplicate questions among them, and ranks paraphrases far better than
all-MiniLM-L6-v2; a 6-layer cross-encoder distilled from it reads both questions together at MiniLM cost.

The pool: questions from Quora train pairs (de-tokenised: the release is CoreNLP-tokenised with ``-LRB-``
codes, and users do not type like that), MS MARCO dev-small queries, WikiQA train questions and STS-B train
sentences. Each anchor question gets one group: its nearest neighbours by the teacher (the hard part:
same topic, maybe not the same question), a few from further down and one at random; labels are the
teacher's cosines x ``--scale`` (the listwise loss takes their softmax as the target). The Quora
duplicate of an anchor, when labelled, joins its group with the teacher's cosine like any other text.
Nothing from the COVID FAQ, Quora dev/test or STS-B dev/test is read.

    python recipes/question_similarity/build_groups.py --teacher ../runs/teachers/all-mpnet-base-v2 \
        --out ../runs/questions/groups.jsonl --anchors 8000
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from crossrank.data.formats import read_qrels
from crossrank.training.datasets import read_labelled_pairs

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "recipes" / "default_reranker_v2"))

PTB_CODES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}",
             "``": '"', "''": '"'}


def detokenise(text: str) -> str:
    """Undo CoreNLP tokenisation well enough to read like typed text: bracket codes, quotes, the space
    before punctuation and clitics (``do n't`` -> ``don't``, ``States ' laws`` -> ``States' laws``)."""
    text = text.replace("`` ", '"').replace(" ''", '"')
    for code, char in PTB_CODES.items():
        text = text.replace(code, char)
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text, flags=re.IGNORECASE)
    text = re.sub(r" ' ", "' ", text)
    text = re.sub(r" ([?.!,:;%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{$]) ", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def read_pool() -> tuple[list[str], list[str], dict[str, set[str]]]:
    """(texts, source of each, labelled Quora duplicates by text)."""
    texts: dict[str, str] = {}  # normalised -> text (first spelling wins)
    sources: dict[str, str] = {}
    duplicates: dict[str, set[str]] = {}

    def add(text: str, source: str) -> str:
        text = text.strip()
        key = text.lower()
        if text and key not in texts:
            texts[key], sources[key] = text, source
        return texts.get(key, text)

    for _, first, second, label in read_labelled_pairs(DATA / "quora-duplicates" / "pairs" / "train.tsv"):
        a, b = add(detokenise(first), "quora"), add(detokenise(second), "quora")
        if label == 1 and a.lower() != b.lower():
            duplicates.setdefault(a, set()).add(b)
            duplicates.setdefault(b, set()).add(a)
    for line in open(DATA / "msmarco-dev-small" / "queries.jsonl", encoding="utf-8"):
        add(json.loads(line)["text"], "msmarco")
    wikiqa_train = read_qrels(DATA / "wikiqa" / "qrels" / "train.tsv").qrels
    for line in open(DATA / "wikiqa" / "queries.jsonl", encoding="utf-8"):
        obj = json.loads(line)
        if obj["_id"] in wikiqa_train:
            add(obj["text"], "wikiqa")
    for _, first, second, _ in read_labelled_pairs(DATA / "stsb" / "pairs" / "train.tsv"):
        add(first, "stsb")
        add(second, "stsb")
    keys = list(texts)
    return [texts[k] for k in keys], [sources[k] for k in keys], duplicates


def anchor_groups(texts: list[str], vectors: np.ndarray, anchors: list[int], duplicates: dict[str, set[str]],
                  near: int, further: int, scale: float, rng: random.Random, depth: int = 100):
    """One listwise group per anchor: its ``near`` nearest texts by the teacher (never itself), ``further``
    sampled from ranks near+1 .. ``depth``, one random text, and a labelled duplicate when there is one;
    labels = ``scale`` x the teacher's cosine. ``vectors`` are L2-normalised."""
    index = {t: i for i, t in enumerate(texts)}
    depth = min(depth, len(texts) - 1)
    for block in range(0, len(anchors), 512):
        rows = anchors[block:block + 512]
        sims = vectors[rows] @ vectors.T
        for row, anchor in zip(sims, rows):
            row[anchor] = -2.0  # never the anchor itself
            top = np.argpartition(-row, depth)[:depth + 1]  # the depth + 1 nearest, the anchor last if among them
            order = [int(i) for i in top[np.argsort(-row[top], kind="stable")] if i != anchor]
            rest = order[near:depth]
            chosen = order[:near] + rng.sample(rest, min(further, len(rest)))
            chosen.append(rng.randrange(len(texts)))
            chosen += [index[d] for d in sorted(duplicates.get(texts[anchor], ())) if d in index][:1]
            chosen = [c for c in dict.fromkeys(chosen) if c != anchor]
            yield {"query": texts[anchor], "documents": [texts[c] for c in chosen],
                   "labels": [round(float(vectors[anchor] @ vectors[c]) * scale, 4) for c in chosen]}


def main() -> None:
    from teachers import BiEncoderTeacher, TeacherSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True, help="all-mpnet-base-v2 folder (assemble_mpnet.sh).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--anchors", type=int, default=8000, help="Groups: anchors sampled from the questions.")
    parser.add_argument("--near", type=int, default=5, help="Nearest neighbours per group.")
    parser.add_argument("--further", type=int, default=2, help="Neighbours sampled from ranks near+1 .. 100.")
    parser.add_argument("--scale", type=float, default=20.0, help="Label = scale x teacher cosine.")
    parser.add_argument("--balance", action="store_true",
                        help="Anchors drawn equally from each source (STS-B sentences included), not mostly Quora.")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "question-similarity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    texts, sources, duplicates = read_pool()
    counts = {s: sources.count(s) for s in sorted(set(sources))}
    print(f"pool: {len(texts)} texts {counts}; {len(duplicates)} with a labelled duplicate", file=sys.stderr)
    spec = TeacherSpec("mpnet", str(args.teacher.resolve()), max_length=128)
    teacher = BiEncoderTeacher(spec, args.teacher.parent, args.cache, batch_size=128)
    start = time.perf_counter()
    vectors = teacher.embed(texts, "")
    print(f"embedded in {time.perf_counter() - start:.0f} s", file=sys.stderr)

    if args.balance:
        names = sorted(set(sources))
        anchors = []
        for name in names:
            members = [i for i, s in enumerate(sources) if s == name]
            anchors += rng.sample(members, min(args.anchors // len(names), len(members)))
        rng.shuffle(anchors)
    else:
        questions = [i for i, s in enumerate(sources) if s != "stsb"]
        anchors = rng.sample(questions, min(args.anchors, len(questions)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".tmp")
    with open(partial, "w", encoding="utf-8") as out:
        for group in anchor_groups(texts, vectors, anchors, duplicates, args.near, args.further, args.scale, rng):
            out.write(json.dumps(group) + "\n")
    partial.replace(args.out)
    print(json.dumps({"groups": len(anchors), "pool": len(texts), "sources": counts, "out": str(args.out)}))


if __name__ == "__main__":
    main()
