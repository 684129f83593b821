"""Inverse-cloze training groups over the TREC DL 2020 passage pool: a tried stage 3, not shipped.

Synthetic queries give the pool passages a query that one of them certainly answers (MS MARCO dev-small
queries mostly have no answer in the pool). Inverse cloze (Lee et al. 2019, "Latent Retrieval for Weakly
Supervised Open Domain QA"): one sentence of a passage (4-20 words) is the query, the rest of the passage
is its positive (the whole passage in 10% of groups, as in the paper). Negatives: the union of the
bi-encoder's and BM25's top 20 for that sentence, the teacher's top 3 + 12 sampled, labelled with the
bi-encoder's cosine / 0.05; the positive gets the group's best cosine + 0.1. Mixed with a sample of the
stage-2 groups so the model keeps what it learned.

Measured (model card, "What was tried"): it lowered the cross-encoder alone on DL 2020 and left the
shipped ensemble where it was, so the shipped default does not use it.

    python recipes/default_reranker/inverse_cloze.py --stage2 /tmp/crossrank-default/train2.jsonl \\
        --output /tmp/crossrank-default/train3.jsonl --groups 3000 --keep 2000
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np

from crossrank.data.formats import read_corpus
from crossrank.model.bi_encoder import BiEncoder
from crossrank.training.datasets import bm25_candidates

from build_data import TEMPERATURE  # the stage-1/2 distillation temperature (this folder, run as a script)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def cloze_examples(texts: list[str], count: int, rng: random.Random) -> list[tuple[int, str, str]]:
    """(passage index, query sentence, positive text) for ``count`` passages with at least 3 sentences."""
    examples = []
    for i in rng.sample(range(len(texts)), len(texts)):
        sentences = [s.strip() for s in SENTENCE_END.split(texts[i]) if s.strip()]
        usable = [k for k, s in enumerate(sentences) if 4 <= len(s.split()) <= 20]
        if len(sentences) >= 3 and usable:
            k = rng.choice(usable)
            rest = texts[i] if rng.random() < 0.1 else " ".join(s for j, s in enumerate(sentences) if j != k)
            examples.append((i, sentences[k].rstrip(".!?"), rest))
        if len(examples) == count:
            break
    return examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--stage2", type=Path, required=True, help="build_data.py output of stage 2.")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--groups", type=int, default=3000, help="Inverse-cloze groups.")
    parser.add_argument("--keep", type=int, default=2000, help="Stage-2 groups mixed in.")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus_path = args.data / "trec-dl-2020" / "corpus.jsonl"
    corpus = read_corpus(corpus_path)
    texts = [doc.full_text for doc in corpus.values()]
    position = {doc_id: i for i, doc_id in enumerate(corpus)}
    examples = cloze_examples(texts, args.groups, rng)
    encoder = BiEncoder()
    passages = encoder.encode(texts, progress=True)
    queries = encoder.encode([e[1] for e in examples])
    positives = encoder.encode([e[2] for e in examples])
    lexical = bm25_candidates(corpus_path, {str(n): e[1] for n, e in enumerate(examples)}, 20)
    groups = []
    for n, (source, query, positive) in enumerate(examples):
        cos = passages @ queries[n]
        dense = np.argpartition(-cos, 20)[:20]
        candidates = (set(dense.tolist()) | {position[d] for d in lexical.get(str(n), [])}) - {source}
        order = sorted((c for c in sorted(candidates) if texts[c] != texts[source]), key=lambda c: -cos[c])
        negatives = order[:3] + rng.sample(order[3:], min(12, len(order) - 3))
        best = max(float(cos[negatives].max()), float(positives[n] @ queries[n]))
        groups.append({"query": query, "documents": [positive] + [texts[c] for c in negatives],
                       "labels": [round((best + 0.1) / TEMPERATURE, 4)]
                       + [round(float(cos[c]) / TEMPERATURE, 4) for c in negatives],
                       "source": "inverse-cloze"})
    with open(args.stage2, encoding="utf-8") as stage2:
        groups += rng.sample([json.loads(line) for line in stage2], args.keep)
    rng.shuffle(groups)
    tmp = args.output.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for group in groups:
            out.write(json.dumps(group) + "\n")
    tmp.replace(args.output)
    print(json.dumps({"groups": len(groups), "pairs": sum(len(g["documents"]) for g in groups)}))


if __name__ == "__main__":
    main()
