"""Group pairs into batches by a padded-token budget instead of a fixed count.

Pairs are sorted by length so each batch pads to a length close to all of its members; a budget of
padded tokens (batch size x longest member) keeps memory and per-batch latency flat whether the pairs
are 20 tokens or 500. Sorting is stable, so equal lengths keep input order and results are repeatable.
"""

from __future__ import annotations

import numpy as np


def plan_batches(lengths: np.ndarray, batch_tokens: int, max_batch_size: int = 512) -> list[np.ndarray]:
    """Return index arrays, longest pairs first; each batch's size x max length stays within budget.

    A single pair longer than the budget forms a batch of its own rather than being refused.
    """
    if batch_tokens < 1 or max_batch_size < 1:
        raise ValueError("batch_tokens and max_batch_size must be positive")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        size = max(1, min(max_batch_size, batch_tokens // max(1, longest)))
        batches.append(order[start : start + size])
        start += size
    return batches
