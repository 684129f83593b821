"""FAQ matching (COVID FAQ) and duplicate-question pairs (Quora): crossrank against the bi-encoder baseline.

FAQ (``../shared/data/covid-faq``, test only: 108 CDC entries, 240 user questions):
- baseline: all-MiniLM-L6-v2 cosine between the user question and each FAQ question, accuracy@1;
- ``FaqMatcher`` (shortlist 20 by the same bi-encoder, the cross-encoder reads question + answer, or the
  question alone), accuracy@1 at threshold 0;
- "no answer": every user question is asked twice, once against the whole FAQ and once with its own
  entries removed (then no answer is right). At the threshold (0.5 by default, fixed beforehand, not
  tuned here): accuracy on answerable questions (answered with the right entry), the share of
  unanswerable ones left unanswered, and the precision of "no answer" (of the questions left unanswered,
  the share that had no answer).

Duplicates (``../shared/data/quora-duplicates/pairs``, test 2,000 labelled pairs): pair F1 with the
decision threshold chosen on dev (as the baseline's): bi-encoder cosine; the cross-encoder's probability
(mean of both orders), for each ``--pair-model`` (the shipped default, and e.g. a pair classifier trained
with ``crossrank train --pairs ../shared/data/quora-duplicates/pairs/train.tsv``).

    python benchmarks/faq_dedup_quality.py [--model default QUESTIONS_MODEL] [--pair-model default QUESTIONS_MODEL]
    python benchmarks/faq_dedup_quality.py --model default QUESTIONS_MODEL --dev-only  # choose before COVID

A model may be given as ``LABEL=FOLDER`` to name it in the tables. Each FAQ ranking's accuracy@1 is compared
with the baseline's question by question (questions won / lost, paired randomization test).

Writes benchmarks/results/faq_dedup_quality.json, .md and .png (accuracy bars; the threshold trade-off).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data"


def read_pairs(path: Path, graded: bool = False) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Pairs and their labels (0/1), or with ``graded`` their scores (STS-B's 0-5)."""
    from crossrank.training.datasets import read_labelled_pairs

    rows = read_labelled_pairs(path)
    values = np.array([r[3] for r in rows])
    return [(r[1], r[2]) for r in rows], values if graded else values.astype(int)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold with the best F1 (predict duplicate when score >= threshold), and that F1."""
    best = (0.0, -1.0)
    for t in np.unique(scores):
        f = f1(scores >= t, labels)
        if f > best[1]:
            best = (float(t), f)
    return best


def f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    tp = float(np.sum(predicted & (labels == 1)))
    fp, fn = float(np.sum(predicted & (labels == 0))), float(np.sum(~predicted & (labels == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def pair_cosines(bi, pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.sum(bi.encode([a for a, _ in pairs]) * bi.encode([b for _, b in pairs]), axis=1)


def both_orders(score, pairs: list[tuple[str, str]]) -> np.ndarray:
    """``score`` (pairs -> values) of each pair in both orders, averaged: a cross-encoder is not symmetric."""
    values = np.asarray(score(pairs + [(b, a) for a, b in pairs]), dtype=np.float64)
    return (values[:len(pairs)] + values[len(pairs):]) / 2


def question_hits(bi, questions: dict[str, str], entries: list, qrels: dict) -> dict[str, float]:
    """Per question, 1.0 if a bi-encoder's nearest FAQ question is a right entry (the baseline), else 0.0."""
    cos = bi.encode(list(questions.values())) @ bi.encode([e.title or e.text for e in entries]).T
    return {q: float(entries[int(np.argmax(row))].id in qrels[q]) for q, row in zip(questions, cos)}


def question_accuracy(bi, questions: dict[str, str], entries: list, qrels: dict) -> float:
    """Accuracy@1 of a bi-encoder matching each user question to the nearest FAQ question (the baseline)."""
    return float(np.mean(list(question_hits(bi, questions, entries, qrels).values())))


def faq_study(model_name: str, threshold: float, dense_model: str | None = None,
              dev_thresholds: dict[str, float] | None = None) -> dict:
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.data.formats import read_corpus, read_qrels, read_queries
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.evaluation.significance import paired_test
    from crossrank.pipeline.faq_match import FaqMatcher, order_candidates

    folder = DATA / "covid-faq"
    faq = read_corpus(folder / "corpus.jsonl")
    questions = read_queries(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    questions = {q: t for q, t in questions.items() if q in qrels}
    bi = BiEncoder()
    entries = list(faq.values())
    baseline_hits = question_hits(bi, questions, entries, qrels)
    out = {"questions": len(questions), "faq_entries": len(faq),
           "bi_encoder_accuracy@1": float(np.mean(list(baseline_hits.values()))),
           "threshold": threshold, "dense_model": dense_model or "all-MiniLM-L6-v2", "readings": {}}
    if dense_model:  # the matcher's shortlist and fused ranking use this bi-encoder; the baseline stays MiniLM
        bi = BiEncoder(dense_model)
        out["dense_model_accuracy@1"] = question_accuracy(bi, questions, entries, qrels)
    model = CrossEncoder(model_path(model_name))
    scored = {}
    for read in ("entry", "question"):  # each reading scored once; the fused order reuses its scores
        start = time.perf_counter()
        scored[read] = (FaqMatcher(faq, model, bi, shortlist=20, read=read).match(questions, threshold=0.0, top_k=20),
                        time.perf_counter() - start)
    for read, rank_by in (("entry", "cross-encoder"), ("question", "cross-encoder"), ("entry", "fused"),
                          ("question", "fused"), ("question", "bi-encoder")):
        results, seconds = scored[read]
        results = [replace(r, candidates=order_candidates(r.candidates, rank_by)) for r in results]
        hits = {r.query_id: float(r.candidates[0].id in qrels[r.query_id]) for r in results}
        accuracy = float(np.mean(list(hits.values())))
        test = paired_test(baseline_hits, hits)  # against the baseline, question by question
        key = f"{read}/{rank_by}"
        out["readings"][key] = {
            "accuracy@1": accuracy, "seconds": seconds,
            "wins_losses_vs_baseline": [sum(hits[q] > baseline_hits[q] for q in hits),
                                        sum(hits[q] < baseline_hits[q] for q in hits)],
            "p_vs_baseline": test.p_randomization,
            **no_answer_metrics(results, qrels, threshold),
            # the trade-off a support bot picks its threshold on (the plot)
            "curve": [{"threshold": float(t), **no_answer_metrics(results, qrels, float(t))} for t in THRESHOLDS]}
        if dev_thresholds and read == "question":  # chosen on Quora dev, which has questions but no answers
            t = dev_thresholds[rank_by]
            out["readings"][key]["at_dev_threshold"] = {"threshold": t, **no_answer_metrics(results, qrels, t)}
        print(json.dumps({key: {k: v for k, v in out["readings"][key].items() if k != "curve"}}), flush=True)
    return out


def no_answer_metrics(results: list, qrels: dict, threshold: float) -> dict:
    """At ``threshold``: the share of answerable questions answered with a right entry, the share of the same
    questions left unanswered once their own entries are removed (then no answer is right), and the precision
    of "no answer" over both."""
    answerable_right, unanswerable_null, nulls, nulls_right = 0, 0, 0, 0
    for r in results:
        gold = qrels[r.query_id]
        top = r.candidates[0]
        if top.probability >= threshold:
            answerable_right += top.id in gold
        else:
            nulls += 1
        rest = [c for c in r.candidates if c.id not in gold]  # the same question, its entries removed
        if not rest or rest[0].probability < threshold:
            unanswerable_null += 1
            nulls += 1
            nulls_right += 1
    n = len(results)
    return {"answerable_answered_right": answerable_right / n, "unanswerable_left_unanswered": unanswerable_null / n,
            "no_answer_precision": nulls_right / nulls if nulls else float("nan"), "no_answer_count": nulls}


def ranking_dev_study(model_name: str, max_queries: int, dense_model: str | None = None) -> dict:
    """Which FAQ ranking to use, chosen on held-out data that is not the COVID FAQ: Quora retrieval dev
    (a question against a list of questions; the first ``max_queries`` dev queries, the 5.7k-question
    corpus as the "FAQ"). Accuracy@1: the first-ranked entry is a labelled duplicate."""
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.data.formats import read_corpus, read_qrels, read_queries
    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.pipeline.faq_match import FaqMatcher, order_candidates

    folder = DATA / "quora-duplicates" / "retrieval"
    corpus = read_corpus(folder / "corpus.jsonl")
    qrels = read_qrels(folder / "qrels" / "dev.tsv").qrels
    queries = {q: t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels}
    queries = {q: queries[q] for q in sorted(queries)[:max_queries]}
    bi, model = BiEncoder(), CrossEncoder(model_path(model_name))
    out = {"queries": len(queries), "corpus": len(corpus), "accuracy@1": {}}
    entries = list(corpus.values())
    out["accuracy@1"]["bi-encoder"] = question_accuracy(bi, queries, entries, qrels)
    if dense_model:  # the matcher's shortlist and fused ranking use this bi-encoder
        bi = BiEncoder(dense_model)
        out["accuracy@1"]["dense-model"] = question_accuracy(bi, queries, entries, qrels)
    matcher = FaqMatcher(corpus, model, bi, shortlist=20, read="question")
    results = matcher.match(queries, threshold=0.0, top_k=20)
    out["accuracy@1"]["cross-encoder"] = float(np.mean([r.candidates[0].id in qrels[r.query_id] for r in results]))
    fused = [order_candidates(r.candidates, "fused")[0].id in qrels[r.query_id] for r in results]  # the same scores, fused
    out["accuracy@1"]["fused"] = float(np.mean(fused))
    # The "no answer" threshold, chosen here too: the one that best balances answering answerable questions
    # rightly and leaving unanswerable ones (the same questions, their duplicates removed) unanswered.
    out["threshold"] = {rank_by: balanced_threshold([replace(r, candidates=order_candidates(r.candidates, rank_by))
                                                     for r in results], qrels)
                        for rank_by in ("cross-encoder", "fused", "bi-encoder")}
    print(json.dumps({"ranking_dev": out}), flush=True)
    return out


THRESHOLDS = np.round(np.linspace(0.0, 1.0, 41), 3)


def balanced_threshold(results: list, qrels: dict) -> float:
    """The threshold (of 0, 0.025, ..., 1) with the best mean of answerable questions answered rightly and
    unanswerable ones left unanswered; ties go to the one nearest 0.5."""
    def balance(t: float) -> float:
        m = no_answer_metrics(results, qrels, t)
        return (m["answerable_answered_right"] + m["unanswerable_left_unanswered"]) / 2
    return float(max(THRESHOLDS, key=lambda t: (round(balance(float(t)), 9), -abs(t - 0.5))))


def sts_dev_study(models: list[str], dense_model: str | None = None) -> dict:
    """A second held-out signal for the FAQ model's choice, from another source than Quora: Spearman
    correlation with STS-B dev similarity scores (1,500 sentence pairs), for the bi-encoder's cosine and each
    model's score (mean of both orders)."""
    from scipy.stats import spearmanr

    from crossrank.cross_encoder import CrossEncoder
    from crossrank.model.bi_encoder import BiEncoder

    pairs, gold = read_pairs(DATA / "stsb" / "pairs" / "dev.tsv", graded=True)
    cos = pair_cosines(BiEncoder(), pairs)
    out = {"pairs": len(pairs), "spearman": {"bi-encoder": float(spearmanr(cos, gold).statistic)}}
    if dense_model:
        out["spearman"]["dense-model"] = float(spearmanr(pair_cosines(BiEncoder(dense_model), pairs), gold).statistic)
    for name in models:
        out["spearman"][name] = float(spearmanr(both_orders(CrossEncoder(model_path(name)).score, pairs), gold).statistic)
    print(json.dumps({"sts_dev": out}), flush=True)
    return out


def quora_study(pair_models: list[str]) -> dict:
    from crossrank.cross_encoder import CrossEncoder
    from crossrank.model.bi_encoder import BiEncoder

    folder = DATA / "quora-duplicates" / "pairs"
    dev_pairs, dev_labels = read_pairs(folder / "dev.tsv")
    test_pairs, test_labels = read_pairs(folder / "test.tsv")
    bi = BiEncoder()
    t, dev_f1 = best_threshold(pair_cosines(bi, dev_pairs), dev_labels)
    out = {"dev_pairs": len(dev_pairs), "test_pairs": len(test_pairs), "systems": {
        "bi-encoder cosine": {"threshold_from_dev": t, "dev_f1": dev_f1,
                              "test_f1": f1(pair_cosines(bi, test_pairs) >= t, test_labels)}}}
    for name in pair_models:
        model = CrossEncoder(model_path(name))

        def probabilities(pairs):
            return model.probability(model.score(pairs))

        start = time.perf_counter()
        dev, test = both_orders(probabilities, dev_pairs), both_orders(probabilities, test_pairs)
        t, dev_f1 = best_threshold(dev, dev_labels)
        out["systems"][f"cross-encoder {name}"] = {
            "threshold_from_dev": t, "dev_f1": dev_f1, "test_f1": f1(test >= t, test_labels),
            "test_f1_at_0.5": f1(test >= 0.5, test_labels), "seconds": time.perf_counter() - start}
        print(json.dumps({name: out["systems"][f"cross-encoder {name}"]}), flush=True)
    return out


def model_path(name: str) -> str:
    """``LABEL=FOLDER`` -> FOLDER (the label names it in the tables); a plain name or folder as it is."""
    return name.split("=", 1)[1] if "=" in name else name


def model_label(name: str) -> str:
    """How the tables name a model: the label of ``LABEL=FOLDER``, else the name itself."""
    return name.split("=", 1)[0] if "=" in name else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["default"], help="FAQ matching models")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--pair-model", nargs="+", default=["default"])
    parser.add_argument("--dev-queries", type=int, default=300, help="Quora retrieval dev queries for the ranking choice")
    parser.add_argument("--dev-only", action="store_true",
                        help="Only the held-out choice (Quora retrieval dev, STS-B dev): choose before looking at COVID")
    parser.add_argument("--dense-model", default=None,
                        help="The matcher's bi-encoder (shortlist, fused ranking); default all-MiniLM-L6-v2")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()

    from crossrank.evaluation.machine import machine_info

    results = {"machine": machine_info(), "models": args.model,
               "dense_model": args.dense_model,
               "ranking_dev": {m: ranking_dev_study(m, args.dev_queries, args.dense_model) for m in args.model},
               "sts_dev": sts_dev_study(args.model, args.dense_model)}
    if args.dev_only:
        print(json.dumps(results, indent=2))
        return
    results["faq"] = {m: faq_study(m, args.threshold, args.dense_model, results["ranking_dev"][m]["threshold"])
                      for m in args.model}
    results["quora"] = quora_study(args.pair_model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faq_dedup_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "faq_dedup_quality.md").write_text(markdown(results) + "\n")
    plot(results, args.out / "faq_dedup_quality.png")
    print(markdown(results))


def plot(results: dict, path: Path) -> None:
    """Left: COVID FAQ accuracy@1 of each system reading the FAQ question, the baseline as a line. Right: the
    "no answer" trade-off as the threshold moves (answerable questions answered rightly against unanswerable
    ones left unanswered), 0.5 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.8))
    labels, values = [], []
    for m in results["models"]:
        for key, row in results["faq"][m]["readings"].items():
            if key.startswith("question/"):
                labels.append(f"{model_label(m)}\n{key.split('/')[1]}")
                values.append(row["accuracy@1"])
    baseline = results["faq"][results["models"][0]]["bi_encoder_accuracy@1"]
    bars.barh(range(len(values)), values, color="tab:blue")
    bars.axvline(baseline, color="tab:red", linestyle="--", label=f"bi-encoder baseline {baseline:.3f}")
    bars.set_yticks(range(len(values)), labels, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0.6, 0.85)
    bars.set_xlabel("COVID FAQ accuracy@1 (reads the FAQ question)")
    bars.legend(loc="lower right", fontsize=8)
    for m in results["models"]:
        for key in ("question/cross-encoder", "question/fused"):
            row = results["faq"][m]["readings"].get(key)
            if not row or "curve" not in row:
                continue
            xs = [c["unanswerable_left_unanswered"] for c in row["curve"]]
            ys = [c["answerable_answered_right"] for c in row["curve"]]
            line, = curves.plot(xs, ys, label=f"{model_label(m)}, {key.split('/')[1]}")
            curves.plot(row["unanswerable_left_unanswered"], row["answerable_answered_right"], "o",
                        color=line.get_color())
    curves.set_xlabel("unanswerable questions left unanswered")
    curves.set_ylabel("answerable questions answered rightly")
    curves.set_title(f"threshold from 0 to 1 (dot: {results['faq'][results['models'][0]]['threshold']})", fontsize=9)
    curves.legend(fontsize=8)
    curves.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict) -> str:
    models, dev, sts, quora = results["models"], results["ranking_dev"], results["sts_dev"], results["quora"]
    first = dev[models[0]]
    lines = ["# FAQ matching and duplicate questions", "",
             "## Choosing on held-out data (not the COVID FAQ)", "",
             f"Quora retrieval dev: {first['queries']} questions against {first['corpus']}, reading the question, "
             f"accuracy@1; STS-B dev: Spearman with {sts['pairs']} graded pairs (score, mean of both orders).", "",
             "| model | ranking | Quora dev accuracy@1 | STS-B dev Spearman |", "|---|---|---|---|",
             f"| bi-encoder all-MiniLM-L6-v2 | cosine | {first['accuracy@1']['bi-encoder']:.3f} | "
             f"{sts['spearman']['bi-encoder']:.3f} |"]
    if "dense-model" in first["accuracy@1"]:
        lines.append(f"| bi-encoder {results['dense_model']} (the matcher's bi-encoder below) | cosine | "
                     f"{first['accuracy@1']['dense-model']:.3f} | {sts['spearman']['dense-model']:.3f} |")
    for m in models:
        lines.append(f"| `{model_label(m)}` | cross-encoder | {dev[m]['accuracy@1']['cross-encoder']:.3f} | "
                     f"{sts['spearman'][m]:.3f} |")
        lines.append(f"| `{model_label(m)}` | fused | {dev[m]['accuracy@1']['fused']:.3f} | - |")
    faq = results["faq"][models[0]]
    lines += ["", f"## COVID FAQ ({faq['questions']} user questions, {faq['faq_entries']} CDC entries; test only)", "",
              f"Threshold {faq['threshold']} (fixed beforehand). Each question is also asked with its own FAQ entries "
              "removed, where \"no answer\" is right.", "",
              "| system | accuracy@1 (always answers) | questions won / lost vs baseline, p | right answer at threshold "
              "| unanswerable left unanswered | precision of \"no answer\" |", "|---|---|---|---|---|---|",
              f"| bi-encoder all-MiniLM-L6-v2 vs FAQ questions (baseline) | {faq['bi_encoder_accuracy@1']:.3f} | - | - | - "
              "| - |"]
    if faq.get("dense_model_accuracy@1") is not None:
        lines.append(f"| bi-encoder {faq['dense_model']} vs FAQ questions (the matcher's bi-encoder here) | "
                     f"{faq['dense_model_accuracy@1']:.3f} | - | - | - | - |")
    for m in models:
        for key, row in results["faq"][m]["readings"].items():
            read, rank_by = key.split("/")
            label = "question + answer" if read == "entry" else "FAQ question only"
            paired = ("-" if "p_vs_baseline" not in row else  # results written before the paired test
                      f"{row['wins_losses_vs_baseline'][0]} / {row['wins_losses_vs_baseline'][1]}, "
                      f"p = {row['p_vs_baseline']:.2f}")
            lines.append(f"| crossrank match `{model_label(m)}` (reads {label}; ranked by {rank_by}) | {row['accuracy@1']:.3f} | "
                         f"{paired} | {row['answerable_answered_right']:.3f} | {row['unanswerable_left_unanswered']:.3f} | "
                         f"{row['no_answer_precision']:.3f} |")
    dev_rows = [(m, key, row["at_dev_threshold"]) for m in models for key, row in results["faq"][m]["readings"].items()
                if "at_dev_threshold" in row]
    if dev_rows:
        lines += ["", "At the threshold chosen on Quora retrieval dev (the best mean of answerable questions answered "
                  "rightly and unanswerable ones left unanswered there; reading the FAQ question):", "",
                  "| system | threshold (dev) | right answer at threshold | unanswerable left unanswered | "
                  "precision of \"no answer\" |", "|---|---|---|---|---|"]
        for m, key, row in dev_rows:
            lines.append(f"| crossrank match `{model_label(m)}` (ranked by {key.split('/')[1]}) | {row['threshold']:.3f} | "
                         f"{row['answerable_answered_right']:.3f} | {row['unanswerable_left_unanswered']:.3f} | "
                         f"{row['no_answer_precision']:.3f} |")
    lines += ["", f"## Quora duplicate pairs (test {quora['test_pairs']} pairs; threshold chosen on dev "
                  f"{quora['dev_pairs']})", "", "| system | threshold (dev) | dev F1 | test F1 |", "|---|---|---|---|"]
    for name, row in quora["systems"].items():
        lines.append(f"| {model_label(name)} | {row['threshold_from_dev']:.3f} | {row['dev_f1']:.3f} | {row['test_f1']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
