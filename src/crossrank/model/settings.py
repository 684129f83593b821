"""Per-model settings a cross-encoder folder may carry beside its weights.

sentence-transformers stores a cross-encoder's activation (Identity or Sigmoid) in ``config.json`` and,
depending on its version, the maximum sequence length in ``sentence_bert_config.json`` or the tokenizer
config. crossrank honours them so a folder scores the way its authors trained and documented it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Activations sentence-transformers writes as import paths; we map them to names, never import them.
_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.Softmax": "softmax",
}


@dataclass(frozen=True)
class CrossEncoderSettings:
    """What a model folder says about how to use it (None where it says nothing)."""

    activation: str = "identity"
    max_length: int | None = None


def read_settings(model_dir: Path, config: object, tokenizer_max_length: int | None) -> CrossEncoderSettings:
    """Collect activation and max length from the sentence-transformers files, if any."""
    activation = "identity"
    st = getattr(config, "sentence_transformers", None) or {}
    path = st.get("activation_fn") if isinstance(st, dict) else None
    path = path or getattr(config, "sbert_ce_default_activation_function", None)
    if path:
        activation = _ACTIVATIONS.get(path, "identity")
        if path not in _ACTIVATIONS:
            logger.warning("unknown activation %r in %s/config.json: using identity", path, model_dir)

    max_length = None
    sbert_file = model_dir / "sentence_bert_config.json"
    if sbert_file.is_file():
        try:
            max_length = int(json.loads(sbert_file.read_text(encoding="utf-8")).get("max_seq_length") or 0) or None
        except (ValueError, TypeError, AttributeError):
            logger.warning("ignoring unreadable %s", sbert_file)
    if max_length is None and isinstance(st, dict) and st.get("max_length"):
        max_length = int(st["max_length"])
    if max_length is None and tokenizer_max_length and tokenizer_max_length < 100_000:
        max_length = int(tokenizer_max_length)
    return CrossEncoderSettings(activation=activation, max_length=max_length)
