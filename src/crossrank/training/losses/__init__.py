"""Ranking losses, one per module. Each takes model scores and returns a scalar tensor to minimise."""

from crossrank.training.losses.bce import pointwise_bce
from crossrank.training.losses.listwise import listwise_softmax_ce
from crossrank.training.losses.margin_mse import margin_mse
from crossrank.training.losses.ranknet import pairwise_margin, ranknet

LOSSES = {"bce": pointwise_bce, "ranknet": ranknet, "margin": pairwise_margin, "listwise": listwise_softmax_ce,
          "margin-mse": margin_mse}

__all__ = ["LOSSES", "pointwise_bce", "ranknet", "pairwise_margin", "listwise_softmax_ce", "margin_mse"]
