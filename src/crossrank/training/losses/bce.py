"""Pointwise binary cross-entropy on each (query, document) logit.

Source: the classic pointwise learning-to-rank objective; the loss sentence-transformers' original
MS MARCO cross-encoders were trained with (Nogueira & Cho, "Passage Re-ranking with BERT", 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pointwise_bce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """scores, labels: [N]; labels in [0, 1] (graded judgments may be scaled into that range)."""
    return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))
