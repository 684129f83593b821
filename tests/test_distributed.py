"""Scale-out on Ray, on a real local Ray runtime: batch reranking equals the single process (also when a
worker is killed mid-job), dense index embedding equals the local build, and a Ray Serve deployment answers
a Cohere-shaped request with the offline engine's scores. Skipped without the [ray] extra."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from crossrank import CrossEncoder
from crossrank.errors import BackendUnavailableError, InvalidInputError


def test_without_ray_the_error_names_the_extra(monkeypatch):
    from crossrank.distributed.runtime import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    with pytest.raises(BackendUnavailableError, match=r"\[ray\] extra"):
        import_ray()


def test_an_unreachable_address_is_a_clear_error_within_seconds():
    from crossrank.distributed.runtime import RayConfig, _probe

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match="cannot reach the Ray cluster"):
        _probe(f"127.0.0.1:{port}")
    assert time.perf_counter() - start < 10
    with pytest.raises(InvalidInputError, match="not 'auto'"):
        _probe("no-port-here")
    with pytest.raises(InvalidInputError, match="threads per worker"):
        RayConfig(threads_per_worker=0)
    with pytest.raises(InvalidInputError, match="blocks in flight"):
        RayConfig(blocks_in_flight=0)


ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'crossrank[ray]')")


@pytest.fixture(scope="module")
def ray_runtime():
    from crossrank.distributed.runtime import RayConfig, connect

    module = connect(RayConfig())
    yield module
    module.shutdown()


def make_collection(tmp_path, queries: int = 6, docs_per_query: int = 25):
    """A BEIR-style corpus and queries and a first-stage run (TREC) with a tail below the depth."""
    rng = np.random.default_rng(0)
    words = "protein cell river city energy market music brain heart water solar policy".split()
    corpus, run_lines = {}, []
    for q in range(queries):
        for rank in range(docs_per_query):
            doc = f"d{q}-{rank}"
            corpus[doc] = " ".join(rng.choice(words, size=int(rng.integers(3, 60))))
            run_lines.append(f"q{q} Q0 {doc} {rank + 1} {100 - rank} bm25")
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                                   for d, t in corpus.items()))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{q}", "text": " ".join(words[q:q + 3])})
                                                    + "\n" for q in range(queries)))
    (tmp_path / "run.trec").write_text("\n".join(run_lines) + "\n")
    return tmp_path


def read_trec(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(r[0], r[2]) for r in rows], np.array([float(r[4]) for r in rows])


def cli(args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "crossrank.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def test_rerank_run_on_ray_writes_the_single_process_run(ray_runtime, tiny_model, tmp_path):
    data = make_collection(tmp_path)
    common = ["rerank-run", "--corpus", str(data / "corpus.jsonl"), "--queries", str(data / "queries.jsonl"),
              "--run", str(data / "run.trec"), "--depth", "20", "--model", str(tiny_model), "--no-progress"]
    local = cli([*common, "-o", str(tmp_path / "local.trec")])
    assert local.returncode == 0, local.stderr
    # The CLI joins this test's cluster by address (as it would join a real one), two 1-thread workers,
    # small blocks so that both workers get several.
    address = ray_runtime.get_runtime_context().gcs_address
    distributed = cli([*common, "-o", str(tmp_path / "ray.trec"), "--ray", "--ray-address", address,
                       "--workers", "2", "--threads-per-worker", "1"])
    assert distributed.returncode == 0, distributed.stderr
    local_rows, local_scores = read_trec(tmp_path / "local.trec")
    ray_rows, ray_scores = read_trec(tmp_path / "ray.trec")
    assert ray_rows == local_rows  # same documents, same order, tail below the depth included
    assert len(ray_rows) == 6 * 25
    assert np.allclose(ray_scores, local_scores, atol=1e-5)


def test_python_api_and_a_worker_killed_mid_job_give_the_same_scores(ray_runtime, tiny_model):
    import psutil

    from crossrank.distributed import RayConfig, RayScorer, ScorerSpec

    pairs = [(f"query {i % 9}", "word " * (5 + i % 40) + str(i)) for i in range(1500)]
    expected = CrossEncoder(str(tiny_model)).score(pairs)
    killed = []

    def kill_one_worker(done: int) -> None:
        if killed:
            return
        for proc in psutil.process_iter(["pid", "name", "cmdline"]):
            title = " ".join(proc.info["cmdline"] or []) + (proc.info["name"] or "")
            if "MapWorker" in title and "PairScoringActor" in title:
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return

    scorer = RayScorer(ScorerSpec(str(tiny_model)), RayConfig(workers=2, block_pairs=50))
    scores = scorer.score(pairs, progress=kill_one_worker)
    assert killed, "no Ray worker process was found to kill"
    assert scores.shape == (1500,)
    assert np.allclose(scores, expected, atol=1e-5)


def test_score_dataset_adds_a_score_column_and_keeps_the_others(ray_runtime, tiny_model):
    from crossrank.distributed import RayConfig, ScorerSpec, score_dataset

    rows = [{"qid": f"q{i % 3}", "docid": f"d{i}", "query": f"topic {i % 3}", "text": f"passage {i} " * (i % 7 + 1)}
            for i in range(60)]
    scored = score_dataset(ray_runtime.data.from_items(rows), ScorerSpec(str(tiny_model)),
                           RayConfig(workers=1, block_pairs=16)).take_all()
    by_doc = {row["docid"]: row for row in scored}
    assert len(by_doc) == 60 and set(by_doc["d5"]) == {"qid", "docid", "query", "text", "score"}
    expected = CrossEncoder(str(tiny_model)).score([(r["query"], r["text"]) for r in rows])
    assert np.allclose([by_doc[r["docid"]]["score"] for r in rows], expected, atol=1e-5)


def test_dense_index_embedded_on_ray_equals_the_local_build(ray_runtime, tiny_bi_encoder, tmp_path):
    from crossrank.distributed import RayConfig, RayEncoder
    from crossrank.retrieval.bm25 import BM25Settings
    from crossrank.retrieval.index import CollectionIndex, IndexSettings
    from crossrank.retrieval.retriever import Retriever
    from crossrank.data.formats import read_corpus

    data = make_collection(tmp_path, queries=4, docs_per_query=30)
    documents = list(read_corpus(data / "corpus.jsonl").values())
    settings = IndexSettings(BM25Settings(), str(tiny_bi_encoder))
    local = CollectionIndex.create(tmp_path / "local", settings)
    local.replace_all(documents)
    remote = CollectionIndex.create(tmp_path / "ray", settings)
    remote.replace_all(documents, encoder=RayEncoder(str(tiny_bi_encoder), config=RayConfig(workers=2, block_pairs=16)))
    local_vectors = np.asarray(local.dense().embeddings)
    ray_vectors = np.asarray(remote.dense().embeddings)
    assert ray_vectors.shape == local_vectors.shape == (120, local_vectors.shape[1])
    assert np.allclose(ray_vectors, local_vectors, atol=1e-5)
    for query in ("protein cell", "solar energy market"):
        assert [c.id for c in Retriever(remote, "dense").retrieve(query, 10)] == \
               [c.id for c in Retriever(local, "dense").retrieve(query, 10)]


def test_a_ray_serve_deployment_answers_a_cohere_request_with_the_offline_scores(ray_runtime, tiny_model):
    import httpx
    from ray import serve

    from crossrank.distributed import RayConfig, ScorerSpec
    from crossrank.distributed.serving import ReplicaSettings, serve_on_ray
    from crossrank.server.settings import ServerSettings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = ServerSettings(port=port, api_key="secret-key")
    serve_on_ray(ScorerSpec(str(tiny_model)), settings, RayConfig(), ReplicaSettings(replicas=2), blocking=False)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300  # generous: on a busy 2-core machine two replicas start slowly
        healthy = False
        while time.time() < deadline and not healthy:  # replicas load their model in the background
            try:
                healthy = httpx.get(f"{base}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert healthy, "the Serve deployment never answered /health with 200"
        documents = ["Berlin has 3.5 million inhabitants.", "The river is long.", "Museums in Berlin."]
        body = {"model": "any", "query": "population of berlin", "documents": documents, "top_n": 3}
        assert httpx.post(f"{base}/v1/rerank", json=body, timeout=30).status_code == 401  # auth carries over
        reply = httpx.post(f"{base}/v1/rerank", json=body, headers={"Authorization": "Bearer secret-key"}, timeout=30)
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
        offline = CrossEncoder(str(tiny_model)).score([(body["query"], d) for d in documents])
        assert [r["index"] for r in results] == sorted(range(3), key=lambda i: (-offline[i], i))
        for item in results:  # Cohere's relevance_score: the sigmoid of the model's score
            assert item["relevance_score"] == pytest.approx(1 / (1 + np.exp(-offline[item["index"]])), abs=1e-6)
        tei = httpx.post(f"{base}/rerank", json={"query": body["query"], "texts": documents, "raw_scores": True},
                         headers={"Authorization": "Bearer secret-key"}, timeout=30)  # the TEI route too
        assert tei.status_code == 200, tei.text
        raw = tei.json()
        assert [x["score"] for x in sorted(raw, key=lambda x: x["index"])] == pytest.approx(offline.tolist(),
                                                                                         abs=1e-5)
        bad = httpx.post(f"{base}/v1/rerank", json={"query": "", "documents": []},
                         headers={"Authorization": "Bearer secret-key"}, timeout=30)
        assert bad.status_code == 422 and "error" in bad.json()  # the same error mapping
    finally:
        serve.shutdown()
