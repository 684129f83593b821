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

from crossrank.engine.cls_only import ClsOnlyForward, first_token_layer, head_logits
from crossrank.model.loading import OFFSET_POSITIONS


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
        self.position_offset = (model.config.pad_token_id + 1) if model.config.model_type in OFFSET_POSITIONS else 0

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        # ELECTRA is left out: its embeddings may pass through a projection this pass does not run.
        return ClsOnlyForward.supports(model) and model.config.model_type != "electra"

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
        # Token types always explicit: a model's buffered default covers max_position_embeddings tokens, and a
        # packed batch is longer than that.
        types = torch.zeros_like(ids) if types is None else types[rows, cols][None]
        hidden = self.base.embeddings(input_ids=ids, position_ids=(cols + self.position_offset)[None],
                                      token_type_ids=types)[0]
        view = _PaddedView(rows, cols, mask, starts, lengths)
        for layer in self.layers[:-1]:
            hidden = self._layer(layer, hidden, view)
        # The last layer for [CLS] only: every row's keys and values, so it reads the padded view.
        return head_logits(self.model, first_token_layer(self.layers[-1], view.pad(hidden), mask))

    def _layer(self, layer, hidden: torch.Tensor, view: "_PaddedView") -> torch.Tensor:
        attention, split = layer.attention.self, (-1, self.heads, self.head_size)
        query, key, value = (project(hidden).view(split) for project in (attention.query, attention.key,
                                                                            attention.value))
        context = view.attend(query, key, value).reshape(hidden.shape[0], -1)
        attended = layer.attention.output(context, hidden)
        return layer.output(layer.intermediate(attended), attended)


class _PaddedView:
    """Attention over packed tokens, pair by pair: varlen FlashAttention on CUDA when installed, else a
    padded view for SDPA with a key mask."""

    def __init__(self, rows: torch.Tensor, cols: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor,
                 lengths: torch.Tensor):
        self.rows, self.cols, self.shape = rows, cols, mask.shape
        self.starts, self.lengths = starts.to(torch.int32), lengths
        self.keep = mask[:, None, None, :]  # right-padded (checked): the key mask of every pair
        self.flash = _flash_varlen() if rows.is_cuda else None

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """``[tokens, ...]`` -> ``[pairs, length, ...]``, zeros where there is no token."""
        padded = packed.new_zeros(self.shape[0], self.shape[1], *packed.shape[1:])
        padded[self.rows, self.cols] = packed
        return padded

    def attend(self, query, key, value) -> torch.Tensor:
        if self.flash is not None and query.dtype in (torch.float16, torch.bfloat16):
            longest = int(self.lengths.max())
            return self.flash(query, key, value, self.starts, self.starts, longest, longest)
        heads_first = [self.pad(x).transpose(1, 2) for x in (query, key, value)]  # [pairs, heads, length, head]
        context = F.scaled_dot_product_attention(*heads_first, attn_mask=self.keep)
        return context.transpose(1, 2)[self.rows, self.cols]
