"""Calibration of the default model's probability: fit a new Platt map and check it in and out of domain.

Why: the shipped ``calibration.json`` of the default ensemble (a=1.824, b=-6.028, fitted on 27 TREC DL 2020
queries x their BM25 top-100, relevant = grade >= 2) is too pessimistic: obvious right answers get 0.06-0.62,
so a user with a 0.5 cut-off loses most of them. This script

1. fits a Platt map p = sigmoid(a * combined + b) on the UNCALIBRATED ensemble combination (the members'
   raw scores through ``EnsembleScorer.combine_scores``) with the 125 MS MARCO dev queries x their BM25
   top-20 of ``msmarco-dev-graded`` (relevant = TREC grade >= 2, i.e. a mean assessor grade >= 3 of 5, the
   scale's midpoint; the 22 ungraded pairs are left out), reports its held-out quality by 2-fold
   cross-fitting over queries (ECE with 15 bins, Brier) next to the old map, and fits the map to ship on
   all 125 queries;
2. measures the old and new maps out of domain without any fitting: COVID FAQ (every user question
   against all 108 FAQ entries; and the question-vs-question pairs) and TREC DL 2020 BM25 top-100;
3. prints old and new probabilities of a few obvious pairs;
4. draws reliability diagrams (benchmarks/results/calibration_reliability.png);
5. writes benchmarks/results/calibration_reliability.json and .md.

It also checks a grade >= 1 threshold and an isotonic map (cross-fitted) to judge whether Platt on the
combination is adequate. Nothing is tuned on DL 2020 or COVID FAQ.

Members' raw scores are cached in ``--cache`` (an .npz per chunk of pairs), so re-running is instant; the
first run scores 14,841 pairs (about 27 min at 6-10 pairs/s on 2 busy CPU cores). COVID FAQ uses a seeded
sample of 60 of the 240 user questions by default (``--covid-queries 0`` for all: 25,920 pairs).

    python benchmarks/calibration_reliability.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
NAME = "calibration_reliability"

OLD = {"a": 1.8240426451642007, "b": -6.028267143748563,
       "source": "default_model/calibration.json before this change: 27 TREC DL 2020 queries, BM25 top-100, "
                 "grade >= 2"}
ECE_BINS = 15
DIAGRAM_BINS = 10
CHUNK = 1000

OBVIOUS = [
    ("obvious", "What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("obvious", "what is insulin",
     "Insulin is a peptide hormone produced by beta cells of the pancreatic islets; it regulates the metabolism "
     "of carbohydrates, fats and protein."),
    ("obvious", "who was the first man on the moon",
     "Neil Armstrong was the first person to walk on the Moon, on 20 July 1969."),
    ("related, does not answer", "What is the capital of France?",
     "France is a country in Western Europe; its wines and cheeses are famous around the world."),
    ("irrelevant", "What is the capital of France?",
     "Insulin is a peptide hormone produced by beta cells of the pancreatic islets; it regulates the metabolism "
     "of carbohydrates, fats and protein."),
    ("irrelevant", "how do I bake sourdough bread",
     "Neil Armstrong was the first person to walk on the Moon, on 20 July 1969."),
]


# ----------------------------------------------------------------------------------------------- scoring

class MemberScores:
    """Raw scores of each ensemble member, cached by chunk under ``cache``."""

    def __init__(self, ce, cache: Path):
        from crossrank.ranking.ensemble import EnsembleConfig

        self.ce = ce
        self.ens = ce.ensemble
        if self.ens is None:
            raise SystemExit(f"{ce.model_dir} has no ensemble.json: this script calibrates the ensemble combination")
        weights = Path(ce.model_dir) / "model.safetensors"
        stat = weights.stat() if weights.is_file() else None
        config = EnsembleConfig.load(ce.model_dir)
        members = [[m.kind, m.path] for m in config.members]
        # Member scores depend on the members' weights and the pairs, not on the ensemble's weights or
        # z-score stats (applied afresh by combine_scores on every run).
        self.model_key = json.dumps([str(ce.model_dir), stat and [stat.st_size, stat.st_mtime_ns], members,
                                     ce.max_length])
        self.cache = cache

    def __call__(self, pairs: list[tuple[str, str]], label: str) -> list[np.ndarray]:
        digest = hashlib.sha1(json.dumps([self.model_key, pairs]).encode()).hexdigest()[:16]
        parts: list[list[np.ndarray]] = []
        start, computed = time.perf_counter(), 0
        for i in range(0, len(pairs), CHUNK):
            path = self.cache / f"{label}-{digest}-{i // CHUNK:04d}.npz"
            if path.is_file():
                with np.load(path) as saved:
                    parts.append([saved[f"m{k}"] for k in range(len(self.ens.members))])
                continue
            chunk = pairs[i:i + CHUNK]
            scores = [np.asarray(m.score(chunk), dtype=np.float64) for m in self.ens.members]
            self.cache.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, **{f"m{k}": s for k, s in enumerate(scores)})
            tmp.replace(path)
            parts.append(scores)
            computed += len(chunk)
            rate = computed / (time.perf_counter() - start)
            print(f"  {label}: {min(i + CHUNK, len(pairs))}/{len(pairs)} pairs ({rate:.0f} pairs/s)",
                  file=sys.stderr, flush=True)
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self.ens.members))]

    def combined(self, pairs, label) -> tuple[np.ndarray, list[np.ndarray]]:
        members = self(pairs, label)
        return np.asarray(self.ens.combine_scores(members), dtype=np.float64), members


# ----------------------------------------------------------------------------------------------- data

def load_msmarco_graded(folder: Path):
    """(pairs, grades, query ids) of the judged BM25 top-20 pairs; ungraded pairs left out."""
    from crossrank.data.formats import ranked, read_corpus, read_qrels, read_queries, read_run

    queries = read_queries(folder / "queries.jsonl")
    corpus = read_corpus(folder / "corpus.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    run = read_run(folder / "runs" / "bm25.top20.tsv").run
    pairs, grades, qids, ungraded = [], [], [], 0
    for q in sorted(run):
        for d in ranked(run[q]):
            if d not in qrels.get(q, {}):
                ungraded += 1
                continue
            pairs.append((queries[q], corpus[d].full_text))
            grades.append(qrels[q][d])
            qids.append(q)
    return pairs, np.array(grades), np.array(qids), ungraded


def load_covid_retrieval(folder: Path, max_queries: int, seed: int):
    """Every user question against all FAQ entries (title = FAQ question, text = answer), label 1 per qrels."""
    from crossrank.data.formats import read_corpus, read_qrels, read_queries

    queries = read_queries(folder / "queries.jsonl")
    corpus = read_corpus(folder / "corpus.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    qids = sorted(q for q in queries if q in qrels)
    if max_queries and max_queries < len(qids):
        qids = sorted(np.random.default_rng(seed).choice(qids, max_queries, replace=False).tolist())
    docs = sorted(corpus)
    # full_text = title + " " + text; the WordPiece tokenizers of both members treat " " and "\n" alike.
    pairs = [(queries[q], corpus[d].full_text) for q in qids for d in docs]
    labels = np.array([1 if qrels[q].get(d, 0) > 0 else 0 for q in qids for d in docs])
    return pairs, labels, np.repeat(np.array(qids), len(docs))


def load_covid_pairs(folder: Path):
    """pairs/test.tsv: (user question, FAQ question), label 1 = same question. Tab-separated, no quoting."""
    pairs, labels = [], []
    with open(folder / "pairs" / "test.tsv", encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        assert header == ["id", "q1", "q2", "label"], header
        for line in handle:
            _, q1, q2, label = line.rstrip("\n").split("\t")
            pairs.append((q2, q1))
            labels.append(int(label))
    return pairs, np.array(labels)


def load_dl2020(folder: Path, max_queries: int, seed: int):
    """BM25 top-100 of the 54 judged queries; grade as judged, unjudged = 0."""
    from crossrank.data.formats import ranked, read_corpus, read_qrels, read_queries, read_run

    queries = read_queries(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv").qrels
    run = read_run(folder / "runs" / "bm25.top100.tsv").run
    qids = sorted(q for q in run if q in qrels and q in queries)
    if max_queries and max_queries < len(qids):
        qids = sorted(np.random.default_rng(seed).choice(qids, max_queries, replace=False).tolist())
    wanted = {d for q in qids for d in run[q]}
    corpus = read_corpus(folder / "corpus.jsonl", ids=wanted)
    pairs, grades, missing = [], [], 0
    for q in qids:
        for d in ranked(run[q])[:100]:
            if d not in corpus:
                missing += 1
                continue
            pairs.append((queries[q], corpus[d].full_text))
            grades.append(qrels[q].get(d, 0))
    return pairs, np.array(grades), len(qids), missing


# ----------------------------------------------------------------------------------------------- metrics

def platt(a: float, b: float, scores) -> np.ndarray:
    from crossrank.ranking.calibration import Calibration

    return Calibration("platt", a=a, b=b).probability(scores)


def metrics(p: np.ndarray, y: np.ndarray) -> dict:
    from crossrank.ranking.calibration import brier_score, expected_calibration_error

    y = y.astype(np.float64)
    predicted = p >= 0.5
    eps = 1e-12
    return {
        "pairs": int(len(y)),
        "base_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
        "ece": expected_calibration_error(p, y, ECE_BINS),
        "brier": brier_score(p, y),
        "log_loss": float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))),
        "mean_p_relevant": float(p[y == 1].mean()) if (y == 1).any() else None,
        "mean_p_nonrelevant": float(p[y == 0].mean()) if (y == 0).any() else None,
        "recall_at_0.5": float(predicted[y == 1].mean()) if (y == 1).any() else None,
        "precision_at_0.5": float(y[predicted].mean()) if predicted.any() else None,
        "share_at_or_above_0.5": float(predicted.mean()),
    }


def reliability_bins(p: np.ndarray, y: np.ndarray, bins: int = DIAGRAM_BINS) -> list[dict]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for k in range(bins):
        mask = which == k
        out.append({"low": float(edges[k]), "high": float(edges[k + 1]), "count": int(mask.sum()),
                    "mean_probability": float(p[mask].mean()) if mask.any() else None,
                    "observed_rate": float(y[mask].mean()) if mask.any() else None})
    return out


def cross_fit(scores: np.ndarray, labels: np.ndarray, qids: np.ndarray, seed: int, method: str = "platt"):
    """2-fold over queries (seeded split): each half's probabilities from the map fitted on the other half."""
    from crossrank.ranking.calibration import fit_calibration

    unique = np.array(sorted(set(qids.tolist())))
    perm = np.random.default_rng(seed).permutation(len(unique))
    fold_a = set(unique[perm[: len(unique) // 2]].tolist())
    in_a = np.array([q in fold_a for q in qids])
    p = np.empty(len(scores))
    fits = []
    for test in (in_a, ~in_a):
        cal = fit_calibration(scores[~test], labels[~test], method)
        p[test] = cal.probability(scores[test])
        fits.append({"a": cal.a, "b": cal.b} if method == "platt" else None)
    return p, fits


def summarise(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


# ----------------------------------------------------------------------------------------------- figure

def draw(panels: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"old": ("#d62728", "s", "old (a=1.824, b=-6.028)"), "new": ("#1f77b4", "o", "new (fitted here)")}
    columns = 2 if len(panels) > 1 else 1
    rows = (len(panels) + columns - 1) // columns
    height = 5.9 * rows + 1.2
    fig = plt.figure(figsize=(5.4 * columns, height))
    outer = fig.add_gridspec(rows, columns, left=0.08, right=0.98, bottom=0.05, top=1 - 1.35 / height,
                             hspace=0.32, wspace=0.2)
    first = None
    for i, panel in enumerate(panels):
        col = i % columns
        inner = outer[i // columns, col].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.07)
        top = fig.add_subplot(inner[0])
        bottom = fig.add_subplot(inner[1], sharex=top)
        top.tick_params(labelbottom=False)
        first = first or top
        top.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfect calibration")
        edges = np.linspace(0, 1, DIAGRAM_BINS + 1)
        width = (edges[1] - edges[0]) / 2.4
        for j, (key, (color, marker, label)) in enumerate(styles.items()):
            bins = panel["bins"][key]
            xs = [b["mean_probability"] for b in bins if b["count"]]
            ys = [b["observed_rate"] for b in bins if b["count"]]
            ns = np.array([b["count"] for b in bins if b["count"]])
            top.plot(xs, ys, color=color, lw=1.2, alpha=0.8)
            top.scatter(xs, ys, s=12 + 220 * np.sqrt(ns / panel["pairs"]), color=color, marker=marker,
                        alpha=0.75, edgecolor="white", linewidth=0.5, label=label, zorder=3)
            counts = [b["count"] for b in bins]
            bottom.bar(edges[:-1] + (j + 0.5) * width + 0.01, counts, width=width, color=color, alpha=0.8,
                       align="edge")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        eces = panel["metrics"]
        top.set_title(f"{panel['title']}\n{panel['pairs']:,} pairs, base rate {panel['base_rate']:.3f}; "
                      f"ECE old {eces['old']['ece']:.3f}, new {eces['new']['ece']:.3f}", fontsize=9)
        if col == 0:
            top.set_ylabel("observed share relevant", fontsize=8.5)
        top.tick_params(labelsize=8)
        bottom.set_yscale("log")
        bottom.set_xlim(0, 1)
        bottom.set_xlabel("predicted probability (10 bins)", fontsize=8.5)
        if col == 0:
            bottom.set_ylabel("pairs per bin (log)", fontsize=8.5)
        bottom.tick_params(labelsize=8)
    fig.suptitle("Default ensemble: reliability of P(relevant), old vs new Platt map; "
                 "x = mean predicted probability per bin, marker area ~ sqrt(pairs in bin)", fontsize=10,
                 y=1 - 0.15 / fig.get_figheight())
    handles, labels = first.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=8.5, markerscale=0.6, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.35 / height))
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- report

def fmt(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_markdown(report: dict, path: Path) -> None:
    new = report["recommended"]
    fit = report["msmarco_dev_graded"]
    cf = fit["cross_fit_seeds"]
    lines = [
        "# Calibration of the default model's probability: old vs new Platt map",
        "",
        "Written by `python benchmarks/calibration_reliability.py`. Map: p = sigmoid(a * combined + b), where "
        "`combined` is the ensemble's uncalibrated z-score combination (`ensemble.combine_scores`).",
        "",
        f"**New map, fitted on all 125 msmarco-dev-graded queries ({fit['pairs']:,} graded pairs, relevant = grade "
        f">= 2): a = {new['a']!r}, b = {new['b']!r}.** Old map: a = {OLD['a']!r}, b = {OLD['b']!r} (27 TREC DL "
        "2020 queries, BM25 top-100, grade >= 2).",
        "",
        "| dataset | pairs | base rate | map | mean p | ECE (15 bins) | Brier | mean p relevant | mean p non-rel. "
        "| recall@0.5 | precision@0.5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["datasets"].values():
        for key in ("old", "new"):
            m = entry["metrics"][key]
            lines.append(f"| {entry['title'].replace(chr(10), ' ')} | {m['pairs']:,} | {m['base_rate']:.3f} | {key} | "
                         f"{m['mean_probability']:.3f} | {m['ece']:.3f} | {m['brier']:.3f} | "
                         f"{fmt(m['mean_p_relevant'])} | {fmt(m['mean_p_nonrelevant'])} | "
                         f"{fmt(m['recall_at_0.5'])} | {fmt(m['precision_at_0.5'])} |")
    covid = report["datasets"].get("covid-faq", {})
    lines += [
        "",
        f"msmarco-dev-graded, new: held-out probabilities of a 2-fold split over queries (seed "
        f"{report['args']['seed']}); over {cf['seeds']} seeds the held-out ECE is {cf['ece_new']['mean']:.3f} "
        f"(range {cf['ece_new']['min']:.3f}-{cf['ece_new']['max']:.3f}), Brier {cf['brier_new']['mean']:.3f}. "
        "All other rows use the map fitted on all 125 queries, with no fitting on those data. COVID FAQ: "
        + (f"{covid.get('queries')} of the 240 user questions (seeded sample) x all 108 entries, "
           "document = FAQ question + ' ' + answer; " if covid else "")
        + "DL 2020: all 54 judged queries, unjudged = not relevant.",
        "",
        "Obvious pairs (probability, old -> new):",
        "",
        "| kind | query | passage | old | new |",
        "|---|---|---|---|---|",
    ]
    for row in report["obvious_pairs"]:
        passage = row["passage"] if len(row["passage"]) < 60 else row["passage"][:57] + "..."
        lines.append(f"| {row['kind']} | {row['query']} | {passage} | {row['old']:.3f} | {row['new']:.3f} |")
    th = report["threshold_check"]["grade_ge_1"]
    iso = fit["isotonic_cross_fit"]
    lines += [
        "",
        "## Is Platt on the combination adequate, and which threshold?",
        "",
        f"msmarco-dev-graded, held-out (2-fold over queries, mean of {cf['seeds']} seeds):",
        "",
        "| labels (base rate) | map | ECE | Brier |",
        "|---|---|---|---|",
        f"| grade >= 2 ({fit['metrics']['old']['base_rate']:.3f}) | Platt (new) | {cf['ece_new']['mean']:.3f} | "
        f"{cf['brier_new']['mean']:.3f} |",
        f"| grade >= 2 | isotonic | {iso['ece']['mean']:.3f} | {iso['brier']['mean']:.3f} |",
        f"| grade >= 2 | old | {fit['metrics']['old']['ece']:.3f} | {fit['metrics']['old']['brier']:.3f} |",
        f"| grade >= 1 ({th['base_rate']:.3f}) | Platt fitted on grade >= 1 | {th['ece']['mean']:.3f} | "
        f"{th['brier']['mean']:.3f} |",
        f"| grade >= 1 | old | {th['old']['ece']:.3f} | {th['old']['brier']:.3f} |",
        "",
        "Isotonic regression, free to take any monotone shape, does no better than the two-parameter Platt map on "
        "held-out queries, so Platt on the combination is adequate. "
        f"A grade >= 1 fit would be a = {th['full_fit']['a']:.4f}, b = {th['full_fit']['b']:.4f}. "
        + report["threshold_note"],
        "",
        "## What the new probability means",
        "",
        report["meaning"],
        "",
        "Limits:",
        "",
        *[f"- {item}" for item in report["limits"]],
        "",
        "![reliability diagrams](calibration_reliability.png)",
        "",
        f"Scoring this run {report['scoring_s']:.0f} s, total {report['runtime_s']:.0f} s (member scores are cached "
        "under /tmp; the first, uncached run scores 14,841 pairs at 6-10 pairs/s on 2 shared cores, about 27 min). "
        f"Machine: {report['machine'].get('cpu')}, {report['machine'].get('cores')} cores, "
        f"{report['machine'].get('torch_threads')} torch threads, torch {report['machine'].get('torch')}.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def meaning_text(report: dict) -> tuple[str, list[str]]:
    """The paragraph on what the new probability means, and its limits, with this run's numbers."""
    fit = report["msmarco_dev_graded"]
    held, old = fit["metrics"]["new_cross_fitted"], fit["metrics"]["old"]
    cf = fit["cross_fit_seeds"]
    meaning = (
        "The new `probability` is the estimated chance that a human assessor would judge the passage relevant "
        "to the question (mean grade >= 3 of 5, the scale's midpoint), as fitted on 125 MS MARCO dev questions x "
        f"their BM25 top-20 (base rate {held['base_rate']:.2f}). On held-out queries of that set it is calibrated "
        f"(ECE {cf['ece_new']['mean']:.3f}, mean over {cf['seeds']} 2-fold splits; old map {old['ece']:.3f}), and "
        f"a 0.5 cut-off keeps {held['recall_at_0.5']:.0%} of the relevant passages at precision "
        f"{held['precision_at_0.5']:.2f} (old map: {old['recall_at_0.5']:.0%} at {old['precision_at_0.5']:.2f}).")
    limits = []
    ds = report["datasets"]
    low = [n for n in ("trec-dl-2020", "covid-faq") if n in ds]
    if low:
        parts = []
        for n in low:
            new, o = ds[n]["metrics"]["new"], ds[n]["metrics"]["old"]
            sh = ds[n]["metrics"]["new_prior_shift_diagnostic"]
            parts.append(f"{ds[n]['title'].splitlines()[0]} (base rate {new['base_rate']:.3f}): mean probability "
                         f"{new['mean_probability']:.3f}, ECE {new['ece']:.3f}, precision@0.5 "
                         f"{fmt(new['precision_at_0.5'], 2)}, recall@0.5 {fmt(new['recall_at_0.5'], 2)} "
                         f"(old map: ECE {o['ece']:.3f}, recall@0.5 {fmt(o['recall_at_0.5'], 2)}; intercept moved "
                         f"by the prior log-odds, diagnostic only: ECE {sh['ece']:.3f})")
        rel = [ds[n]["metrics"]["new"]["mean_p_relevant"] for n in ds]
        limits.append(
            "Base rate. A Platt map carries the prior of the pairs it was fitted on; where relevant passages are "
            "rarer among the candidates the probabilities overstate: " + "; ".join(parts) + ". Relevant pairs get "
            f"about the same mean probability everywhere ({min(rel):.2f}-{max(rel):.2f}): the score measures the "
            "pair, the base rate belongs to the candidate list. The old map looks calibrated there only because it "
            "was fitted at a top-100 base rate (on 27 DL 2020 queries, so its DL 2020 row is partly in-sample), "
            "at the price of missing most right answers at 0.5. Deep candidate lists should rank by the "
            "probability, or use a higher cut-off, or refit the intercept to their own base rate.")
    if "covid-faq-pairs" in ds:
        new, o = ds["covid-faq-pairs"]["metrics"]["new"], ds["covid-faq-pairs"]["metrics"]["old"]
        limits.append(
            f"Domain and task shift. Question-vs-question matching (COVID FAQ pairs, base rate {new['base_rate']:.2f}) "
            f"is under-confident: mean probability {new['mean_probability']:.2f}, ECE {new['ece']:.3f} "
            f"(old {o['ece']:.3f}), recall@0.5 {fmt(new['recall_at_0.5'], 2)} at precision "
            f"{fmt(new['precision_at_0.5'], 2)}. Out of domain the map may be off in either direction.")
    related = [r for r in report["obvious_pairs"] if r["kind"].startswith("related")]
    if related:
        limits.append(
            f"Related but not an answer: a passage on the query's topic that does not answer it gets {related[0]['new']:.2f} "
            f"(old {related[0]['old']:.2f}); MS MARCO assessors' mean >= 3 includes partial answers, so 0.5 is not "
            "'answers the question'.")
    return meaning, limits


def threshold_text(report: dict) -> str:
    g1 = report["threshold_check"]["grade_ge_1"]
    ds = report["datasets"]
    ood = "; ".join(f"{n} precision@0.5 {fmt(ds[n]['metrics']['grade_ge_1_fit']['precision_at_0.5'], 2)} "
                    f"(grade >= 2 map {fmt(ds[n]['metrics']['new']['precision_at_0.5'], 2)}), ECE "
                    f"{ds[n]['metrics']['grade_ge_1_fit']['ece']:.3f}"
                    for n in ("trec-dl-2020", "covid-faq") if n in ds)
    related = [r for r in report["obvious_pairs"] if r["kind"].startswith("related")]
    irrelevant = [r for r in report["obvious_pairs"] if r["kind"] == "irrelevant"]
    return (
        f"Grade 1 means 'related, not an answer' (mean grade 5/3 to 3). A grade >= 1 map is as well calibrated "
        f"against its own labels in domain (held-out ECE {g1['ece']['mean']:.3f}), but it answers a weaker question "
        "than users read into 'probability of relevant': it gives "
        + (f"{related[0]['grade_ge_1_fit']:.2f} to the related non-answer and " if related else "")
        + (f"{irrelevant[0]['grade_ge_1_fit']:.3f} to a plainly irrelevant pair, " if irrelevant else "")
        + (f"and out of domain it passes far more wrong candidates ({ood}). " if ood else "")
        + "The grade >= 2 map is the one to ship.")


# ----------------------------------------------------------------------------------------------- main

def fold_into_ensemble(folder: Path, fit: dict) -> None:
    """score = a * combination + b: the ensemble's score becomes a calibrated log-odds, probability its sigmoid."""
    from crossrank.ranking.ensemble import EnsembleConfig

    config = EnsembleConfig.load(folder)
    if config is None:
        sys.exit(f"{folder} has no ensemble.json")
    config.scale, config.bias = float(fit["a"]), float(fit["b"])
    config.notes["scale/bias"] = ("Platt calibration folded into the score (probability = sigmoid(score)), fitted on "
                                  + fit["fitted_on"] + "; benchmarks/results/calibration_reliability.md")
    config.save(folder)
    print(f"wrote scale {config.scale} and bias {config.bias} into {folder / 'ensemble.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default ../shared/data)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped default model)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/crossrank-calibration-reliability"),
                        help="member-score cache (.npz per chunk)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 2-fold query split (and of subsamples)")
    parser.add_argument("--cross-fit-seeds", type=int, default=20, help="seeds over which held-out ECE is averaged")
    parser.add_argument("--covid-queries", type=int, default=60,
                        help="seeded sample of COVID user questions, each scored against all 108 FAQ entries "
                             "(0 = all 240 = 25,920 pairs, about an hour on a busy 2-core CPU)")
    parser.add_argument("--dl-queries", type=int, default=0, help="subsample DL 2020 queries (0 = all 54)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the .json, .md and .png")
    parser.add_argument("--write-ensemble", type=Path, default=None,
                        help="fold the new map into this model folder's ensemble.json (scale, bias)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from crossrank import CrossEncoder
    from crossrank.evaluation.machine import machine_info
    from crossrank.ranking.calibration import brier_score, expected_calibration_error, fit_calibration

    started = time.perf_counter()
    ce = CrossEncoder(args.model) if args.model else CrossEncoder()
    scorer = MemberScores(ce, args.cache)
    scoring = 0.0
    report: dict = {"script": "benchmarks/calibration_reliability.py", "args": {k: str(v) for k, v in vars(args).items()},
                    "model": str(ce.model_dir), "old_calibration": OLD, "ece_bins": ECE_BINS, "datasets": {}}
    report["args"]["seed"] = args.seed

    # 1. Fit on msmarco-dev-graded.
    folder = args.data / "msmarco-dev-graded"
    if not folder.is_dir():
        raise SystemExit(f"{folder} is absent: the calibration is fitted there, nothing to do")
    pairs, grades, qids, ungraded = load_msmarco_graded(folder)
    t = time.perf_counter()
    combined, _ = scorer.combined(pairs, "msmarco-dev-graded")
    scoring += time.perf_counter() - t
    y2, y1 = (grades >= 2).astype(int), (grades >= 1).astype(int)
    full = fit_calibration(combined, y2, "platt")
    new_a, new_b = float(full.a), float(full.b)
    p_new_cf, fold_fits = cross_fit(combined, y2, qids, args.seed)
    p_old = platt(OLD["a"], OLD["b"], combined)
    seeds = range(args.seed, args.seed + args.cross_fit_seeds)
    ece_new, brier_new, ece_iso, brier_iso, ece_g1, brier_g1 = [], [], [], [], [], []
    for s in seeds:
        p, _ = cross_fit(combined, y2, qids, s)
        ece_new.append(expected_calibration_error(p, y2, ECE_BINS))
        brier_new.append(brier_score(p, y2))
        p, _ = cross_fit(combined, y2, qids, s, "isotonic")
        ece_iso.append(expected_calibration_error(p, y2, ECE_BINS))
        brier_iso.append(brier_score(p, y2))
        p, _ = cross_fit(combined, y1, qids, s)
        ece_g1.append(expected_calibration_error(p, y1, ECE_BINS))
        brier_g1.append(brier_score(p, y1))
    full_g1 = fit_calibration(combined, y1, "platt")
    # In-sample check of the shipped fit (optimistic by construction; the cross-fitted rows are the honest ones).
    in_sample = metrics(platt(new_a, new_b, combined), y2)
    report["msmarco_dev_graded"] = {
        "queries": int(len(set(qids.tolist()))), "pairs": int(len(pairs)), "ungraded_left_out": ungraded,
        "grade_counts": {str(g): int((grades == g).sum()) for g in range(4)},
        "combined_range": [float(combined.min()), float(combined.max())],
        "full_fit": {"a": new_a, "b": new_b},
        "fold_fits_seed": fold_fits,
        "metrics": {"old": metrics(p_old, y2), "new_cross_fitted": metrics(p_new_cf, y2),
                    "new_in_sample": in_sample},
        "cross_fit_seeds": {"seeds": args.cross_fit_seeds, "ece_new": summarise(ece_new),
                            "brier_new": summarise(brier_new)},
        "isotonic_cross_fit": {"ece": summarise(ece_iso), "brier": summarise(brier_iso)},
    }
    report["recommended"] = {"a": new_a, "b": new_b, "method": "platt",
                             "applies_to": "ensemble.combine_scores(member_scores) (uncalibrated combination)",
                             "fitted_on": "msmarco-dev-graded: 125 MS MARCO dev queries x BM25 top-20, "
                                          f"{len(pairs)} graded pairs, relevant = grade >= 2"}
    report["threshold_check"] = {"grade_ge_1": {
        "base_rate": float(y1.mean()), "full_fit": {"a": float(full_g1.a), "b": float(full_g1.b)},
        "ece": summarise(ece_g1), "brier": summarise(brier_g1),
        "old": {"ece": expected_calibration_error(p_old, y1, ECE_BINS), "brier": brier_score(p_old, y1)},
        "new_grade2_map_vs_grade1_labels": metrics(platt(new_a, new_b, combined), y1)}}
    report["datasets"]["msmarco-dev-graded"] = {
        "title": "msmarco-dev-graded (held-out)", "metrics": {"old": metrics(p_old, y2), "new": metrics(p_new_cf, y2)},
        "bins": {"old": reliability_bins(p_old, y2), "new": reliability_bins(p_new_cf, y2)}}
    print(f"\nNEW PLATT MAP (ship this): a = {new_a!r}, b = {new_b!r}")
    print(f"  (fitted on {len(pairs)} msmarco-dev-graded pairs, 125 queries, relevant = grade >= 2; "
          f"base rate {y2.mean():.3f})")

    fit_base = float(y2.mean())

    def logit(x: float) -> float:
        return float(np.log(x / (1 - x)))

    def evaluate(name: str, title: str, combined: np.ndarray, labels: np.ndarray, extra: dict) -> None:
        p_old, p_new = platt(OLD["a"], OLD["b"], combined), platt(new_a, new_b, combined)
        p_g1 = platt(full_g1.a, full_g1.b, combined)
        # Diagnostic only (uses the dataset's own base rate, so not a shippable map): the new map with its
        # intercept moved by the change in prior log-odds, b + logit(base rate here) - logit(base rate of the fit).
        # If this is well calibrated, the out-of-domain error of the new map is mostly the base rate.
        shift = logit(float(labels.mean())) - logit(fit_base)
        p_shift = platt(new_a, new_b + shift, combined)
        report["datasets"][name] = {"title": title, **extra,
                                    "metrics": {"old": metrics(p_old, labels), "new": metrics(p_new, labels),
                                                "grade_ge_1_fit": metrics(p_g1, labels),
                                                "new_prior_shift_diagnostic": {"b_shift": shift,
                                                                               **metrics(p_shift, labels)}},
                                    "bins": {"old": reliability_bins(p_old, labels),
                                             "new": reliability_bins(p_new, labels)}}

    # 2a. COVID FAQ.
    folder = args.data / "covid-faq"
    if folder.is_dir():
        pairs, labels, _ = load_covid_retrieval(folder, args.covid_queries, args.seed)
        t = time.perf_counter()
        combined, _ = scorer.combined(pairs, "covid-faq-retrieval")
        scoring += time.perf_counter() - t
        n_q = len(pairs) // 108
        evaluate("covid-faq", f"COVID FAQ: {n_q} user questions\nx all 108 FAQ entries", combined, labels,
                 {"queries": n_q, "document_text": "FAQ question (title) + ' ' + answer (text)"})
        pairs, labels = load_covid_pairs(folder)
        t = time.perf_counter()
        combined, _ = scorer.combined(pairs, "covid-faq-pairs")
        scoring += time.perf_counter() - t
        evaluate("covid-faq-pairs", "COVID FAQ pairs: user question vs\nFAQ question (same question?)", combined, labels,
                 {"note": "question-vs-question (label 1 = same question), negatives are random FAQ questions"})
    else:
        print(f"skipping COVID FAQ: {folder} is absent", file=sys.stderr)

    # 2b. TREC DL 2020 BM25 top-100.
    folder = args.data / "trec-dl-2020"
    if folder.is_dir():
        pairs, grades_dl, n_q, missing = load_dl2020(folder, args.dl_queries, args.seed)
        t = time.perf_counter()
        combined_dl, _ = scorer.combined(pairs, "trec-dl-2020-bm25-top100")
        scoring += time.perf_counter() - t
        evaluate("trec-dl-2020", "TREC DL 2020: BM25 top-100\n(old map was fitted on 27 of these queries)", combined_dl, (grades_dl >= 2).astype(int),
                 {"queries": n_q, "missing_text": missing, "labels": "grade >= 2, unjudged = 0"})
        report["datasets"]["trec-dl-2020"]["grade_ge_1_labels"] = {
            "old": metrics(platt(OLD["a"], OLD["b"], combined_dl), (grades_dl >= 1).astype(int)),
            "new": metrics(platt(new_a, new_b, combined_dl), (grades_dl >= 1).astype(int)),
            "grade_ge_1_fit": metrics(platt(full_g1.a, full_g1.b, combined_dl), (grades_dl >= 1).astype(int))}
    else:
        print(f"skipping TREC DL 2020: {folder} is absent", file=sys.stderr)

    # 3. Obvious pairs (scored directly, a handful of pairs).
    obvious_pairs = [(q, d) for _, q, d in OBVIOUS]
    members = [np.asarray(m.score(obvious_pairs), dtype=np.float64) for m in ce.ensemble.members]
    comb = np.asarray(ce.ensemble.combine_scores(members), dtype=np.float64)
    report["obvious_pairs"] = [
        {"kind": kind, "query": q, "passage": d, "combined": float(c), "members": [float(m[i]) for m in members],
         "old": float(platt(OLD["a"], OLD["b"], [c])[0]), "new": float(platt(new_a, new_b, [c])[0]),
         "grade_ge_1_fit": float(platt(full_g1.a, full_g1.b, [c])[0])}
        for i, ((kind, q, d), c) in enumerate(zip(OBVIOUS, comb))]

    # Summary on stdout.
    print("\n| dataset | map | pairs | base rate | mean p | ECE | Brier | mean p rel | mean p non-rel | recall@0.5 "
          "| precision@0.5 |")
    for name, entry in report["datasets"].items():
        for key in ("old", "new"):
            m = entry["metrics"][key]
            print(f"| {name} | {key} | {m['pairs']} | {m['base_rate']:.3f} | {m['mean_probability']:.3f} | "
                  f"{m['ece']:.4f} | {m['brier']:.4f} | {fmt(m['mean_p_relevant'])} | {fmt(m['mean_p_nonrelevant'])} "
                  f"| {fmt(m['recall_at_0.5'])} | {fmt(m['precision_at_0.5'])} |")
    cf = report["msmarco_dev_graded"]["cross_fit_seeds"]
    iso = report["msmarco_dev_graded"]["isotonic_cross_fit"]
    g1 = report["threshold_check"]["grade_ge_1"]
    print(f"\nmsmarco-dev-graded held-out over {cf['seeds']} seeds: Platt ECE {cf['ece_new']['mean']:.4f} "
          f"(sd {cf['ece_new']['std']:.4f}), Brier {cf['brier_new']['mean']:.4f}; isotonic ECE {iso['ece']['mean']:.4f}, "
          f"Brier {iso['brier']['mean']:.4f}; in-sample (shipped fit) ECE {in_sample['ece']:.4f}")
    print(f"grade >= 1 labels (base rate {g1['base_rate']:.3f}): grade>=1 Platt held-out ECE {g1['ece']['mean']:.4f}, "
          f"Brier {g1['brier']['mean']:.4f}; old map ECE {g1['old']['ece']:.4f}; full fit a={g1['full_fit']['a']:.4f} "
          f"b={g1['full_fit']['b']:.4f}")
    print("\nobvious pairs: old -> new (grade>=1 fit)")
    for row in report["obvious_pairs"]:
        print(f"  [{row['kind']}] {row['query']!r} / {row['passage'][:50]!r}...: {row['old']:.3f} -> {row['new']:.3f} "
              f"({row['grade_ge_1_fit']:.3f})")

    report["meaning"], report["limits"] = meaning_text(report)
    report["threshold_note"] = threshold_text(report)
    report["scoring_s"] = scoring
    report["uncached_runtime_note"] = ("first run with an empty cache: 14,841 pairs (60 COVID questions) at "
                                       "6-10 pairs/s on 2 shared cores, 1,608 s")
    report["runtime_s"] = time.perf_counter() - started
    report["machine"] = machine_info("cpu")

    # 4. Figure.
    args.out.mkdir(parents=True, exist_ok=True)
    panels = []
    for name in ("msmarco-dev-graded", "covid-faq", "covid-faq-pairs", "trec-dl-2020"):
        if name in report["datasets"]:
            entry = report["datasets"][name]
            panels.append({"title": entry["title"], "bins": entry["bins"], "metrics": entry["metrics"],
                           "pairs": entry["metrics"]["new"]["pairs"], "base_rate": entry["metrics"]["new"]["base_rate"]})
    png = args.out / f"{NAME}.png"
    draw(panels, png)

    # 5. JSON and Markdown.
    (args.out / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.write_ensemble is not None:
        fold_into_ensemble(args.write_ensemble, report["recommended"])
    write_markdown(report, args.out / f"{NAME}.md")
    print(f"\nwrote {args.out / (NAME + '.json')}, {args.out / (NAME + '.md')}, {png} "
          f"({report['runtime_s']:.0f} s, scoring {scoring:.0f} s)")


if __name__ == "__main__":
    main()
