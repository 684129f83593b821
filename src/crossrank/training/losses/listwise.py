"""Listwise softmax cross-entropy: one positive against n negatives of the same query.

Source: the localized contrastive estimation (LCE) loss of Gao, Dai & Callan, "Rethink Training of
BERT Rerankers in Multi-Stage Retrieval Pipeline", ECIR 2021 (also ListNet's top-one form, Cao et al.,
ICML 2007). With soft targets (teacher scores / temperature) it becomes listwise KL distillation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def listwise_softmax_ce(scores: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """scores: [groups, 1 + n]; labels: [groups, 1 + n], either one-hot (hard) or teacher scores (soft).

    Hard labels: the target distribution puts all mass on the positive(s). Soft labels: softmax of the
    teacher scores at ``temperature``.
    """
    log_probs = F.log_softmax(scores, dim=-1)
    hard = torch.all((labels == 0) | (labels == 1))
    if hard:
        target = labels / labels.sum(dim=-1, keepdim=True).clamp_min(1e-9)
    else:
        target = F.softmax(labels / temperature, dim=-1)
    return -(target * log_probs).sum(dim=-1).mean()
