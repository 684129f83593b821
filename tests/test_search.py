"""Two-stage search: chunked long documents with evidence, the latency budget, and the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from crossrank.pipeline.searcher import Searcher
from crossrank.ranking.chunking import aggregate, score_chunked, split_windows
from crossrank.retrieval.bm25 import BM25Settings
from crossrank.retrieval.index import CollectionIndex, IndexSettings
from crossrank.retrieval.store import StoredDocument

from test_cli import run_cli
from texts import word_soup


def lexical_scorer(pairs):
    """A transparent relevance function (query-word overlap) to check what chunking finds."""
    out = []
    for query, doc in pairs:
        words = {w.strip(".,;:!?") for w in doc.lower().split()}
        out.append(sum(w in words for w in query.lower().split()))
    return np.array(out, dtype=np.float32)


def long_doc_with_answer_at_end(rng, filler_words=1500, answer="zebras have black and white stripes"):
    filler = word_soup(rng, filler_words)
    return f"{filler} {answer}.", answer


def test_windows_cover_the_text_with_overlap(tiny_ce):
    text = word_soup(random.Random(0), 700)
    spans = split_windows(tiny_ce.tokenizer.backend, text, 200, 50)
    offsets = tiny_ce.tokenizer.backend.encode(text, add_special_tokens=False).offsets
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert len(spans) == 1 + -(-(len(offsets) - 200) // 150)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s2 < e1  # consecutive windows overlap
    assert split_windows(tiny_ce.tokenizer.backend, "short text", 200, 50) == [(0, 10)]


def test_passage_at_the_end_is_found_only_with_chunking(tiny_ce):
    rng = random.Random(1)
    doc, answer = long_doc_with_answer_at_end(rng)
    query = "zebras stripes"
    chunked = score_chunked(lexical_scorer, tiny_ce.tokenizer.backend, [query], [doc], 400, 64)[0]
    assert chunked.score == 2.0 and chunked.windows >= 4
    start, end = chunked.evidence
    assert answer in doc[start:end] and end == len(doc)
    # Read as one truncated pair, the model never sees the answer.
    tokens = tiny_ce.tokenizer([query], [doc])
    ids = tokens.input_ids[0]
    seen_document = tiny_ce.tokenizer.backend.decode(ids[ids.index(102) + 1:])
    assert "zebras" not in seen_document and "stripes" not in seen_document
    assert tokens.truncated_pairs == 1


def test_aggregations_and_real_model_window_scores(tiny_ce):
    scores = np.array([1.0, 3.0, 2.0, -1.0])
    assert [aggregate(scores, h) for h in ("max", "mean", "first", "topk-mean")] == [3.0, 1.25, 1.0, 2.0]
    doc = word_soup(random.Random(2), 900)
    result = score_chunked(tiny_ce.score, tiny_ce.tokenizer.backend, ["cell therapy"], [doc], 300, 32, "max")[0]
    spans = split_windows(tiny_ce.tokenizer.backend, doc, 300, 32)
    alone = tiny_ce.score([("cell therapy", doc[s:e]) for s, e in spans])
    assert result.score == pytest.approx(float(alone.max()), abs=1e-5)
    assert result.evidence == spans[int(np.argmax(alone))]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    rng = random.Random(3)
    docs = [StoredDocument(f"d{i}", f"title {i}", word_soup(rng, rng.randint(20, 80))) for i in range(40)]
    long_doc, _ = long_doc_with_answer_at_end(rng)
    docs.append(StoredDocument("long", "zebra facts", long_doc))
    path = tmp_path_factory.mktemp("search") / "idx"
    CollectionIndex.create(path, IndexSettings(BM25Settings())).replace_all(docs)
    return path


def test_two_stage_search_reranks_the_candidates(index, tiny_ce):
    searcher = Searcher(index, "bm25", tiny_ce)
    result = searcher.search("protein therapy cell", k=20, top_n=5)
    assert len(result.hits) == 5 and result.reranked == result.candidates == 20
    scores = [h.rerank_score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and all(h.reranked for h in result.hits)
    first_stage = Searcher(index, "bm25").search("protein therapy cell", k=20, top_n=20)
    assert [h.first_stage_rank for h in first_stage.hits] == list(range(1, 21))
    assert {h.id for h in result.hits} <= {h.id for h in first_stage.hits}
    for hit in result.hits:
        assert hit.probability == pytest.approx(1 / (1 + np.exp(-hit.rerank_score)))
        assert 0 <= hit.evidence[0] < hit.evidence[1] <= len(hit.text)


def test_budget_reranks_the_prefix_that_fits_and_flags_the_rest(index, tiny_ce):
    from crossrank.pipeline.budget import CostModel

    searcher = Searcher(index, "bm25", tiny_ce)
    searcher.throughput = CostModel.uniform(0.1)  # pretend a slow model: 100 ms per candidate
    result = searcher.search("protein therapy cell", k=10, top_n=10, budget_ms=350)
    assert result.reranked == 3
    assert [h.reranked for h in result.hits] == [True] * 3 + [False] * 7
    assert sorted(h.first_stage_rank for h in result.hits[:3]) == [1, 2, 3]
    assert [h.first_stage_rank for h in result.hits[3:]] == list(range(4, 11))
    assert all(h.rerank_score is None for h in result.hits[3:])
    nothing = Searcher(index, "bm25", tiny_ce).search("protein therapy cell", k=10, budget_ms=0)
    assert nothing.reranked == 0 and [h.first_stage_rank for h in nothing.hits] == list(range(1, 11))


def test_search_many_matches_single_queries(index, tiny_ce):
    searcher = Searcher(index, "bm25", tiny_ce)
    batch = searcher.search_many({"a": "protein therapy", "b": "river city history"}, k=15, top_n=5)
    for qid, text in (("a", "protein therapy"), ("b", "river city history")):
        single = searcher.search(text, k=15, top_n=5)
        assert [h.id for h in batch[qid]] == [h.id for h in single.hits]


def test_index_and_search_commands(tmp_path, tiny_model):
    corpus = tmp_path / "corpus.jsonl"
    rng = random.Random(4)
    with open(corpus, "w") as f:
        for i in range(30):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": word_soup(rng, 30)}) + "\n")
        f.write(json.dumps({"_id": "z", "title": "", "text": "zebra stripes savanna"}) + "\n")
    idx = tmp_path / "idx"
    proc = run_cli(["index", "build", str(idx), "--corpus", str(corpus)])
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(run_cli(["index", "info", str(idx)]).stdout)
    assert info["documents"] == 31 and info["bm25"]["k1"] == 0.9 and info["bm25"]["b"] == 0.4
    proc = run_cli(["search", str(idx), "--query", "zebra savanna", "--k", "5", "--json"])
    hits = json.loads(proc.stdout)["hits"]
    assert hits[0]["id"] == "z" and hits[0]["reranked"] is False
    proc = run_cli(["search", str(idx), "--query", "zebra protein cell", "--rerank", str(tiny_model), "--k", "5",
                    "--top-n", "3", "--json"])
    payload = json.loads(proc.stdout)
    assert payload["reranked"] == payload["candidates"] == 5
    assert len(payload["hits"]) == 3 and all(h["reranked"] for h in payload["hits"])
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"_id": "q1", "text": "zebra"}\n{"_id": "q2", "text": "protein cell"}\n')
    proc = run_cli(["search", str(idx), "--queries", str(queries), "--output", str(tmp_path / "run.trec"),
                    "--rerank", str(tiny_model), "--top-n", "4"])
    assert proc.returncode == 0, proc.stderr.decode()
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert {line.split()[0] for line in lines} == {"q1", "q2"} and len(lines) <= 8
    proc = run_cli(["index", "delete", str(idx), "--id", "z"])
    assert proc.returncode == 0 and "deleted 1" in proc.stderr.decode()
    proc = run_cli(["search", str(idx), "--query", "zebra savanna", "--json"])
    assert all(h["id"] != "z" for h in json.loads(proc.stdout)["hits"])
    proc = run_cli(["search", str(tmp_path), "--query", "x"])
    assert proc.returncode == 5 and "not a crossrank index" in proc.stderr.decode()
    proc = run_cli(["search", str(idx), "--query", "x", "--retriever", "dense"])
    assert proc.returncode == 3 and "needs dense embeddings" in proc.stderr.decode()


def test_a_budget_reranks_about_what_the_measured_throughput_allows(tmp_path, tiny_model):
    """A cold process: the cost is measured after a warm-up, outside the budget, so the first budgeted search
    already reranks about budget / cost candidates (it used to rerank none: the cold first pass set the cost)."""
    import time

    import torch

    from crossrank import CrossEncoder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # timings without thread-pool barriers, which a busy machine makes erratic
    try:
        _budget_check(tmp_path, tiny_model, CrossEncoder, time)
    finally:
        torch.set_num_threads(threads)


def _budget_check(tmp_path, tiny_model, CrossEncoder, time):
    rng = random.Random(7)
    path = tmp_path / "idx"
    docs = [StoredDocument(f"d{i}", "", "protein " + word_soup(rng, 120)) for i in range(300)]
    CollectionIndex.create(path, IndexSettings(BM25Settings())).replace_all(docs)
    ce = CrossEncoder(str(tiny_model), batch_tokens=512)
    searcher = Searcher(path, "bm25", ce, chunking=False)
    # What one candidate costs, measured here the same way (warm, real candidates of one query).
    hits = Searcher(path, "bm25").search("protein", k=300, top_n=300).hits
    pairs = [("protein", h.text) for h in hits]
    ce.score(pairs[:16])
    begin = time.perf_counter()
    ce.score(pairs)
    per_candidate = (time.perf_counter() - begin) / len(pairs)
    budget_ms = 1000 * per_candidate * 100  # about 100 of the 300 candidates fit
    result = searcher.search("protein", k=300, top_n=10, budget_ms=budget_ms)
    # Wide bounds: timings on a shared 2-core machine are noisy; the old rule reranked 0 here.
    assert 25 <= result.reranked <= 250, (result.reranked, per_candidate)
    assert "cost_probe" in result.timings_ms
    again = Searcher(path, "bm25", ce, chunking=False).search("protein", k=300, top_n=10, budget_ms=budget_ms)
    assert "cost_probe" not in again.timings_ms and 25 <= again.reranked <= 250  # the cost is kept per model


def test_cli_budget_reranks_from_a_cold_start(tmp_path, tiny_model):
    corpus = tmp_path / "corpus.jsonl"
    rng = random.Random(5)
    with open(corpus, "w") as f:
        for i in range(100):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": "protein " + word_soup(rng, 60)}) + "\n")
    idx = tmp_path / "idx"
    assert run_cli(["index", "build", str(idx), "--corpus", str(corpus)]).returncode == 0
    proc = run_cli(["search", str(idx), "--query", "protein", "--rerank", str(tiny_model), "--k", "100",
                    "--budget-ms", "300", "--json"])
    assert proc.returncode == 0, proc.stderr.decode()
    payload = json.loads(proc.stdout)
    # The cold first pass no longer sets the cost: it is measured warm, outside the budget.
    assert "cost_probe" in payload["timings_ms"] and payload["reranked"] >= 1
