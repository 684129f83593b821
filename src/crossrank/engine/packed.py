"""A packed ("unpadded") forward pass for BERT-style cross-encoders: padding is never computed.

A token-budget batch still pads every pair to its longest; in the linear layers and the feed-forward
network (most of the arithmetic) those padding rows are pure waste. Here the real tokens of the batch are
concatenated into one ``[tokens, hidden]`` matrix with cumulative lengths (``cu_seqlens``, as in
FlashAttention's varlen kernels), every projection, feed-forward and LayerNorm runs on that matrix, and only
attention looks at pairs separately:

- with ``flash_attn`` installed and a CUDA device: ``flash_attn_varlen_func`` on the packed tokens;
- otherwise: the packed Q/K/V are scattered into a padded ``[pairs, heads, length, head]`` view for
  ``scaled_dot_product_attention`` with a key mask and gathered back (attention is the small part of the
  work at reranking lengths).

The last layer runs for [CLS] only (as ``cls_only``). BERT (MiniLM) and RoBERTa-style models with
absolute positions qualify; in fp32 the logits equal the padded transformers forward pass (tests: 1e-5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crossrank.engine.cls_only import ClsOnlyForward, head_logits

_ROBERTA_STYLE = {"roberta", "xlm-roberta", "camembert"}


def _flash_varlen():
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None
    return flash_attn_varlen_func


class PackedForward:
    """``PackedForward(model)(inputs)`` -> logits, like ``model(**inputs).logits`` without padding work."""

    def __init__(self, model: torch.nn.Module):
        if not self.supports(model):
            raise ValueError(f"no packed forward for model type {model.config.model_type!r}")
        self.model = model
        self.base = getattr(model, model.base_model_prefix)
        self.layers = list(self.base.encoder.layer)
        attention = self.layers[0].attention.self
        self.heads, self.head_size = attention.num_attention_heads, attention.attention_head_size
        self.position_offset = (model.config.pad_token_id + 1) if model.config.model_type in _ROBERTA_STYLE else 0

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        return ClsOnlyForward.supports(model) and model.config.model_type in {"bert", *_ROBERTA_STYLE}

    @torch.inference_mode()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = inputs["attention_mask"].bool()
        lengths = mask.sum(1)
        if not bool((mask == (torch.arange(mask.shape[1], device=mask.device) < lengths[:, None])).all()):
            raise ValueError("packed forward needs right-padded inputs")
        rows, cols = mask.nonzero(as_tuple=True)  # the real tokens, pair by pair, in order
        starts = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])  # cu_seqlens
        ids = inputs["input_ids"][rows, cols][None]
        types = inputs.get("token_type_ids")
        positions = (cols + self.position_offset)[None]
        # Token types always explicit: a model's buffered default covers max_position_embeddings tokens, and a
        # packed batch is longer than that.
        types = torch.zeros_like(ids) if types is None else types[rows, cols][None]
        hidden = self.base.embeddings(input_ids=ids, position_ids=positions, token_type_ids=types)[0]
        view = _PaddedView(rows, cols, mask.shape, starts, lengths)
        for layer in self.layers[:-1]:
            hidden = self._layer(layer, hidden, view)
        first = starts[:-1]  # each pair's [CLS] row in the packed matrix
        return head_logits(self.model, self._last_layer(self.layers[-1], hidden, view, first)[:, None])

    def _qkv(self, attention, hidden: torch.Tensor, rows=None):
        split = (-1, self.heads, self.head_size)
        query_input = hidden if rows is None else hidden[rows]
        return (attention.query(query_input).view(split), attention.key(hidden).view(split),
                attention.value(hidden).view(split))

    def _layer(self, layer, hidden: torch.Tensor, view: "_PaddedView") -> torch.Tensor:
        query, key, value = self._qkv(layer.attention.self, hidden)
        context = view.attend(query, key, value).reshape(hidden.shape[0], -1)
        attended = layer.attention.output(context, hidden)
        return layer.output(layer.intermediate(attended), attended)

    def _last_layer(self, layer, hidden: torch.Tensor, view: "_PaddedView", first: torch.Tensor) -> torch.Tensor:
        query, key, value = self._qkv(layer.attention.self, hidden, first)
        context = view.attend_first(query, key, value).reshape(first.shape[0], -1)
        attended = layer.attention.output(context, hidden[first])
        return layer.output(layer.intermediate(attended), attended)


class _PaddedView:
    """Attention over packed tokens, pair by pair: varlen FlashAttention on CUDA when installed, else a
    padded view for SDPA with a key mask."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, shape: torch.Size, starts: torch.Tensor,
                 lengths: torch.Tensor):
        self.rows, self.cols, self.shape = rows, cols, shape
        self.starts, self.lengths = starts.to(torch.int32), lengths
        self.keep = (torch.arange(shape[1], device=rows.device) < lengths[:, None])[:, None, None, :]
        self.flash = _flash_varlen() if rows.is_cuda else None

    def _pad(self, packed: torch.Tensor) -> torch.Tensor:
        padded = packed.new_zeros(self.shape[0], self.shape[1], *packed.shape[1:])
        padded[self.rows, self.cols] = packed
        return padded.transpose(1, 2)  # [pairs, heads, length, head_size]

    def attend(self, query, key, value) -> torch.Tensor:
        if self.flash is not None and query.dtype in (torch.float16, torch.bfloat16):
            longest = int(self.lengths.max())
            return self.flash(query, key, value, self.starts, self.starts, longest, longest)
        context = F.scaled_dot_product_attention(self._pad(query), self._pad(key), self._pad(value),
                                                 attn_mask=self.keep)
        return context.transpose(1, 2)[self.rows, self.cols]

    def attend_first(self, query, key, value) -> torch.Tensor:
        """Attention for each pair's first token only (query: one row per pair)."""
        context = F.scaled_dot_product_attention(query[:, :, None], self._pad(key), self._pad(value),
                                                 attn_mask=self.keep)
        return context.transpose(1, 2)[:, 0]
