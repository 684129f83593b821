"""Client compatibility of the service: each API shape with a real client where one installs here (Cohere's
and Voyage's SDKs), or a request as the real client sends it (Jina, vLLM). A real server on loopback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossrank.ranking.results import sigmoid

from servers import KEY, Server

pytest.importorskip("fastapi", reason="the server needs the [serve] extra")

QUERY = "how many people live in berlin"
DOCS = ["Berlin has 3.5 million inhabitants.", "Berlin is known for its museums.", "Water boils at 100 degrees.",
        "protein cell therapy"]


@pytest.fixture(scope="module")
def server(tiny_model):
    srv = Server(tiny_model)
    yield srv
    srv.stop()


def expected_probs(tiny_ce, query=QUERY, docs=DOCS):
    return np.array([sigmoid(s) for s in tiny_ce.score([(query, d) for d in docs])])


def test_return_documents_false_omits_the_field_instead_of_sending_null(server):
    for path in ("/v1/rerank", "/v2/rerank"):
        r = server.post(path, {"query": QUERY, "documents": DOCS, "return_documents": False})
        assert r.status_code == 200 and '"document"' not in r.text and "null" not in r.text


def test_a_jina_request_as_jina_clients_send_it(server, tiny_ce):
    # The body LangChain's and LlamaIndex's Jina rerankers post to https://api.jina.ai/v1/rerank.
    body = {"query": QUERY, "documents": DOCS, "model": "jina-reranker-v2-base-multilingual", "top_n": 3}
    r = server.post("/v1/rerank", body)
    assert r.status_code == 200
    payload = r.json()
    probs = expected_probs(tiny_ce)
    assert [x["index"] for x in payload["results"]] == list(np.argsort(-probs, kind="stable")[:3])
    assert [x["relevance_score"] for x in payload["results"]] == pytest.approx(sorted(probs, reverse=True)[:3])
    assert payload["model"] == "jina-reranker-v2-base-multilingual" and payload["usage"]["total_tokens"] > 0
    with_docs = server.post("/v1/rerank", {**body, "return_documents": True, "truncation": True}).json()
    assert with_docs["results"][0]["document"] == {"text": DOCS[with_docs["results"][0]["index"]]}
    refused = server.post("/v1/rerank", {**body, "documents": ["word " * 2000], "truncation": False,
                                         "max_chunks_per_doc": 1})
    assert refused.status_code == 413


def test_the_voyage_client_works_on_its_route(server, tiny_ce):
    voyageai = pytest.importorskip("voyageai")
    client = voyageai.Client(api_key=KEY, base_url=f"{server.url}/voyage/v1", max_retries=0)
    result = client.rerank(QUERY, DOCS, model="rerank-2", top_k=2)
    probs = expected_probs(tiny_ce)
    assert [r.index for r in result.results] == list(np.argsort(-probs, kind="stable")[:2])
    assert [r.relevance_score for r in result.results] == pytest.approx(sorted(probs, reverse=True)[:2])
    assert result.results[0].document == DOCS[result.results[0].index] and result.total_tokens > 0
    raw = server.post("/voyage/v1/rerank", {"query": QUERY, "documents": DOCS, "top_k": 1})
    assert raw.status_code == 200 and "document" not in raw.json()["data"][0]  # Voyage's default: no documents
    with pytest.raises(Exception):  # truncation=False refuses a document longer than the window
        client.rerank(QUERY, ["word " * 2000], model="rerank-2", truncation=False)
    assert server.post("/voyage/v1/rerank", {"query": QUERY, "documents": DOCS, "top_n": 1}).status_code == 422


def test_vllm_score_and_rerank_shapes(server, tiny_ce):
    probs = expected_probs(tiny_ce)
    for path in ("/score", "/v1/score"):
        r = server.post(path, {"model": "m", "text_1": QUERY, "text_2": DOCS})
        assert r.status_code == 200
        payload = r.json()
        assert payload["object"] == "list" and payload["id"].startswith("score-") and payload["usage"]["total_tokens"] > 0
        assert [d["index"] for d in payload["data"]] == [0, 1, 2, 3]  # input order, not ranked
        assert [d["score"] for d in payload["data"]] == pytest.approx(probs)
    pairwise = server.post("/score", {"text_1": ["a question", QUERY], "text_2": ["an answer", DOCS[0]]}).json()
    assert pairwise["data"][1]["score"] == pytest.approx(probs[0])
    assert pairwise["data"][0]["score"] == pytest.approx(sigmoid(tiny_ce.score([("a question", "an answer")])[0]))
    single = server.post("/score", {"text_1": QUERY, "text_2": DOCS[2]}).json()
    assert [d["score"] for d in single["data"]] == pytest.approx([probs[2]])
    bad = server.post("/score", {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]})
    assert bad.status_code == 422 and "text_1 has 2 texts" in bad.json()["error"]
    # vLLM's /rerank: the Jina shape, documents returned; TEI's /rerank keeps its own shape.
    vllm = server.post("/rerank", {"model": "m", "query": QUERY, "documents": DOCS, "top_n": 2}).json()
    assert vllm["id"].startswith("rerank-") and vllm["usage"]["total_tokens"] > 0
    assert vllm["results"][0]["document"]["text"] == DOCS[vllm["results"][0]["index"]]
    assert vllm["results"][0]["relevance_score"] == pytest.approx(probs.max())
    tei = server.post("/rerank", {"query": QUERY, "texts": DOCS}).json()
    assert isinstance(tei, list) and tei[0]["score"] == pytest.approx(probs.max())
    mixed = server.post("/rerank", {"query": QUERY, "texts": DOCS, "top_n": 2})
    assert mixed.status_code == 422 and "top_n" in mixed.json()["error"]


def test_rank_fields_read_structured_documents(server, tiny_ce):
    docs = [{"title": "Berlin", "body": "3.5 million inhabitants", "id": 7}, {"title": "Water", "body": "boils"}]
    r = server.post("/v1/rerank", {"query": QUERY, "documents": docs, "rank_fields": ["title", "body"],
                                   "return_documents": True})
    assert r.status_code == 200
    texts = ["title: Berlin\nbody: 3.5 million inhabitants", "title: Water\nbody: boils"]
    probs = expected_probs(tiny_ce, docs=texts)
    results = r.json()["results"]
    assert [x["relevance_score"] for x in results] == pytest.approx(sorted(probs, reverse=True))
    assert results[[x["index"] for x in results].index(0)]["document"] == docs[0]  # returned as sent
    missing = server.post("/v1/rerank", {"query": QUERY, "documents": [{"title": "Berlin"}]})
    assert missing.status_code == 422 and "rank_fields" in missing.json()["error"]
    none = server.post("/v1/rerank", {"query": QUERY, "documents": [{"x": "y"}], "rank_fields": ["title"]})
    assert none.status_code == 422 and "none of the rank_fields" in none.json()["error"]


def test_unknown_fields_stay_422(server):
    for path, body in (("/v1/rerank", {"query": QUERY, "documents": DOCS, "top_k": 2}),
                       ("/v2/rerank", {"query": QUERY, "documents": DOCS, "texts": DOCS}),
                       ("/score", {"text_1": QUERY, "text_2": DOCS, "query": QUERY})):
        r = server.post(path, body)
        assert r.status_code == 422, (path, r.text)
        assert json.loads(r.text)["error_type"] == "validation_error"
