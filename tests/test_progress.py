"""Feedback on long work: progress lines off a terminal, one display of ours, no per-load bars of the libraries."""

from __future__ import annotations

import re
import time

import numpy as np

from crossrank.cli.progress import INTERVAL_ENV, pair_progress

# Bars and labels the libraries print on their own: transformers, sentence-transformers, bm25s, tqdm.
LIBRARY_BARS = ("Loading weights", "Batches", "Split strings", "Stem Tokens", "Build index", "it/s]", "%|")


def wait_for(capsys, text: str, timeout: float = 10.0) -> str:
    """Let the ticker print ``text`` (the machine may be busy), returning all it printed until then."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += capsys.readouterr().err
        if text in seen:
            break
        time.sleep(0.02)
    return seen


def test_off_a_terminal_a_line_every_interval_with_counts_rate_and_time(capsys):
    capsys.readouterr()
    with pair_progress(True, "reranking", total=5400, interval=0.05) as advance:
        advance(1200)
        first = wait_for(capsys, "\n")
        advance(1300)
        second = wait_for(capsys, "2,500/5,400")
        advance(2900)
    last = capsys.readouterr().err
    assert re.search(r"^crossrank: reranking: 1,200/5,400 pairs \(22%\), [\d,.]+ pairs/s, \d+s elapsed, "
                     r"about \S+ left$", first.splitlines()[0]), first
    assert "crossrank: reranking: 2,500/5,400 pairs (46%)" in second
    # A step that printed ends with one line of where it ended.
    assert last.splitlines()[-1].startswith("crossrank: reranking: 5,400/5,400 pairs (100%)")
    assert "left" not in last.splitlines()[-1]


def test_none_means_shown_and_false_means_silent(capsys):
    capsys.readouterr()
    with pair_progress(False, "scoring", total=10, interval=0.01) as advance:
        advance(3)
        time.sleep(0.1)
    assert capsys.readouterr().err == ""
    with pair_progress(None, "scoring", total=10, interval=0.01) as advance:
        advance(3)
        printed = wait_for(capsys, "\n")
    assert "crossrank: scoring: 3/10 pairs (30%)" in printed


def test_a_step_shorter_than_the_interval_prints_nothing(capsys):
    capsys.readouterr()
    with pair_progress(True, "reranking", total=3) as advance:  # the default interval: 5 s
        advance(3)
    assert capsys.readouterr().err == ""


def test_interval_from_the_environment_stages_and_units(capsys, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0.05")
    capsys.readouterr()
    with pair_progress(True, "BM25 index", total=2000, unit="documents") as advance:
        advance(2000)
        bm25 = wait_for(capsys, "\n")
        advance.stage("embedding", 2000, unit="documents")
        advance(500)
        embedding = wait_for(capsys, "crossrank: embedding:")
        advance.stage("loading")  # no total and no count: only the time
        loading = wait_for(capsys, "crossrank: loading:")
    assert "crossrank: BM25 index: 2,000/2,000 documents (100%)" in bm25
    assert "crossrank: BM25 index: 2,000/2,000 documents (100%)" in embedding  # the finished step's last line
    assert "crossrank: embedding: 500/2,000 documents (25%)" in embedding
    assert re.search(r"^crossrank: loading: \d+s elapsed$", loading, re.MULTILINE), loading


def test_loading_models_prints_no_weights_bar(tiny_model, tiny_bi_encoder, capfd):
    from transformers.utils import logging as hf_logging

    from crossrank.model.bi_encoder import BiEncoder
    from crossrank.model.loading import load_model

    capfd.readouterr()
    bars_before = hf_logging.is_progress_bar_enabled()
    load_model(tiny_model)
    BiEncoder(str(tiny_bi_encoder))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err
    assert hf_logging.is_progress_bar_enabled() == bars_before  # the caller's own setting comes back


def test_bi_encoder_reports_to_our_progress_and_matches_one_call(tiny_bi_encoder, capfd):
    from crossrank.model.bi_encoder import BiEncoder

    encoder = BiEncoder(str(tiny_bi_encoder), batch_size=16)  # parts of 32 texts
    texts = [" ".join(["protein", "cell", "gene", "risk"][: 1 + i % 4] * (1 + i % 7)) for i in range(70)]
    counts: list[int] = []
    capfd.readouterr()
    vectors = encoder.encode(texts, progress=counts.append)
    assert counts == [32, 32, 6]
    assert not any(bar in capfd.readouterr().err for bar in LIBRARY_BARS)
    whole = encoder.model.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)
    np.testing.assert_allclose(vectors, whole, atol=1e-5)
    assert encoder.encode(texts[:3], progress=counts.append).shape == (3, whole.shape[1]) and counts[-1] == 3


class SlowEncoder:
    """A bag-of-words encoder that takes its time and counts texts, like the bi-encoder."""

    dimension = 16

    def encode(self, texts, progress=None):
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, len(word) % self.dimension] += 1.0
            time.sleep(0.03)
            if callable(progress):
                progress(1)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_index_build_shows_one_display_of_ours(tmp_path, capfd, monkeypatch):
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.retriever import Retriever
    from crossrank.retrieval.store import StoredDocument

    monkeypatch.setenv(INTERVAL_ENV, "0.05")
    docs = [StoredDocument(f"d{i}", "", f"document number {i} about topic{i % 5} and words") for i in range(40)]
    index = CollectionIndex.create(tmp_path / "idx", IndexSettings(BM25Settings(), "fake"))
    capfd.readouterr()
    index.replace_all(docs, encoder=SlowEncoder(), progress=None)
    err = capfd.readouterr().err
    assert re.search(r"crossrank: embedding: \d+/40 documents \(\d+%\)", err), err
    assert "crossrank: embedding: 40/40 documents (100%)" in err.splitlines()[-1]
    assert not any(bar in err for bar in LIBRARY_BARS), err
    assert Retriever(index, "bm25").retrieve("topic3", k=10)[0].id in {f"d{i}" for i in range(3, 40, 5)}
    index.add([StoredDocument("x", "", "zebra")], encoder=SlowEncoder(), progress=False)
    assert capfd.readouterr().err == ""


def test_bm25_tokenized_in_parts_scores_as_in_one_call(tmp_path, monkeypatch):
    import bm25s

    from crossrank.retrieval import bm25
    from crossrank.retrieval.bm25 import BM25Retriever, BM25Settings, build_bm25

    rng = np.random.default_rng(0)
    words = "the protein cells genes boiling boils water vitamin a risk of trial trials mouse brains".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(50)]
    settings = BM25Settings()
    monkeypatch.setattr(bm25, "_TOKENIZE_PART", 7)
    counts: list[int] = []
    build_bm25(texts, tmp_path / "parts", settings, progress=counts.append)
    assert counts == [7] * 7 + [1]
    whole = bm25s.BM25(k1=settings.k1, b=settings.b, method="lucene")
    whole.index(bm25s.tokenize(texts, stopwords="en", stemmer=bm25._stemmer(settings),
                               token_pattern=settings.token_pattern, show_progress=False), show_progress=False)
    parts = BM25Retriever(tmp_path / "parts", settings, len(texts))
    for query in ("protein boiling", "vitamin a", "trial brain", "water"):
        positions, scores = parts.search(query, 50)
        ids = [whole.vocab_dict[t] for t in bm25s.tokenize([query], stopwords="en", stemmer=bm25._stemmer(settings),
                                                           token_pattern=settings.token_pattern, show_progress=False,
                                                           return_ids=False)[0] if t in whole.vocab_dict]
        expected = whole.get_scores(ids)
        np.testing.assert_allclose(scores, expected[positions], rtol=1e-6)
        assert np.count_nonzero(expected) == len(positions)


class RecordingProgress:
    def __init__(self):
        self.events: list[tuple] = []

    def __call__(self, n):
        self.events.append(("advance", n))

    def stage(self, label, total=None, unit=None):
        self.events.append(("stage", label, total, unit))


def test_experiment_counts_its_timing_step():
    from crossrank.data.formats import Document
    from crossrank.evaluation.experiment import ExperimentConfig, run_experiment

    class Scorer:
        def score(self, pairs, progress=None):
            if progress is not None:
                progress(len(pairs))
            return np.array([len(d) for _, d in pairs], dtype=np.float32)

    corpus = {f"d{i}": Document(f"d{i}", "", "word " * (i + 1)) for i in range(6)}
    queries = {"q1": "word", "q2": "words"}
    run = {q: {f"d{i}": float(6 - i) for i in range(6)} for q in queries}
    qrels = {"q1": {"d5": 1}, "q2": {"d0": 1}}
    progress = RecordingProgress()
    run_experiment(Scorer(), "len", queries, corpus, qrels, run, ExperimentConfig(ks=(2, 4), latency_queries=2),
                   dataset="toy", first_stage="first", progress=progress)
    assert progress.events[0] == ("advance", 8)  # the scoring pass: pairs
    assert progress.events[1] == ("stage", "timing queries", 4, "queries")
    assert progress.events[2:] == [("advance", 1)] * 4
    plain: list[int] = []  # a plain callable still counts only the scored pairs
    run_experiment(Scorer(), "len", queries, corpus, qrels, run, ExperimentConfig(ks=(2, 4), latency_queries=2),
                   dataset="toy", first_stage="first", progress=plain.append)
    assert plain == [8]
