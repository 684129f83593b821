"""Long documents read in token windows, scored by their best one: Python, the CLI and the HTTP service.

The answer-at-the-end checks use the shipped default (a real trained reranker): a random tiny model could
not tell the answer window from the filler."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from crossrank import Chunking, CrossEncoder
from crossrank.errors import InvalidInputError
from crossrank.ranking.chunking import ChunkedPairs, chunk_documents

from test_cli import run_cli

FILLER = ["The city council met on Tuesday to discuss the new parking regulations downtown.",
          "Local farmers reported a strong harvest of apples and pears this autumn.",
          "The museum opened a new exhibition of medieval tapestries from northern Europe.",
          "Commuters complained about delays on the regional train line during the storm.",
          "A new bakery on the main street sells sourdough bread and pastries.",
          "The football club signed two young players from the academy.",
          "Volunteers cleaned the riverbank and collected several bags of litter.",
          "The library extended its opening hours during the exam period."]
ANSWER = ("Boiling point of water. At sea level, pure water boils at 100 degrees Celsius (212 degrees Fahrenheit). "
          "At higher altitude the air pressure is lower, so water boils at a lower temperature: about 95 degrees "
          "Celsius in Denver.")
QUERY = "At what temperature does water boil?"


def long_document(words: int = 3000) -> str:
    rng, out = random.Random(0), []
    while len(out) < words:
        out += rng.choice(FILLER).split()
    return " ".join(out) + " " + ANSWER


LONG = long_document()
DOCS = [LONG, "Water is a chemical compound of hydrogen and oxygen that covers most of the Earth.",
        "Cooking pasta requires a large pot of salted water.",
        "The temperature in the desert can exceed 50 degrees during summer."]


@pytest.fixture(scope="module")
def default_ce():
    return CrossEncoder()


def test_an_answer_at_the_end_of_3000_words_ranks_first_only_with_chunking(default_ce, caplog):
    assert len(LONG.split()) > 3000
    truncated = default_ce.rerank(QUERY, DOCS, return_documents=False)
    assert truncated[-1].index == 0 and truncated[0].evidence is None  # the first 256 tokens are filler
    chunked = default_ce.rerank(QUERY, DOCS, return_documents=False, chunking=True)
    best = chunked[0]
    assert best.index == 0 and best.chunks >= 15
    start, end = best.evidence
    assert ANSWER in LONG[start:end] and end == len(LONG)
    # Short documents are one window: their scores are what plain reranking gives.
    plain = {r.index: r.score for r in truncated}
    for r in chunked[1:]:
        assert r.chunks == 1 and r.evidence == (0, len(DOCS[r.index]))
        assert r.score == pytest.approx(plain[r.index], abs=1e-5)
    # Too few windows to reach the end: the answer is not read, and a warning says so.
    with caplog.at_level(logging.WARNING, logger="crossrank"):
        few = default_ce.rerank(QUERY, DOCS, return_documents=False, chunking=Chunking(max_chunks=5))
    assert few[0].index != 0 and "beyond their first 5 windows" in caplog.text
    assert next(r for r in few if r.index == 0).chunks == 5


def test_windows_fit_the_model_and_cover_the_text(tiny_ce):
    text = " ".join(f"w{i}" for i in range(2000))
    pairs = chunk_documents(tiny_ce.tokenizer, ["short query"], [text], Chunking(max_chunks=100, overlap=16))
    spans = pairs.spans[0]
    assert spans[0][0] == 0 and spans[-1][1] == len(text) and pairs.unread == 0
    assert all(a[0] < b[0] < a[1] for a, b in zip(spans, spans[1:]))  # each window overlaps the next
    lengths = tiny_ce.tokenizer(pairs.queries, pairs.texts)
    assert lengths.truncated_pairs == 0  # no window loses a token to truncation
    with pytest.raises(InvalidInputError, match="max_chunks"):
        Chunking(max_chunks=0)
    with pytest.raises(InvalidInputError, match="aggregation"):
        Chunking(aggregation="median")


def test_two_models_windows_are_never_mixed():
    pairs = ChunkedPairs(["q"] * 5, ["a", "b", "c", "d", "e"], [[(0, 1), (1, 2), (2, 3)], [(0, 1), (1, 2)]])
    scores = np.array([1.0, 9.0, 2.0, 5.0, 3.0])
    plain, roles = pairs.aggregate(scores)
    assert [s.score for s in plain] == [9.0, 5.0] and plain[0].evidence == (1, 2) and roles is None
    # The second window was the fallback's: the document is the main model's, scored by its windows only.
    mixed, roles = pairs.aggregate(scores, roles=["main", "fallback", "main", "fallback", "fallback"])
    assert roles == ["main", "fallback"] and mixed[0].score == 2.0 and mixed[0].evidence == (2, 3)
    assert mixed[1].score == 5.0


def test_cli_rerank_with_chunking(tmp_path, tiny_model):
    request = {"query": "short query", "documents": [" ".join(f"w{i}" for i in range(1500)), "short doc"]}
    proc = run_cli(["rerank", "--model", str(tiny_model), "--chunking", "--max-chunks", "4"],
                   stdin=json.dumps(request) + "\n")
    assert proc.returncode == 0, proc.stderr.decode()
    results = {r["index"]: r for r in json.loads(proc.stdout)["results"]}
    assert results[0]["chunks"] == 4 and results[1]["chunks"] == 1
    assert results[1]["evidence"] == [0, len("short doc")]
    assert "beyond their first 4 windows" in proc.stderr.decode()
    plain = json.loads(run_cli(["rerank", "--model", str(tiny_model)], stdin=json.dumps(request) + "\n").stdout)
    assert "chunks" not in plain["results"][0]


def test_the_service_chunks_long_documents_as_cohere_v1_does(default_ce):
    pytest.importorskip("fastapi", reason="the server needs the [serve] extra")
    from servers import Server

    srv = Server("default", "--max-chunks-per-doc", "24")
    try:
        def ask(version="v1", **fields):
            return srv.post(f"/{version}/rerank", {"query": QUERY, "documents": DOCS, **fields})

        cut = ask(max_chunks_per_doc=1).json()["results"]
        assert cut[-1]["index"] == 0 and "document" not in cut[0] and "best_chunk" not in cut[0]
        assert ask().json()["results"][0]["index"] != 0  # Cohere's default of 10 chunks stops short of the answer
        for version in ("v1", "v2"):
            body = ask(version, max_chunks_per_doc=24, return_best_chunk=True).json()
            best = body["results"][0]
            assert best["index"] == 0 and best["best_chunk"]["chunks"] >= 15
            assert ANSWER in LONG[best["best_chunk"]["start"]:best["best_chunk"]["end"]]
            expected = default_ce.rerank(QUERY, DOCS, chunking=Chunking(max_chunks=24))
            assert [r["index"] for r in body["results"]] == [r.index for r in expected]
            assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
                [r.probability for r in expected], abs=1e-5)
        # max_tokens_per_doc cuts first; chunking reads what is left (here: filler only).
        assert ask(max_chunks_per_doc=24, max_tokens_per_doc=1000).json()["results"][-1]["index"] == 0
        over = ask(max_chunks_per_doc=30)
        assert over.status_code == 422 and "limit of 24" in over.json()["error"]
        many = srv.post("/v1/rerank", {"query": QUERY, "documents": ["d"] * 500, "max_chunks_per_doc": 21})
        assert many.status_code == 422 and "10000 chunks per request" in many.json()["error"]
        assert ask(max_chunks_per_doc=0).status_code == 422
    finally:
        srv.stop()
