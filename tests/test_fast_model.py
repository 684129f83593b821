"""The "fast" fallback: a bi-encoder scored as a pair model (siamese.json), its recipe, and the shipped folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "default_reranker_v2" / "make_fast.py"

PAIRS = [("what is the capital of france", "Paris is the capital and largest city of France."),
         ("what is the capital of france", "Bananas are rich in potassium and fibre."),
         ("how do vaccines work", "Vaccines train the immune system to recognise a pathogen."),
         ("how do vaccines work", "Paris is the capital and largest city of France.")]


def siamese_copy(bi_encoder: Path, folder: Path) -> Path:
    shutil.copytree(bi_encoder, folder)
    (folder / "siamese.json").write_text(json.dumps({"pooling": "mean"}))
    return folder


def cosines(folder: Path, pairs) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    q = model.encode([p[0] for p in pairs], normalize_embeddings=True)
    d = model.encode([p[1] for p in pairs], normalize_embeddings=True)
    return (q * d).sum(1)


def test_a_siamese_folder_scores_the_cosine_of_each_sides_mean_pooled_embedding(tiny_bi_encoder, tmp_path):
    from crossrank import CrossEncoder

    model = CrossEncoder(str(siamese_copy(tiny_bi_encoder, tmp_path / "fast")))
    scores = model.score(PAIRS)
    # The same numbers sentence-transformers gives encoding each text on its own, in any batch shape.
    assert np.allclose(scores, cosines(tiny_bi_encoder, PAIRS), atol=1e-5)
    one_by_one = np.concatenate([model.score([pair]) for pair in PAIRS])
    assert np.allclose(scores, one_by_one, atol=1e-5)
    assert np.all(np.abs(scores) <= 1.0 + 1e-6)
    # Truncation is reported as for any cross-encoder: the pair is cut at max_length (64 here).
    long_doc = " ".join(["potassium"] * 500)
    model.score([("bananas", long_doc)])
    assert model.last_stats.truncated_pairs == 1


def test_a_siamese_folder_gives_clear_errors(tiny_bi_encoder, tmp_path):
    from crossrank import CrossEncoder
    from crossrank.errors import BackendUnavailableError, ModelLoadError

    folder = siamese_copy(tiny_bi_encoder, tmp_path / "fast")
    with pytest.raises(BackendUnavailableError, match="backend='torch'"):
        CrossEncoder(str(folder), backend="onnx")
    with pytest.raises(BackendUnavailableError, match="packed"):
        CrossEncoder(str(folder), packed=True)
    (folder / "siamese.json").write_text(json.dumps({"pooling": "cls"}))
    with pytest.raises(ModelLoadError, match="pooling 'cls'"):
        CrossEncoder(str(folder))
    (folder / "siamese.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="siamese.json"):
        CrossEncoder(str(folder))
    # Without siamese.json a bi-encoder is still refused as a cross-encoder, naming the missing head.
    with pytest.raises(ModelLoadError, match="sequence-classification"):
        CrossEncoder(str(tiny_bi_encoder))


def run_recipe(*args: str) -> str:
    done = subprocess.run([sys.executable, str(RECIPE), *args], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_fast_recipe_distils_resumes_and_packages_a_loadable_siamese_folder(tiny_bi_encoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    from crossrank import CrossEncoder

    groups = tmp_path / "groups.jsonl"
    with open(groups, "w") as handle:
        for query, doc in PAIRS * 20:
            handle.write(json.dumps({"query": query, "documents": [doc, f"{doc} ({len(query)})", "Ünïcode ок"]}) + "\n")
    work = tmp_path / "work"
    run_recipe("teacher", "--groups", str(groups), "--work", str(work), "--teacher", str(tiny_bi_encoder),
               "--max-length", "64")
    texts = json.loads((work / "texts.json").read_text())
    vectors = np.load(work / "teacher.npy")
    assert texts == sorted(set(texts)) and len(texts) == 10  # 2 queries + 8 distinct documents
    expected = SentenceTransformer(str(tiny_bi_encoder), device="cpu").encode(texts[:3], normalize_embeddings=True)
    assert np.allclose(vectors[:3], expected, atol=0.02)  # bf16 autocast
    train = ("train", "--work", str(work), "--teacher", str(tiny_bi_encoder), "--layers", "0", "--batch-size", "4",
             "--lr", "1e-3", "--max-length", "64")
    run_recipe(*train, "--epochs", "1")
    assert "resuming after epoch 1" in run_recipe(*train, "--epochs", "2")
    student = work / "epoch-2"
    trained = SentenceTransformer(str(student), device="cpu")
    assert trained[0].auto_model.config.num_hidden_layers == 1
    out = tmp_path / "fast"
    run_recipe("package", "--student", str(student), "--output", str(out), "--max-positions", "64")
    assert json.loads((out / "siamese.json").read_text()) == {"pooling": "mean"}
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["max_position_embeddings"] == 64
    assert config["vocab_size"] < 30522  # [unusedN] and non-Latin scripts dropped
    packaged = CrossEncoder(str(out))
    assert packaged.max_length == 64
    assert np.allclose(packaged.score(PAIRS), cosines(student, PAIRS), atol=0.01)  # fp16 weights
    with pytest.raises(AssertionError):  # never overwrites a folder
        run_recipe("package", "--student", str(student), "--output", str(out))


def test_the_shipped_fast_model_loads_by_name_and_ranks_the_answer_first():
    from crossrank import CrossEncoder
    from crossrank.model.default import SHIPPED_MODELS
    from crossrank.model.source import resolve_model_dir

    assert resolve_model_dir("fast") == SHIPPED_MODELS["fast"]
    assert (SHIPPED_MODELS["fast"] / "model.safetensors").stat().st_size <= 30_000_000  # the size cap
    fast = CrossEncoder("fast")
    assert fast.max_length == 256 and fast.backend.model.config.num_hidden_layers == 2
    scores = fast.score(PAIRS)
    assert scores[0] > scores[1] and scores[2] > scores[3]
    ranked = fast.rerank("how do vaccines work", [p[1] for p in PAIRS[:3]])
    assert ranked[0].index == 2
