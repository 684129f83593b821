"""Load a Hugging Face sequence-classification cross-encoder safely and say clearly why one won't load.

Safety: safetensors first; a ``.bin`` checkpoint only through ``torch.load(weights_only=True)``;
``trust_remote_code`` stays off unless the caller asks for it.

Score rule (documented in the README): a 1-label head's logit is the score; a 2-label head's score is
``logit[1] - logit[0]``, the positive-class logit difference, so ``sigmoid(score)`` equals the softmax
probability of the positive class. Heads with more labels are not relevance scorers and are refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from crossrank.errors import ModelLoadError
from crossrank.model.settings import CrossEncoderSettings, read_settings
from crossrank.model.siamese import SiamesePairScorer, check_pair_tokenizer, siamese_pooling
from crossrank.model.source import resolve_model_dir

logger = logging.getLogger(__name__)

_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Families whose position ids start after the padding index, so two positions are never used.
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text"}


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: tuple[bool, bool] = (True, True)


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar (and the hub's download bars) while loading a model.

    A bar per load is noise on every CLI command and in server logs. The switches are process-wide, so
    nested or concurrent loads share one "off" period and the caller's own settings come back afterwards.
    """
    global _quiet_depth, _quiet_saved
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = (hf_logging.is_progress_bar_enabled(), not hub_utils.are_progress_bars_disabled())
            hf_logging.disable_progress_bar()  # also switches the hub's bars off
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                transformers_bars, hub_bars = _quiet_saved
                if transformers_bars:
                    hf_logging.enable_progress_bar()  # also switches the hub's bars on
                if not hub_bars:
                    hub_utils.disable_progress_bars()


@dataclass
class LoadedModel:
    """A ready-to-run cross-encoder: the torch module, its fast tokenizer and how to read its logits."""

    model: torch.nn.Module | None  # None for a folder loaded without weights (an exported graph's folder)
    tokenizer: object  # a transformers PreTrainedTokenizerFast
    model_dir: Path
    num_labels: int
    settings: CrossEncoderSettings
    max_length: int
    model_type: str


def load_model(
    name_or_path: str | os.PathLike,
    *,
    max_length: int | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    attn_implementation: str = "sdpa",
    with_weights: bool = True,
) -> LoadedModel:
    """Resolve, validate and load a cross-encoder on the CPU in float32 (the engine moves it later).

    ``with_weights=False`` reads only the config, tokenizer and settings (``model`` is None): the folder of
    an exported graph has no PyTorch weights.
    """
    from transformers import AutoConfig, AutoTokenizer

    model_dir = resolve_model_dir(name_or_path, revision)
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(f"model folder {model_dir} has no config.json: is it a Hugging Face model folder?")
    has_safetensors = any((model_dir / name).is_file() for name in _SAFETENSORS)
    if with_weights and not has_safetensors and not any((model_dir / name).is_file() for name in _PICKLED):
        raise ModelLoadError(
            f"model folder {model_dir} has no weights: expected model.safetensors (or pytorch_model.bin)"
        )

    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a bad config
        raise ModelLoadError(f"cannot read {model_dir / 'config.json'}: {exc}") from exc
    siamese = siamese_pooling(model_dir) is not None  # a bi-encoder scored as a pair model (model/siamese.py)
    if siamese:
        config.num_labels = 1
    architectures = list(getattr(config, "architectures", None) or [])
    if not siamese and architectures and not any(arch.endswith("ForSequenceClassification") for arch in architectures):
        raise ModelLoadError(
            f"model in {model_dir} is not a sequence-classification cross-encoder "
            f"(architectures: {architectures}); a cross-encoder needs a *ForSequenceClassification head"
        )
    num_labels = int(getattr(config, "num_labels", 1))
    if num_labels not in (1, 2):
        raise ModelLoadError(
            f"model in {model_dir} has {num_labels} labels; crossrank scores 1-label (logit) or "
            "2-label (positive minus negative logit) relevance heads"
        )

    model = None
    if with_weights:
        model = _load_weights(model_dir, config, has_safetensors, trust_remote_code, attn_implementation, siamese)
        if model is None:  # this architecture has no SDPA attention
            model = _load_weights(model_dir, config, has_safetensors, trust_remote_code, "eager", siamese)
        if siamese:  # the encoder alone, scored by the cosine of each side's embedding
            model = SiamesePairScorer(model).eval()

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot load the tokenizer in {model_dir}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"the tokenizer in {model_dir} has no fast (tokenizer.json) version")

    if siamese:
        check_pair_tokenizer(tokenizer, model_dir)
    settings = read_settings(model_dir, config, getattr(tokenizer, "model_max_length", None))
    limit = _position_limit(config)
    if max_length is None:
        max_length = min(settings.max_length or limit or 512, limit or 10**9)
    elif limit and max_length > limit:
        raise ModelLoadError(f"max_length {max_length} exceeds the {limit} positions of the model in {model_dir}")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_dir=model_dir,
        num_labels=num_labels,
        settings=settings,
        max_length=int(max_length),
        model_type=str(getattr(config, "model_type", "")),
    )


def _load_weights(model_dir: Path, config, has_safetensors: bool, trust_remote_code: bool,
                  attn_implementation: str, encoder_only: bool = False) -> torch.nn.Module | None:
    """The torch module in float32, eval mode; None when ``attn_implementation`` is not supported.
    ``encoder_only``: the bare encoder (``AutoModel``, no pooler) of a siamese folder, not a classifier."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    auto_class = AutoModel if encoder_only else AutoModelForSequenceClassification
    extra = {"add_pooling_layer": False} if encoder_only else {}
    try:
        with quiet_loading():
            model, info = auto_class.from_pretrained(
                model_dir,
                config=config,
                dtype=torch.float32,
                use_safetensors=has_safetensors,
                weights_only=True,
                trust_remote_code=trust_remote_code,
                attn_implementation=attn_implementation,
                output_loading_info=True,
                **extra,
            )
    except ValueError as exc:
        if attn_implementation != "eager" and ("attn_implementation" in str(exc) or "sdpa" in str(exc).lower()):
            return None
        raise ModelLoadError(f"cannot load weights from {model_dir}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot load weights from {model_dir}: {type(exc).__name__}: {exc}") from exc
    missing = [key for key in info.get("missing_keys", []) if not key.endswith("position_ids")]
    if missing:
        raise ModelLoadError(
            f"weights in {model_dir} lack {len(missing)} tensors of the model ({', '.join(sorted(missing)[:4])}"
            f"{', ...' if len(missing) > 4 else ''}); "
            + ("a siamese folder needs the whole encoder" if encoder_only
               else "a cross-encoder checkpoint must include its trained head")
        )
    return model.eval()


def _position_limit(config: object) -> int | None:
    """Longest input the position embeddings allow (None when the model does not say)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        return None
    if getattr(config, "model_type", "") in OFFSET_POSITIONS:
        return int(positions) - int(getattr(config, "pad_token_id", 1) or 1) - 1
    return int(positions)
