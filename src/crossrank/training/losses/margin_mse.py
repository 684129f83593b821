"""Margin-MSE distillation: match the teacher's score margin between a positive and a negative.

Source: Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
Distillation", 2020. Only differences are matched, so teacher and student may live on different scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def margin_mse(scores: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """scores, teacher: [groups, 1 + n]; column 0 is the positive, the rest negatives."""
    student_margin = scores[:, :1] - scores[:, 1:]
    teacher_margin = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(student_margin, teacher_margin.to(scores.dtype))
