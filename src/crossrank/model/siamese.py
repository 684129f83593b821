"""A bi-encoder scored as a pair model: the cosine of the mean-pooled embeddings of query and document.

Why: crossrank's "fast" fallback is a 2-layer bi-encoder (issue 16: a 2-layer cross-encoder slice did not
learn to rank from the data a CPU can distil; a 2-layer bi-encoder student of all-MiniLM-L6-v2 did). Scoring
it through the cross-encoder engine keeps one front (``CrossEncoder("fast")``) and everything under it:
token-budget batching, truncation reports, measured per-pair cost for latency budgets. The engine tokenizes
``[CLS] query [SEP] document [SEP]`` as for any cross-encoder; ``SiamesePairScorer`` splits each pair back
into ``[CLS] query [SEP]`` and ``[CLS] document [SEP]`` by token type, encodes both (the same tokens
sentence-transformers would give each text) and returns their cosine as the logit.

A model folder declares itself one with ``siamese.json`` (``{"pooling": "mean"}``) beside a plain encoder
(``BertModel``-style weights, no classification head). Its cost per pair is that of a cross-encoder of the
same depth on the same tokens, less the query's: each distinct query of a batch is encoded once.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from crossrank.errors import ModelLoadError

SIAMESE_FILE = "siamese.json"
POOLINGS = ("mean",)


def siamese_pooling(model_dir: Path) -> str | None:
    """The pooling a folder's ``siamese.json`` declares, or None when the folder is a cross-encoder."""
    path = Path(model_dir) / SIAMESE_FILE
    if not path.is_file():
        return None
    try:
        pooling = json.loads(path.read_text(encoding="utf-8")).get("pooling", "mean")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{path}: not a valid siamese.json ({exc})") from None
    if pooling not in POOLINGS:
        raise ModelLoadError(f"{path}: pooling {pooling!r} is not supported (use one of {', '.join(POOLINGS)})")
    return pooling


def check_pair_tokenizer(tokenizer, model_dir: Path) -> None:
    """The split needs token type ids that mark the document (BERT-style tokenizers give them)."""
    encoded = tokenizer("query", "document", return_token_type_ids=True)
    if 1 not in (encoded.get("token_type_ids") or []):
        raise ModelLoadError(f"the tokenizer in {model_dir} gives no token type ids for a pair: a siamese "
                             "(bi-encoder) folder needs a BERT-style tokenizer")


class SiamesePairScorer(torch.nn.Module):
    """``encoder`` (a transformers ``AutoModel``) applied to each side of a tokenized pair; logit = cosine."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.config.num_labels = 1

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        if token_type_ids is None:
            raise ValueError("siamese scoring needs token_type_ids to find where the document starts")
        real = attention_mask.bool()
        query_len = (real & (token_type_ids == 0)).sum(1)  # [CLS] query [SEP]
        doc_len = (real & (token_type_ids == 1)).sum(1)  # document [SEP]
        query = self._embed_queries(input_ids[:, : int(query_len.max())], query_len)
        width = int(doc_len.max())
        offsets = torch.arange(width, device=input_ids.device)
        index = (query_len[:, None] + offsets[None, :]).clamp(max=input_ids.shape[1] - 1)
        doc_ids = torch.cat([input_ids[:, :1], input_ids.gather(1, index)], dim=1)  # [CLS] document [SEP]
        document = self._embed(doc_ids, doc_len + 1)
        cosine = torch.nn.functional.cosine_similarity(query.float(), document.float(), dim=-1)
        return SequenceClassifierOutput(logits=cosine[:, None])

    def _embed_queries(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Each distinct query once (a reranking call repeats one query over all its documents)."""
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        keys = torch.where(mask, ids, torch.full_like(ids, -1))
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
        if unique.shape[0] == ids.shape[0]:
            return self._embed(ids, lengths)
        first = torch.zeros(unique.shape[0], dtype=torch.long, device=ids.device)
        first.scatter_(0, inverse, torch.arange(ids.shape[0], device=ids.device))  # a row of each query
        return self._embed(ids[first], lengths[first])[inverse]

    def _embed(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over the first ``lengths`` tokens of each row."""
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        pad = int(getattr(self.config, "pad_token_id", 0) or 0)
        ids = torch.where(mask, ids, torch.full_like(ids, pad))
        hidden = self.encoder(input_ids=ids, attention_mask=mask.long(),
                              token_type_ids=torch.zeros_like(ids)).last_hidden_state
        weights = mask.to(hidden.dtype)[..., None]
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)

