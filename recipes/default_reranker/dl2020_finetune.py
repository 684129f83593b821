"""Fine-tune the distilled reranker on the TREC DL 2020 judgments, with a 2-fold cross-validated estimate.

The only real web-relevance labels in ../shared/data are the 11k graded TREC DL 2020 judgments (54 queries).
Training on them means DL 2020 can no longer test the shipped model, so its quality is estimated by 2-fold
cross-validation: train on half the queries, rerank the BM25 top-100 of the other half, swap; each query is
scored by the model that never saw it. ``--final`` then trains on all 54 queries (the shipped model).

Groups: each passage judged >= 2 ("highly relevant" / "perfectly relevant" in TREC DL) against 7 passages
judged 0 for the same query; listwise softmax cross-entropy.

    python recipes/default_reranker/dl2020_finetune.py --base /tmp/default-ce/final --work /tmp/dl-ft [--final]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "trec-dl-2020"


def groups_for(queries, qrels, texts, qids, negatives: int, seed: int):
    from crossrank.training.negatives import TrainingGroup

    rng = random.Random(seed)
    groups = []
    for qid in qids:
        judged = qrels[qid]
        pool = [d for d, g in judged.items() if g == 0 and d in texts]
        for doc, grade in judged.items():
            if grade >= 2 and doc in texts and pool:
                negs = rng.sample(pool, min(negatives, len(pool)))
                groups.append(TrainingGroup(qid, queries[qid], [texts[doc]] + [texts[d] for d in negs],
                                            [1.0] + [0.0] * len(negs)))
    return groups


def train(base: str, groups, output: Path, args):
    from crossrank.training.trainer import TrainConfig, Trainer

    config = TrainConfig(loss="listwise", epochs=args.epochs, learning_rate=args.lr, groups_per_batch=8,
                         max_length=args.max_length, seed=args.seed)
    result = Trainer(base, output, config).train(groups)
    print(json.dumps({"output": str(output), "groups": len(groups), "steps": result.steps,
                      "seconds": round(result.seconds), "loss_first": result.losses[0],
                      "loss_last": float(np.mean(result.losses[-10:]))}), flush=True)
    return output / "final"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="The distilled cross-encoder to start from.")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--final", action="store_true", help="Skip cross-validation; train on all queries.")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.data.formats import ranked, read_corpus, read_qrels, read_queries, read_run
    from crossrank.evaluation.metrics import evaluate
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

    qrels = read_qrels(DATA / "qrels" / "test.tsv").qrels
    queries = {q: t for q, t in read_queries(DATA / "queries.jsonl").items() if q in qrels}
    texts = {d.id: d.full_text for d in read_corpus(DATA / "corpus.jsonl").values()}
    qids = sorted(queries)
    if args.final:
        train(args.base, groups_for(queries, qrels, texts, qids, args.negatives, args.seed), args.work / "all", args)
        return

    run = read_run(DATA / "runs" / "bm25.top100.tsv").run
    folds = [qids[0::2], qids[1::2]]
    bi = BiEncoderReranker(BiEncoder())
    per_query = {"bm25": {}, "bi-encoder": {}, "base": {}, "fine-tuned": {},
                 "base + bi-encoder": {}, "fine-tuned + bi-encoder": {}}
    z = lambda x: (x - x.mean()) / x.std()
    for index, held_out in enumerate(folds):
        trained = train(args.base, groups_for(queries, qrels, texts, folds[1 - index], args.negatives, args.seed),
                        args.work / f"fold{index}", args)
        lists = {q: ranked(run[q])[:100] for q in held_out}
        pairs = [(queries[q], texts[d]) for q, docs in lists.items() for d in docs]
        scores = {"bm25": np.array([run[q][d] for q, docs in lists.items() for d in docs]),
                  "bi-encoder": bi.score(pairs).astype(np.float64),
                  "base": CrossEncoder(args.base, max_length=args.max_length, use_ensemble=False).score(pairs).astype(np.float64),
                  "fine-tuned": CrossEncoder(trained, max_length=args.max_length, use_ensemble=False).score(pairs).astype(np.float64)}
        scores["base + bi-encoder"] = 0.5 * z(scores["base"]) + 0.5 * z(scores["bi-encoder"])
        scores["fine-tuned + bi-encoder"] = 0.5 * z(scores["fine-tuned"]) + 0.5 * z(scores["bi-encoder"])
        for name, values in scores.items():
            run_fold, start = {}, 0
            for q, docs in lists.items():
                run_fold[q] = {d: float(s) for d, s in zip(docs, values[start:start + len(docs)])}
                start += len(docs)
            fold_qrels = {q: qrels[q] for q in held_out}
            per_query[name].update(evaluate(fold_qrels, run_fold, ["ndcg@10"]).per_query["ndcg@10"])
    summary = {name: float(np.mean(list(values.values()))) for name, values in per_query.items()}
    print(json.dumps({"cross_validated_ndcg@10": summary, "queries": len(per_query["bm25"])}), flush=True)
    (args.work / "cv.json").write_text(json.dumps({"summary": summary, "per_query": per_query}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
