"""Pairwise losses over a query's documents: RankNet and the hinge (margin) loss.

Sources: RankNet, Burges et al., "Learning to Rank using Gradient Descent", ICML 2005; the margin
ranking loss of Herbrich et al., "Large Margin Rank Boundaries for Ordinal Regression", 2000.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pairs(scores: torch.Tensor, labels: torch.Tensor):
    """Score differences s_i - s_j for every pair with label_i > label_j in the same group ([G, n] inputs)."""
    diff = scores.unsqueeze(-1) - scores.unsqueeze(-2)
    better = (labels.unsqueeze(-1) - labels.unsqueeze(-2)) > 0
    return diff[better]


def ranknet(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(-(s_i - s_j))) averaged over ordered pairs; scores/labels: [groups, docs]."""
    diff = _pairs(scores, labels)
    return F.softplus(-diff).mean() if diff.numel() else scores.sum() * 0.0


def pairwise_margin(scores: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """max(0, margin - (s_i - s_j)) averaged over ordered pairs."""
    diff = _pairs(scores, labels)
    return F.relu(margin - diff).mean() if diff.numel() else scores.sum() * 0.0
