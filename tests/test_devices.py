"""The engine's device work: several devices, tokenization overlapped with the forward pass, memory-derived
batch budgets, splitting a batch that runs out of memory, and memory released on close.

Everything runs on CPU here (two CPU "devices" are two model copies); the CUDA-only tests at the end skip
with a reason where there is no GPU.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch

from crossrank import CrossEncoder
from crossrank.engine.batching import plan_batches
from crossrank.engine.scorer import ScoringEngine, split_by_tokens
from crossrank.engine.token_budget import MAX_GPU_BATCH_TOKENS, LayerShape, bytes_per_token, memory_token_budget
from crossrank.errors import BackendUnavailableError

from texts import varied_pairs

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")


def test_two_devices_give_the_scores_of_one(tiny_model):
    pairs = varied_pairs(90, seed=11) + [("query", "word " * 400)]
    one = CrossEncoder(str(tiny_model), batch_tokens=512)
    two = CrossEncoder(str(tiny_model), devices=["cpu", "cpu"], batch_tokens=512)
    assert two.devices == ["cpu", "cpu"] and "devices=['cpu', 'cpu']" in repr(two)
    assert two.backends[0].model is not two.backends[1].model  # one copy of the weights per device
    expected = one.score(pairs)
    got = two.score(pairs)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # the same batches, only shared out
    assert two.last_stats.batches == one.last_stats.batches
    assert two.last_stats.truncated_pairs == one.last_stats.truncated_pairs > 0
    # The CLI's comma-separated --device means the same.
    np.testing.assert_allclose(CrossEncoder(str(tiny_model), device="cpu,cpu", batch_tokens=512).score(pairs),
                               expected, rtol=0, atol=1e-6)
    with pytest.raises(BackendUnavailableError, match="names no device"):
        CrossEncoder(str(tiny_model), devices=[])
    with pytest.raises(BackendUnavailableError, match="backend='torch'"):
        CrossEncoder(str(tiny_model), devices=["cpu", "cpu"], backend="onnx")


def test_batches_are_shared_between_devices_by_padded_tokens():
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 300, size=500)
    batches = plan_batches(lengths, 2048)
    shares = split_by_tokens(batches, lengths, 3)
    assigned = np.sort(np.concatenate([np.concatenate(share) for share in shares]))
    assert np.array_equal(assigned, np.arange(500))  # every pair once
    load = [sum(len(b) * int(lengths[b].max()) for b in share) for share in shares]
    assert max(load) - min(load) <= 2048  # within one batch of each other
    assert split_by_tokens(batches[:1], lengths, 3)[1:] == [[], []]  # fewer batches than devices: some idle


def test_overlapped_tokenization_in_chunks_scores_like_one_pass(tiny_model):
    ce = CrossEncoder(str(tiny_model))
    pairs = varied_pairs(60, seed=5) + [("a long query " * 40, "word " * 500)] * 3
    queries, documents = [q for q, _ in pairs], [d for _, d in pairs]
    whole, whole_stats = ScoringEngine(ce.tokenizer, ce.backend, 1024).score(queries, documents)
    seen = []
    chunked = ScoringEngine(ce.tokenizer, ce.backend, 1024, overlap_tokenization=True, chunk_pairs=7)
    scores, stats = chunked.score(queries, documents, progress=seen.append)
    np.testing.assert_allclose(scores, whole, rtol=0, atol=1e-5)
    assert sum(seen) == len(pairs)
    # Truncation is counted over every chunk: never silent.
    assert (stats.truncated_pairs, stats.truncated_queries, stats.tokens_dropped) == \
        (whole_stats.truncated_pairs, whole_stats.truncated_queries, whole_stats.tokens_dropped) != (0, 0, 0)


class _SmallMemoryBackend:
    """The CPU backend, except that a batch of more than ``limit`` padded tokens raises the error CUDA raises
    when it runs out of memory (a real GPU is not at hand to fill)."""

    def __init__(self, backend, limit: int):
        self.inner, self.limit, self.device, self.failures = backend, limit, backend.device, 0

    def score_batch(self, ids, mask, types):
        if ids.size > self.limit:
            self.failures += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner.score_batch(ids, mask, types)


def test_a_batch_that_runs_out_of_memory_is_split_and_the_budget_lowered(tiny_model, caplog):
    ce = CrossEncoder(str(tiny_model))
    pairs = varied_pairs(120, seed=9)
    queries, documents = [q for q, _ in pairs], [d for _, d in pairs]
    expected, _ = ScoringEngine(ce.tokenizer, ce.backend, 4096).score(queries, documents)
    small = _SmallMemoryBackend(ce.backend, limit=600)
    engine = ScoringEngine(ce.tokenizer, small, 4096)
    with caplog.at_level("WARNING", logger="crossrank"):
        scores, stats = engine.score(queries, documents)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert small.failures >= 1 and engine.batch_tokens <= 2048 and "out of memory" in caplog.text
    assert stats.padded_tokens <= stats.batches * 600  # every batch that ran fitted
    # A single pair that does not fit is an error that says what to do, not a crash or a hang.
    with pytest.raises(BackendUnavailableError, match="single pair.*max_length"):
        ScoringEngine(ce.tokenizer, _SmallMemoryBackend(ce.backend, limit=4), 4096).score(["q"], ["a document"])


def test_the_gpu_batch_budget_follows_free_memory():
    minilm, base = LayerShape(384, 1536, 12), LayerShape(768, 3072, 12)
    assert bytes_per_token(base, 2, 512) == 2 * (6 * 768 + 2 * 3072 + 12 * 512)
    assert memory_token_budget(140 << 30, minilm, 2, 512) == MAX_GPU_BATCH_TOKENS  # an H200: the ceiling
    one_gb = memory_token_budget(1 << 30, base, 2, 512)
    assert one_gb == (1 << 29) // bytes_per_token(base, 2, 512) and 512 < one_gb < MAX_GPU_BATCH_TOKENS
    assert memory_token_budget(1 << 30, base, 4, 512) < one_gb  # fp32 activations take twice the room
    assert memory_token_budget(1 << 20, base, 2, 512) == 512  # nearly full: one full-length pair at a time
    # The worst request the server takes (1,000 documents of 512 tokens) splits into batches within it.
    batches = plan_batches(np.full(1000, 512), one_gb)
    assert sum(len(b) for b in batches) == 1000 and all(len(b) * 512 <= one_gb for b in batches)


def test_close_and_delete_release_the_model(tiny_model):
    ce = CrossEncoder(str(tiny_model))
    weights = weakref.ref(ce.backend.model)
    assert ce.score([("q", "d")]).shape == (1,)
    del ce
    gc.collect()
    assert weights() is None  # nothing keeps the weights alive after the last reference goes
    with CrossEncoder(str(tiny_model)) as ce:
        ce.score([("q", "d")])
    with pytest.raises(BackendUnavailableError, match="closed"):
        ce.score([("q", "d")])
    ce.close()  # closing twice is harmless


def test_default_dtype_is_exact_on_cpu_and_half_on_gpus():
    from crossrank.engine.backends import default_dtype

    assert default_dtype("torch", "cpu") == "float32" and default_dtype("onnx", "cpu") == "float32"
    assert default_dtype("torch", "mps") == "float16"


def test_packed_scores_do_not_depend_on_the_batch(tiny_model):
    pairs = varied_pairs(70, seed=2)
    small = CrossEncoder(str(tiny_model), packed=True, batch_tokens=64).score(pairs)
    large = CrossEncoder(str(tiny_model), packed=True, batch_tokens=100_000).score(pairs)
    alone = np.array([CrossEncoder(str(tiny_model), packed=True).score([p])[0] for p in pairs[:5]])
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-5)
    np.testing.assert_allclose(alone, large[:5], rtol=0, atol=1e-5)


def test_rerank_run_and_serve_take_several_devices(tiny_model, tmp_path):
    from servers import Server

    docs = [d for _, d in varied_pairs(30, seed=12)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n" for i, d in enumerate(docs)))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what do cats eat"}) + "\n")
    (tmp_path / "run.trec").write_text("".join(f"q1 Q0 d{i} {i + 1} {40 - i} bm25\n" for i in range(30)))
    runs = {}
    for device in ("cpu", "cpu,cpu"):
        out = tmp_path / f"{device}.trec"
        done = subprocess.run([sys.executable, "-m", "crossrank.cli.app", "rerank-run", "--model", str(tiny_model),
                               "--corpus", str(corpus), "--queries", str(tmp_path / "queries.jsonl"), "--run",
                               str(tmp_path / "run.trec"), "--output", str(out), "--device", device,
                               "--batch-tokens", "256", "--no-progress"],
                              capture_output=True, text=True, timeout=600, env=dict(os.environ))
        assert done.returncode == 0, done.stderr
        runs[device] = [line.split() for line in out.read_text().splitlines()]
    assert [r[2] for r in runs["cpu"]] == [r[2] for r in runs["cpu,cpu"]]
    np.testing.assert_allclose([float(r[4]) for r in runs["cpu,cpu"]], [float(r[4]) for r in runs["cpu"]], atol=1e-5)

    srv = Server(tiny_model, env={"CROSSRANK_DEVICE": "cpu,cpu", "CROSSRANK_BATCH_TOKENS": "256"})
    try:
        body = srv.post("/rerank", {"query": "what do cats eat", "texts": docs, "raw_scores": True})
        assert body.status_code == 200
        got = {r["index"]: r["score"] for r in body.json()}
        expected = CrossEncoder(str(tiny_model)).score([("what do cats eat", d) for d in docs])
        np.testing.assert_allclose([got[i] for i in range(len(docs))], expected, atol=1e-4)
        assert any('"devices": ["cpu", "cpu"]' in line for line in srv.lines)  # the load log names both
    finally:
        srv.stop()


@needs_cuda
def test_cuda_defaults_to_half_precision_and_a_memory_budget(tiny_model):
    ce = CrossEncoder(str(tiny_model), device="cuda")
    assert ce.dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    assert ce.tokenizer.max_length <= ce.engine.batch_tokens <= MAX_GPU_BATCH_TOKENS
    assert ce.engine.overlap_tokenization
    pairs = varied_pairs(50, seed=3)
    reference = CrossEncoder(str(tiny_model)).score(pairs)
    assert float(np.abs(ce.score(pairs) - reference).max()) < 0.2


@needs_cuda
def test_cuda_packed_matches_padded_and_a_huge_request_fits(tiny_model):
    padded = CrossEncoder(str(tiny_model), device="cuda", dtype="float32")
    packed = CrossEncoder(str(tiny_model), device="cuda", dtype="float32", packed=True)
    pairs = varied_pairs(200, seed=6) + [("q", "word " * 600)] * 1000
    np.testing.assert_allclose(packed.score(pairs), padded.score(pairs), rtol=0, atol=1e-4)


@needs_cuda
def test_cuda_memory_goes_back_on_close(tiny_model):
    torch.cuda.empty_cache()
    before = torch.cuda.memory_reserved()
    ce = CrossEncoder(str(tiny_model), device="cuda")
    ce.score(varied_pairs(100, seed=1))
    assert torch.cuda.memory_reserved() > before
    ce.close()
    assert torch.cuda.memory_reserved() <= before


@needs_two_gpus
def test_two_gpus_give_the_scores_of_one(tiny_model):
    pairs = varied_pairs(300, seed=8)
    one = CrossEncoder(str(tiny_model), device="cuda:0", dtype="float32").score(pairs)
    two = CrossEncoder(str(tiny_model), devices=["cuda:0", "cuda:1"], dtype="float32").score(pairs)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
