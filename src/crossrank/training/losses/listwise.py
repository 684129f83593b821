"""Listwise softmax cross-entropy: one positive against n negatives of the same query.

Source: the localized contrastive estimation (LCE) loss of Gao, Dai & Callan, "Rethink Training of
BERT Rerankers in Multi-Stage Retrieval Pipeline", ECIR 2021 (also ListNet's top-one form, Cao et al.,
ICML 2007). With soft targets (teacher scores / temperature) it becomes listwise KL distillation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def listwise_softmax_ce(scores: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                        present: torch.Tensor | None = None) -> torch.Tensor:
    """scores: [groups, 1 + n]; labels: [groups, 1 + n], either one-hot (hard) or teacher scores (soft).

    Hard labels: the target distribution puts all mass on the positive(s). Soft labels: softmax of the
    teacher scores at ``temperature``. ``present`` (bool, same shape) marks real documents when groups of
    different sizes share a batch: padding gets no target mass (a padded soft label of 0 would otherwise
    take a share of the softmax).
    """
    if present is None:
        present = torch.ones_like(labels, dtype=torch.bool)
    log_probs = F.log_softmax(scores.masked_fill(~present, -1e4), dim=-1)
    real = labels[present]
    if torch.all((real == 0) | (real == 1)):
        target = labels.masked_fill(~present, 0.0)
        target = target / target.sum(dim=-1, keepdim=True).clamp_min(1e-9)
    else:
        target = F.softmax((labels / temperature).masked_fill(~present, float("-inf")), dim=-1)
    return -(target * log_probs.masked_fill(~present, 0.0)).sum(dim=-1).mean()
