"""Fast CPU backends: ONNX Runtime fp32 and int8 (exported, cached), torch bfloat16, and what is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from crossrank import CrossEncoder
from crossrank.errors import BackendUnavailableError, ModelLoadError
from texts import varied_pairs

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")

PAIRS = varied_pairs(160)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossrank.cli.app", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture()
def model_copy(tiny_model, tmp_path) -> Path:
    """A private copy of the tiny model, so each test starts with an empty export cache."""
    target = tmp_path / "model"
    shutil.copytree(tiny_model, target, ignore=shutil.ignore_patterns(".crossrank-exports"))
    return target


@pytest.fixture(scope="module")
def reference(tiny_model) -> np.ndarray:
    return CrossEncoder(tiny_model).score(PAIRS)


def test_onnx_float32_equals_torch_and_is_batch_invariant(tiny_model, reference):
    onnx = CrossEncoder(tiny_model, backend="onnx", dtype="float32")
    assert (onnx.backend_name, onnx.dtype) == ("onnx", "float32")
    scores = onnx.score(PAIRS)
    assert np.abs(scores - reference).max() < 1e-4
    # The same pairs in other batch compositions: one by one, and in large mixed batches.
    alone = np.array([onnx.score([pair])[0] for pair in PAIRS[:24]])
    assert np.abs(alone - scores[:24]).max() < 1e-5
    wide = CrossEncoder(tiny_model, backend="onnx", dtype="float32", batch_tokens=65536).score(PAIRS)
    assert np.abs(wide - scores).max() < 1e-5


def test_int8_and_bfloat16_stay_close_to_float32(tiny_model, reference):
    """Stated tolerances on the tiny random model (a trained model drifts far less: see the benchmark)."""
    for backend, dtype, max_diff, min_rho in (("onnx", "int8", 0.3, 0.95), ("torch", "bfloat16", 0.1, 0.98)):
        scores = CrossEncoder(tiny_model, backend=backend, dtype=dtype).score(PAIRS)
        assert scores.dtype == np.float32
        assert np.abs(scores - reference).max() < max_diff, (backend, dtype)
        assert spearmanr(scores, reference)[0] > min_rho, (backend, dtype)


def test_export_folder_loads_by_itself_and_the_cli_uses_it(model_copy, tmp_path, reference):
    out = tmp_path / "exported"
    done = cli("export", model_copy, "--dtype", "float32", "--output", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["agreement"]["passed"] and report["agreement"]["spearman"] > 0.9999
    manifest = json.loads((out / "crossrank-export.json").read_text())
    assert manifest["backend"] == "onnx" and manifest["dtype"] == "float32" and manifest["opset"] >= 17
    assert len(manifest["source_weights_sha256"]) == 64 and manifest["versions"]["onnxruntime"]
    assert manifest["cls_only_last_layer"] is True
    assert not list(out.glob("*.safetensors")) and (out / "tokenizer.json").is_file()
    ce = CrossEncoder(out)  # no backend named: the manifest decides
    assert (ce.backend_name, ce.dtype) == ("onnx", "float32")
    assert np.abs(ce.score(PAIRS) - reference).max() < 1e-4
    line = json.dumps({"query": PAIRS[0][0], "documents": [PAIRS[0][1], PAIRS[1][1]]})
    ranked = subprocess.run([sys.executable, "-m", "crossrank.cli.app", "rerank", "--model", str(out)], input=line,
                            capture_output=True, text=True, timeout=300)
    assert ranked.returncode == 0, ranked.stderr
    scores = {r["index"]: r["score"] for r in json.loads(ranked.stdout)["results"]}
    assert scores[0] == pytest.approx(float(ce.score([PAIRS[0]])[0]), abs=1e-5)
    with pytest.raises(BackendUnavailableError, match="is an export for backend='onnx' dtype='float32'"):
        CrossEncoder(out, backend="torch")


def test_an_exported_graph_that_changed_is_refused(model_copy, tmp_path):
    out = tmp_path / "exported"
    assert cli("export", model_copy, "--dtype", "float32", "--output", out).returncode == 0
    flip_a_byte(out / "model.onnx")
    with pytest.raises(ModelLoadError, match="does not match the SHA-256"):
        CrossEncoder(out)
    done = cli("rerank", "--model", out)
    assert done.returncode == 4 and "SHA-256" in done.stderr


def test_first_use_exports_once_then_reuses_and_rebuilds_a_bad_cache(model_copy):
    first = CrossEncoder(model_copy, backend="onnx", dtype="int8")
    entries = [p for p in (model_copy / ".crossrank-exports").iterdir() if p.is_dir()]
    assert len(entries) == 1
    entry = entries[0]
    graph_time = (entry / "model.onnx").stat().st_mtime_ns
    expected = first.score(PAIRS[:20])
    second = CrossEncoder(model_copy, backend="onnx", dtype="int8")
    assert (entry / "model.onnx").stat().st_mtime_ns == graph_time  # reused, not exported again
    assert np.array_equal(second.score(PAIRS[:20]), expected)
    # Damaged: a flipped byte in the graph. Rebuilt, and scores are right again.
    data = bytearray((entry / "model.onnx").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (entry / "model.onnx").write_bytes(bytes(data))
    third = CrossEncoder(model_copy, backend="onnx", dtype="int8")
    assert np.allclose(third.score(PAIRS[:20]), expected, atol=1e-6)
    # Foreign: a manifest that describes other weights. Rebuilt too.
    manifest = json.loads((entry / "crossrank-export.json").read_text())
    manifest["source_weights_sha256"] = "0" * 64
    (entry / "crossrank-export.json").write_text(json.dumps(manifest))
    CrossEncoder(model_copy, backend="onnx", dtype="int8")
    assert json.loads((entry / "crossrank-export.json").read_text())["source_weights_sha256"] != "0" * 64
    # Stale: other weights in the folder get another cache entry, never the old graph.
    from safetensors.torch import load_file, save_file

    weights = load_file(model_copy / "model.safetensors")
    name = next(k for k in weights if "classifier" in k and k.endswith("bias"))
    weights[name] = weights[name] + 1.0
    save_file(weights, model_copy / "model.safetensors")
    changed = CrossEncoder(model_copy, backend="onnx", dtype="int8").score(PAIRS[:20])
    assert np.allclose(changed, expected + 1.0, atol=1e-4)
    assert len([p for p in (model_copy / ".crossrank-exports").iterdir() if p.is_dir()]) == 2


def _make_read_only(folder: Path) -> None:
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores modes: the immutable attribute binds root too
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
            folder.chmod(0o755)
            pytest.skip("cannot make a folder read-only for this user")


def test_a_read_only_model_folder_uses_the_user_cache(model_copy, tmp_path):
    home = tmp_path / "home"
    _make_read_only(model_copy)
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from crossrank import CrossEncoder; "
             "ce = CrossEncoder(sys.argv[1], backend='onnx', dtype='float32'); print(ce.score([('a', 'b')])[0])",
             str(model_copy)], capture_output=True, text=True, timeout=300, env={**os.environ, "CROSSRANK_HOME": str(home)})
    finally:
        subprocess.run(["chattr", "-i", str(model_copy)], capture_output=True)
        model_copy.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert not (model_copy / ".crossrank-exports").exists()
    assert len(list((home / "exports").glob("onnx-float32-*/model.onnx"))) == 1


def test_two_processes_exporting_at_once_both_get_a_good_graph(model_copy):
    code = ("import sys; from crossrank import CrossEncoder; "
            "print(float(CrossEncoder(sys.argv[1], backend='onnx', dtype='int8').score([('berlin', 'museum')])[0]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(model_copy)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    entries = [p for p in (model_copy / ".crossrank-exports").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not list(model_copy.glob(".crossrank-exports/.*tmp*"))


def test_the_drift_guard_warns_and_strict_fails(model_copy, tmp_path):
    """Below the thresholds (set above what int8 reaches): a warning, or exit 4 and nothing written."""
    bar = ("--min-spearman", "0.999999")
    done = cli("export", model_copy, "--dtype", "int8", "--output", tmp_path / "loose", *bar)
    assert done.returncode == 0 and "drifts from fp32" in done.stderr
    agreement = json.loads(done.stdout)["agreement"]
    assert agreement["passed"] is False and agreement["thresholds"] == {"top10_overlap": 0.9, "spearman": 0.999999}
    done = cli("export", model_copy, "--dtype", "int8", "--output", tmp_path / "strict", "--strict", *bar)
    assert done.returncode == 4 and "--strict" in done.stderr
    assert not (tmp_path / "strict").exists() and not list(tmp_path.glob(".strict*"))


@pytest.mark.parametrize("backend,dtype,device,message", [
    ("torch", "int8", "cpu", "int8 runs on backend='onnx'"),
    ("onnx", "bfloat16", "cpu", "supports float32 and int8"),
    ("torch", "float16", "cpu", "no fast CPU kernels"),
    ("torch", "float8", "cpu", "unknown dtype"),
    ("tensorrt", "float32", "cpu", "unknown backend"),
    ("openvino", "bfloat16", "cpu", "supports float32 and int8"),
    ("openvino", "float16", "cpu", "supports float32 and int8"),
])
def test_unsupported_combinations_say_what_works(tiny_model, backend, dtype, device, message):
    with pytest.raises(BackendUnavailableError, match=message) as error:
        CrossEncoder(tiny_model, backend=backend, dtype=dtype, device=device)
    assert "what works" in str(error.value)


def test_a_missing_extra_is_named(tiny_model, tmp_path):
    code = ("import sys; sys.modules['onnxruntime'] = None\n"
            "from crossrank import CrossEncoder\n"
            "CrossEncoder(sys.argv[1], backend='onnx', dtype='float32')")
    done = subprocess.run([sys.executable, "-c", code, str(tiny_model)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "crossrank[onnx]" in done.stderr
    done = cli("rerank", "--model", tiny_model, "--backend", "onnx", "--dtype", "int8",
               env={"PYTHONPATH": str(_hiding_onnxruntime(tmp_path))})
    assert done.returncode == 4 and "crossrank[onnx]" in done.stderr


def _hiding_onnxruntime(tmp_path: Path) -> Path:
    """A folder whose onnxruntime package fails to import, put first on PYTHONPATH for a CLI run."""
    folder = tmp_path / "hide"
    (folder / "onnxruntime").mkdir(parents=True)
    (folder / "onnxruntime" / "__init__.py").write_text("raise ImportError('onnxruntime hidden for this test')\n")
    return folder


def test_every_scoring_verb_takes_backend_and_dtype(tiny_model, tmp_path, reference):
    for verb in ("rerank", "rerank-run", "search", "experiment", "serve"):
        done = cli(verb, "--help")
        assert "--backend" in done.stdout and "--dtype" in done.stdout, verb
    # rerank-run with ONNX fp32 writes the run torch writes.
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n"
                              for i, (_, d) in enumerate(PAIRS[:12])))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": PAIRS[0][0]}) + "\n")
    (tmp_path / "run.trec").write_text("".join(f"q1 Q0 d{i} {i + 1} {20 - i} bm25\n" for i in range(12)))
    runs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.trec"
        done = cli("rerank-run", "--model", tiny_model, "--corpus", corpus, "--queries", tmp_path / "queries.jsonl",
                   "--run", tmp_path / "run.trec", "--output", out, "--backend", backend, "--dtype", "float32",
                   "--no-progress")
        assert done.returncode == 0, done.stderr
        runs[backend] = [line.split() for line in out.read_text().splitlines()]
    assert [r[2] for r in runs["torch"]] == [r[2] for r in runs["onnx"]]
    assert np.allclose([float(r[4]) for r in runs["torch"]], [float(r[4]) for r in runs["onnx"]], atol=1e-4)


def test_serve_reads_the_backend_from_the_environment(tiny_model, reference):
    from servers import Server

    srv = Server(tiny_model, env={"CROSSRANK_BACKEND": "onnx", "CROSSRANK_DTYPE": "float32"})
    try:
        body = srv.post("/rerank", {"query": PAIRS[0][0], "texts": [d for _, d in PAIRS[:8]], "raw_scores": True})
        assert body.status_code == 200
        got = {r["index"]: r["score"] for r in body.json()}
        expected = CrossEncoder(tiny_model).score([(PAIRS[0][0], d) for _, d in PAIRS[:8]])
        assert np.allclose([got[i] for i in range(8)], expected, atol=1e-4)
        assert any("onnx" in line for line in srv.lines)  # the load log names the backend
    finally:
        srv.stop()


def test_export_measures_agreement_on_the_users_data(model_copy, tmp_path):
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    docs = [d for _, d in PAIRS[:30]]
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n"
                                               for i, t in enumerate(docs)))
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": PAIRS[i * 10][0]}) + "\n"
                                                for i in range(3)))
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                             "".join(f"q{i}\td{i * 10 + j}\t1\n" for i in range(3) for j in range(3)))
    done = cli("export", model_copy, "--dtype", "float32", "--output", tmp_path / "out", "--calibration-data", data)
    assert done.returncode == 0, done.stderr
    agreement = json.loads(done.stdout)["agreement"]
    assert agreement["source"] == "beir, judged documents" and agreement["pairs"] == 27 and agreement["passed"]
    done = cli("export", model_copy, "--output", tmp_path / "bad", "--calibration-data", tmp_path / "missing")
    assert done.returncode == 5 and "missing" in done.stderr


def test_the_int8_rewrite_is_exact_in_float32_and_keeps_the_cls_rows_out_of_int8(tiny_model, tmp_path):
    """The first-token split, the smoothing and the zeroed padding rows change nothing before quantization;
    after it, the [CLS] rows, the [CLS]-only last layer and the head are the only fp32 matmuls."""
    import onnx
    import torch

    from crossrank.engine.agreement import builtin_sample
    from crossrank.engine.int8_prep import float32_nodes, prepare_for_int8, sample_batches
    from crossrank.engine.onnx_export import export_onnx
    from crossrank.model.loading import load_model
    from crossrank.model.tokenization import PairTokenizer

    loaded = load_model(tiny_model)
    tokenizer = PairTokenizer(loaded.tokenizer, loaded.max_length)
    sample = builtin_sample()
    rewritten, info = prepare_for_int8(loaded.model, sample_batches(tokenizer, sample.queries, sample.documents))
    assert info["first_token_fp32"] and info["smoothing"]["alpha"] == 0.75
    smoothed = [m for m in rewritten.modules() if hasattr(m, "inverse_scales")]
    assert smoothed and any(float((m.inverse_scales - 1).abs().max()) > 0.01 for m in smoothed)
    for inputs in sample_batches(tokenizer, [q for q, _ in PAIRS[:40]], [d for _, d in PAIRS[:40]], 512):
        with torch.inference_mode():
            before = loaded.model.float()(**inputs).logits
            after = rewritten(**inputs).logits
        assert inputs["attention_mask"].min() == 0 or len(inputs["input_ids"]) == 1  # padded batches are covered
        assert torch.allclose(before, after, atol=1e-5)

    folder = export_onnx(loaded, tmp_path / "int8", "int8").folder
    graph = onnx.load(str(folder / "model.onnx"))
    kept = float32_nodes(graph)
    layers = loaded.model.config.num_hidden_layers
    # 6 first-token rows per layer but the last (key and value only), 4 [CLS]-only linears, pooler, classifier.
    assert len(kept) == 6 * (layers - 1) + 2 + 4 + 2
    quantized = [n for n in graph.graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert len(quantized) >= 6 * (layers - 1) + 2  # every other-row linear, none skipped for shared weights
    assert not [n.name for n in quantized if "pooler" in n.name or "classifier" in n.name]  # the head is fp32
    assert not [n for n in graph.graph.node if n.op_type == "Identity" and n.input[0] in
                {t.name for t in graph.graph.initializer}]


def test_bfloat16_on_cpu_is_autocast_with_a_float32_head(tiny_model, reference):
    import torch

    ce = CrossEncoder(tiny_model, dtype="bfloat16")
    model = ce.engine.backend.model
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32 under autocast
    scores = ce.score(PAIRS)
    assert not np.array_equal(scores, reference)  # the matmuls did run in bf16
    assert np.abs(scores - reference).max() < 0.1


def test_openvino_float32_equals_torch_and_int8_stays_close(model_copy, tmp_path, reference):
    """OpenVINO runs the same exported graph: fp32 within 1e-4 of torch and batch invariant; int8 (static,
    calibrated on the sample) within the tiny model's int8 tolerance; an export folder loads by itself and a
    changed weights file is refused."""
    pytest.importorskip("openvino", reason="the [openvino] extra is not installed")
    fp32 = CrossEncoder(model_copy, backend="openvino", dtype="float32")
    assert (fp32.backend_name, fp32.dtype) == ("openvino", "float32")
    scores = fp32.score(PAIRS)
    assert scores.dtype == np.float32 and np.abs(scores - reference).max() < 1e-4
    alone = np.array([fp32.score([pair])[0] for pair in PAIRS[:16]])
    assert np.abs(alone - scores[:16]).max() < 1e-5
    assert CrossEncoder(model_copy, backend="openvino", dtype="float32").score(PAIRS[:8]) == pytest.approx(
        scores[:8], abs=1e-6)  # the cached export is reused
    assert len(list((model_copy / ".crossrank-exports").glob("openvino-float32-*"))) == 1

    out = tmp_path / "ov-int8"
    done = cli("export", model_copy, "--backend", "openvino", "--dtype", "int8", "--output", out)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "crossrank-export.json").read_text())
    assert manifest["backend"] == "openvino" and manifest["graph"] == "model.xml"
    assert manifest["quantization"]["method"].startswith("NNCF static") and manifest["versions"]["openvino"]
    int8 = CrossEncoder(out)
    assert (int8.backend_name, int8.dtype) == ("openvino", "int8")
    quantized = int8.score(PAIRS)
    # Static ranges fitted on the sample are coarser than dynamic ones on this random model, whose head is
    # scaled 20x (scores spread over several units): a looser bound on the score, the same on the order.
    assert np.abs(quantized - reference).max() < 1.5 and spearmanr(quantized, reference)[0] > 0.95
    assert not np.array_equal(quantized, scores)
    flip_a_byte(out / "model.bin")
    with pytest.raises(ModelLoadError, match="model.bin is missing or does not match"):
        CrossEncoder(out)


def test_a_missing_openvino_extra_is_named(tiny_model):
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from crossrank import CrossEncoder\n"
            "CrossEncoder(sys.argv[1], backend='openvino', dtype='float32')")
    done = subprocess.run([sys.executable, "-c", code, str(tiny_model)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "crossrank[openvino]" in done.stderr
