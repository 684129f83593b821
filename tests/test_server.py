"""The HTTP service, as a real server process on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import time

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossrank.ranking.results import sigmoid
from servers import AUTH, KEY, Server

@pytest.fixture(scope="module")
def server(tiny_model):
    srv = Server(tiny_model)
    yield srv
    srv.stop()


DOCS = ["Berlin has 3.5 million inhabitants.", "Berlin is known for its museums.", "Water boils at 100 degrees.",
        "protein cell therapy"]


def test_endpoint_shapes_and_scores_equal_the_offline_engine(server, tiny_ce):
    expected = tiny_ce.score([("how many people live in berlin", d) for d in DOCS])
    order = sorted(range(4), key=lambda i: (-expected[i], i))
    for version in ("v1", "v2"):
        r = server.post(f"/{version}/rerank", {"query": "how many people live in berlin",
                                               "documents": DOCS[:2] + [{"text": d} for d in DOCS[2:]],
                                               "top_n": 3, "return_documents": True, "model": "any"})
        assert r.status_code == 200
        body = r.json()
        assert body["meta"]["api_version"]["version"] == version[1] and body["id"]
        assert [x["index"] for x in body["results"]] == order[:3]
        for item in body["results"]:
            assert item["relevance_score"] == pytest.approx(sigmoid(expected[item["index"]]), abs=1e-6)
            assert item["document"]["text"] == DOCS[item["index"]]
        for header in ("x-total-time", "x-queue-time", "x-tokenization-time", "x-inference-time"):
            assert float(r.headers[header]) >= 0
    r = server.post("/rerank", {"query": "how many people live in berlin", "texts": DOCS, "raw_scores": True,
                                "return_text": True})
    assert [x["index"] for x in r.json()] == order
    assert [x["score"] for x in r.json()] == pytest.approx([float(expected[i]) for i in order], abs=1e-5)
    assert r.json()[0]["text"] == DOCS[order[0]]
    r = server.post("/rerank", {"query": "how many people live in berlin", "texts": DOCS})
    assert r.json()[0]["score"] == pytest.approx(sigmoid(expected[order[0]]), abs=1e-6) and "text" not in r.json()[0]


def test_auth_health_metrics_and_openapi(server):
    assert server.post("/v2/rerank", {"query": "q", "documents": ["a"]}, headers={}).status_code == 401
    wrong = server.post("/v2/rerank", {"query": "q", "documents": ["a"]}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error_type"] == "unauthorized"
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert 'crossrank_requests_total{endpoint="/v2/rerank",status="401"}' in metrics
    assert "crossrank_batch_pairs_bucket" in metrics and "crossrank_queue_depth" in metrics
    assert "crossrank_truncated_pairs_total" in metrics
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/rerank", "/v2/rerank", "/rerank", "/health", "/metrics"} <= set(paths)


@pytest.mark.parametrize("path, body, status, error_type", [
    ("/v2/rerank", b'{"query": "q", "documents": [', 400, "invalid_request"),
    ("/v2/rerank", b'{"query": "caf\xe9", "documents": ["a"]}', 400, "invalid_request"),
    ("/v2/rerank", {"query": "", "documents": ["a"]}, 422, "validation_error"),
    ("/v2/rerank", {"query": "q", "documents": []}, 422, "validation_error"),
    ("/v2/rerank", {"query": "q"}, 422, "validation_error"),
    ("/v2/rerank", {"query": 5, "documents": ["a"]}, 422, "validation_error"),
    ("/v2/rerank", {"query": "q", "documents": [7]}, 422, "validation_error"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "top_k": 2}, 422, "validation_error"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "validation_error"),
    ("/rerank", {"query": "q", "passages": ["a"]}, 422, "validation_error"),  # neither texts (TEI) nor documents (vLLM)
    ("/v2/rerank", [1, 2], 422, "validation_error"),
    ("/nowhere", {"query": "q"}, 404, "not_found"),
])
def test_bad_input_gets_a_4xx_json_error_and_the_server_stays_healthy(server, path, body, status, error_type):
    r = server.post(path, body)
    assert r.status_code == status
    assert r.json()["error_type"] == error_type and r.json()["error"]
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_limits_give_413_and_tei_truncate_false_refuses_long_inputs(tiny_model):
    srv = Server(tiny_model, "--max-documents", "3", "--max-document-chars", "50", "--max-body-bytes", "2000")
    try:
        r = srv.post("/v2/rerank", {"query": "q", "documents": ["a"] * 4})
        assert r.status_code == 413 and "3" in r.json()["error"]
        r = srv.post("/v2/rerank", {"query": "q", "documents": ["x" * 51]})
        assert r.status_code == 413 and "document 0" in r.json()["error"]
        r = srv.post("/v2/rerank", {"query": "q", "documents": ["a"], "model": "m" * 3000})
        assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"
        assert srv.post("/v2/rerank", {"query": "q", "documents": ["ok"]}).status_code == 200
    finally:
        srv.stop()
    srv = Server(tiny_model, "--max-length", "16")
    try:
        long = "protein " * 40
        assert srv.post("/rerank", {"query": "q", "texts": [long], "truncate": False}).status_code == 413
        assert srv.post("/rerank", {"query": "q", "texts": [long], "truncate": True}).status_code == 200
        metrics = httpx.get(f"{srv.url}/metrics", headers=AUTH).text
        assert "crossrank_truncated_pairs_total 1.0" in metrics
        r = srv.post("/v2/rerank", {"query": "q", "documents": [long], "max_tokens_per_doc": 4})
        assert r.status_code == 200
    finally:
        srv.stop()


def test_32_concurrent_clients_get_the_offline_scores(server, tiny_ce):
    rng = np.random.default_rng(0)
    words = "protein cell therapy river city museum water energy population novel author".split()
    requests = [(f"query {i} " + " ".join(rng.choice(words, 3)), [" ".join(rng.choice(words, int(n)))
                 for n in rng.integers(1, 40, size=int(rng.integers(1, 12)))]) for i in range(640)]

    def client(chunk):
        with httpx.Client(timeout=120) as http:
            out = []
            for query, docs in chunk:
                r = http.post(f"{server.url}/rerank", json={"query": query, "texts": docs, "raw_scores": True},
                              headers=AUTH)
                assert r.status_code == 200
                out.append({x["index"]: x["score"] for x in r.json()})
            return out

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = [a for part in pool.map(client, [requests[i::32] for i in range(32)]) for a in part]
    ordered = [req for i in range(32) for req in requests[i::32]]
    for (query, docs), got in zip(ordered, answers):
        expected = tiny_ce.score([(query, d) for d in docs])
        assert np.allclose([got[i] for i in range(len(docs))], expected, atol=1e-5)
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    merged = [line for line in metrics.splitlines() if line.startswith("crossrank_batch_requests_bucket")]
    assert any('le="1.0"' in line for line in merged)
    count = float(next(l for l in metrics.splitlines() if l.startswith("crossrank_batch_requests_count")).split()[-1])
    total = float(next(l for l in metrics.splitlines() if l.startswith("crossrank_batch_requests_sum")).split()[-1])
    assert total / count > 1.5  # requests really were merged into shared passes


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(
                               st.sampled_from(["query", "documents", "texts", "top_n", "return_documents",
                                                "raw_scores", "x"]), children, max_size=4), max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["/v1/rerank", "/v2/rerank", "/rerank"]), json_values)
def test_arbitrary_json_never_gets_a_5xx(server, path, body):
    r = server.post(path, body)
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or set(r.json()) == {"error", "error_type"}


def test_overload_gives_429_with_retry_after(tiny_model):
    srv = Server(tiny_model, "--queue-size", "1", "--max-wait-ms", "0")
    try:
        docs = ["protein cell therapy " * 20] * 200
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            responses = list(pool.map(lambda _: srv.post("/rerank", {"query": "q", "texts": docs}), range(24)))
        codes = [r.status_code for r in responses]
        assert 429 in codes and 200 in codes and set(codes) <= {200, 429}
        busy = next(r for r in responses if r.status_code == 429)
        assert busy.headers["retry-after"] == "1" and busy.json()["error_type"] == "overloaded"
    finally:
        srv.stop()


def test_sigterm_past_the_grace_period_refuses_cleanly_and_exits_0(tiny_model):
    srv = Server(tiny_model, "--shutdown-grace", "0.5", "--max-wait-ms", "0")
    docs = ["protein cell therapy in the river city " * 60] * 400
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(srv.post, "/rerank", {"query": "q", "texts": docs}) for _ in range(12)]
        time.sleep(0.5)  # accepted and queued: more work than the grace period allows
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        health = httpx.get(f"{srv.url}/health", timeout=10)  # still listening while it drains: says 503
        late = srv.post("/rerank", {"query": "q", "texts": ["a"]})
        responses = [f.result() for f in futures]
    assert health.status_code == 503 and health.json()["error_type"] == "shutting_down"
    assert late.status_code == 503 and late.headers["retry-after"]
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and 503 in codes, codes
    for r in responses:
        if r.status_code == 503:
            assert r.headers["retry-after"] and r.json()["error_type"] == "shutting_down"
        else:
            assert len(r.json()) == 400
    assert srv.proc.wait(60) == 0
    time.sleep(0.2)
    log = "".join(srv.lines)
    assert "Traceback" not in log and "terminate called" not in log and "inference failed" not in log


def test_lone_surrogates_are_422_on_every_route_before_the_queue(server):
    bodies = [
        ("/v2/rerank", '{"query": "q\\ud800", "documents": ["a"]}'),
        ("/v1/rerank", '{"query": "q", "documents": ["ok", "bad \\udc00 low"]}'),
        ("/v2/rerank", '{"query": "q", "documents": [{"text": "\\ud83d"}], "max_tokens_per_doc": 4}'),
        ("/v2/rerank", '{"query": "\\ud800", "documents": ["a"], "max_tokens_per_doc": 4}'),
        ("/rerank", '{"query": "q", "texts": ["\\ud800"]}'),
        ("/rerank", '{"query": "q", "texts": ["\\ud800"], "truncate": false}'),
        ("/rerank", '{"query": "\\udfff", "texts": ["a"], "raw_scores": true}'),
    ]
    for path, body in bodies:
        r = server.post(path, body)
        assert r.status_code == 422, (path, body, r.text)
        assert r.json()["error_type"] == "validation_error" and "surrogate" in r.json()["error"]
    # A valid surrogate pair (an emoji) is fine.
    assert server.post("/rerank", '{"query": "q \\ud83d\\ude00", "texts": ["a"]}').status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_max_tokens_per_doc_scores_the_cut_text_but_returns_the_original(server, tiny_ce):
    long_doc = "Berlin had a population of 3,520,031 registered inhabitants in an area of 891 square kilometers."
    docs = [long_doc, "Water boils at 100 degrees."]
    body = server.post("/v2/rerank", {"query": "berlin population", "documents": docs, "max_tokens_per_doc": 5,
                                      "return_documents": True}).json()
    cut = tiny_ce.tokenizer.cut_document(long_doc, 5)
    assert cut != long_doc and long_doc.startswith(cut)
    scored = [tiny_ce.tokenizer.cut_document(d, 5) for d in docs]
    expected = tiny_ce.probability(tiny_ce.score([("berlin population", d) for d in scored]))
    for result in body["results"]:
        assert result["document"]["text"] == docs[result["index"]]
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-6)


def test_docs_are_off_by_default_and_metrics_can_be_public(server, tiny_model):
    assert httpx.get(f"{server.url}/docs").status_code == 404  # Swagger UI needs a CDN: blank offline
    assert httpx.get(f"{server.url}/openapi.json").status_code == 200
    srv = Server(tiny_model, "--public-metrics", "--docs")
    try:
        assert httpx.get(f"{srv.url}/metrics").status_code == 200
        assert httpx.get(f"{srv.url}/docs").status_code == 200
        assert srv.post("/v2/rerank", {"query": "q", "documents": ["a"]}, headers={}).status_code == 401
    finally:
        srv.stop()


def test_a_utf8_api_key_matches_and_left_truncation_is_refused(tiny_model):
    srv = Server(tiny_model, "--api-key", "clé-секрет")
    try:
        body = json.dumps({"query": "q", "texts": ["a"]})
        ok = httpx.post(f"{srv.url}/rerank", content=body, timeout=30,
                        headers={"content-type": "application/json", "authorization": "Bearer clé-секрет".encode()})
        assert ok.status_code == 200, ok.text
        latin1 = httpx.post(f"{srv.url}/rerank", content=body, timeout=30, headers={
            "content-type": "application/json", "authorization": "Bearer clé".encode("latin-1")})
        assert latin1.status_code == 401
        left = httpx.post(f"{srv.url}/rerank", timeout=30, content=json.dumps(
            {"query": "q", "texts": ["a"], "truncation_direction": "left"}), headers={
            "content-type": "application/json", "authorization": "Bearer clé-секрет".encode()})
        assert left.status_code == 422 and "left" in left.json()["error"]
    finally:
        srv.stop()


def test_a_request_that_fails_in_a_shared_pass_fails_alone(tiny_ce):
    """The pass is retried request by request, so good requests merged with a failing one still succeed."""
    import asyncio

    from crossrank.server.batcher import InferenceWorker
    from crossrank.server.errors import InferenceFailed

    class FailsOnPoison:  # the real model, made to fail on one marked document
        def score_with_stats(self, queries, documents, progress=None):
            if "POISON" in documents:
                raise RuntimeError("poisoned input")
            return tiny_ce.score_with_stats(queries, documents, progress)

    worker = InferenceWorker(FailsOnPoison(), queue_size=64, max_wait_ms=200, max_pairs_per_pass=4096)
    worker.start()

    async def run():
        requests = [["doc one", "doc two"], ["POISON", "doc"], ["doc three"], ["doc four", "doc five"]]
        return await asyncio.gather(*(worker.score(["q"] * len(d), d, 30) for d in requests),
                                    return_exceptions=True)

    try:
        results = asyncio.run(run())
    finally:
        worker.stop()
    assert isinstance(results[1], InferenceFailed)
    for docs, result in zip([["doc one", "doc two"], ["doc three"], ["doc four", "doc five"]],
                            [results[0], results[2], results[3]]):
        scored, _ = result
        assert scored.scored_by is None  # one model: no roles
        np.testing.assert_allclose(scored.scores, tiny_ce.score([("q", d) for d in docs]), atol=1e-5)


def test_sigterm_with_requests_in_flight_loses_none(tiny_model):
    srv = Server(tiny_model)
    docs = ["protein cell therapy " * 30] * 150
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(srv.post, "/rerank", {"query": "q", "texts": docs}) for _ in range(8)]
        time.sleep(0.5)  # the requests are accepted and queued
        srv.proc.send_signal(signal.SIGTERM)
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 8
    assert all(len(r.json()) == 150 for r in responses)
    assert srv.proc.wait(60) == 0


def test_the_official_cohere_client_works_unchanged(server, tiny_ce):
    cohere = pytest.importorskip("cohere")
    query = "how many people live in berlin"
    expected = tiny_ce.score([(query, d) for d in DOCS])
    v2 = cohere.ClientV2(api_key=KEY, base_url=server.url).rerank(model="crossrank", query=query, documents=DOCS,
                                                                  top_n=2)
    assert [r.index for r in v2.results] == sorted(range(4), key=lambda i: (-expected[i], i))[:2]
    assert v2.results[0].relevance_score == pytest.approx(sigmoid(expected[v2.results[0].index]), abs=1e-6)
    v1 = cohere.Client(api_key=KEY, base_url=server.url).rerank(model="crossrank", query=query, documents=DOCS,
                                                                return_documents=True)
    assert len(v1.results) == 4 and v1.results[0].document.text == DOCS[v1.results[0].index]
    with pytest.raises(Exception):
        cohere.ClientV2(api_key="wrong", base_url=server.url).rerank(model="m", query=query, documents=DOCS)
