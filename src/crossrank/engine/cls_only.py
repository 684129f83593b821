"""Skip work a cross-encoder never reads: the last layer only needs to be computed for [CLS].

A sequence classifier's head reads one position (the first token), so in the final encoder layer only
that row's attention output and feed-forward matter; the other rows' keys and values are still needed.
Computing the last layer for [CLS] alone removes about 5/6 of that layer's work (~14% of a 6-layer
MiniLM's forward pass at ~100 tokens) with the same arithmetic for the row that is read, so scores stay
equal to the full forward pass to float32 rounding (the fidelity tests check this).

Only BERT-style post-norm encoders with absolute positions qualify (BERT, MiniLM, RoBERTa, XLM-R,
CamemBERT, ELECTRA); any other model runs the ordinary transformers forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SUPPORTED = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}


class _LastLayerInput(Exception):
    """Carries the last layer's input out of the transformers forward pass, which stops there."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden


class ClsOnlyForward:
    """Run layers 0..n-2 with transformers, then the last layer for the first token only, then the head."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.last = getattr(model, model.base_model_prefix).encoder.layer[-1]
        self.last.register_forward_pre_hook(self._capture, with_kwargs=True)

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        config = model.config
        if config.model_type not in _SUPPORTED or getattr(config, "is_decoder", False):
            return False
        if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
            return False
        base = getattr(model, getattr(model, "base_model_prefix", ""), None)
        layer = getattr(getattr(base, "encoder", None), "layer", None)
        if not layer:
            return False
        last = layer[-1]
        needed = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "intermediate.dense", "output.dense", "output.LayerNorm")
        names = {name for name, _ in last.named_modules()}
        if config.model_type == "bert" and getattr(base, "pooler", None) is None:
            return False
        return all(name in names for name in needed)

    def _capture(self, module, args, kwargs):
        if getattr(self, "_active", False):
            raise _LastLayerInput(args[0] if args else kwargs["hidden_states"])
        return None

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits, like ``model(**inputs).logits``."""
        self._active = True
        try:
            self.model(**inputs)
        except _LastLayerInput as captured:
            hidden = captured.hidden
        else:  # pragma: no cover - the hook always fires for supported models
            raise RuntimeError("the last encoder layer was never reached")
        finally:
            self._active = False
        return self.head(self.last_layer_for_first_token(hidden, inputs["attention_mask"]))

    def head(self, cls: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's [CLS] row."""
        return head_logits(self.model, cls)

    def last_layer_for_first_token(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The last layer's output for [CLS] alone, from that layer's input (also used by the ONNX graph)."""
        return first_token_layer(self.last, hidden, mask)


def head_logits(model: torch.nn.Module, cls: torch.Tensor) -> torch.Tensor:
    """A sequence classifier's logits from its last layer's [CLS] rows (``[pairs, 1, hidden]``): BERT's
    pooler then classifier; RoBERTa/ELECTRA heads read position 0 themselves."""
    if model.config.model_type == "bert":
        return model.classifier(getattr(model, model.base_model_prefix).pooler(cls))
    return model.classifier(cls)


def first_token_layer(layer: torch.nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One encoder layer's output for each pair's first token ([CLS]) alone, from that layer's padded input
    ``[pairs, length, hidden]`` and the attention mask: every row's keys and values, one query per pair."""
    attention = layer.attention.self
    batch = hidden.shape[0]
    split = (batch, -1, attention.num_attention_heads, attention.attention_head_size)
    first = hidden[:, :1]
    query = attention.query(first).view(split).transpose(1, 2)
    key = attention.key(hidden).view(split).transpose(1, 2)
    value = attention.value(hidden).view(split).transpose(1, 2)
    context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.bool()[:, None, None, :])
    attended = layer.attention.output(context.transpose(1, 2).reshape(batch, 1, -1), first)
    return layer.output(layer.intermediate(attended), attended)
