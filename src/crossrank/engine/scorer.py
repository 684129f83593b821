"""The scoring engine: tokenize, plan token-budget batches, pad, run the backend, restore input order."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from crossrank.engine.batching import plan_batches
from crossrank.model.tokenization import PairTokenizer

logger = logging.getLogger("crossrank")

ProgressCallback = Callable[[int], None]  # called with the number of pairs just scored


@dataclass
class ScoreStats:
    """What one scoring call did: truncation counts (never silent), batching efficiency and timings."""

    pairs: int = 0
    truncated_pairs: int = 0
    truncated_queries: int = 0
    tokens_dropped: int = 0
    tokens_dropped_estimated: bool = False
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    tokenize_seconds: float = 0.0
    pad_seconds: float = 0.0
    forward_seconds: float = 0.0
    partner_seconds: float = 0.0  # ensemble members that are not engines (e.g. the bi-encoder)

    @property
    def padding_waste(self) -> float:
        """Share of computed tokens that were padding (0 = none)."""
        return 0.0 if not self.padded_tokens else 1.0 - self.real_tokens / self.padded_tokens

    @property
    def total_seconds(self) -> float:
        return self.tokenize_seconds + self.pad_seconds + self.forward_seconds + self.partner_seconds

    def add(self, other: "ScoreStats") -> "ScoreStats":
        """Fold another member's stats of the same pairs into these (counts of the same pairs are not doubled)."""
        self.truncated_pairs = max(self.truncated_pairs, other.truncated_pairs)
        self.truncated_queries = max(self.truncated_queries, other.truncated_queries)
        self.tokens_dropped = max(self.tokens_dropped, other.tokens_dropped)
        self.tokens_dropped_estimated |= other.tokens_dropped_estimated
        self.batches += other.batches
        self.real_tokens += other.real_tokens
        self.padded_tokens += other.padded_tokens
        self.tokenize_seconds += other.tokenize_seconds
        self.pad_seconds += other.pad_seconds
        self.forward_seconds += other.forward_seconds
        self.partner_seconds += other.partner_seconds
        return self


class ScoringEngine:
    """Scores many (query, document) pairs with as little padding and as few passes as possible."""

    def __init__(self, tokenizer: PairTokenizer, backend, batch_tokens: int, max_batch_size: int = 512):
        self.tokenizer = tokenizer
        self.backend = backend
        self.batch_tokens = int(batch_tokens)
        self.max_batch_size = int(max_batch_size)

    def score(self, queries: Sequence[str], documents: Sequence[str],
              progress: ProgressCallback | None = None) -> tuple[np.ndarray, ScoreStats]:
        """Raw float32 scores in input order, and the stats of this call."""
        stats = ScoreStats(pairs=len(documents))
        if not documents:
            return np.zeros(0, dtype=np.float32), stats
        start = time.perf_counter()
        tokens = self.tokenizer(queries, documents)
        stats.tokenize_seconds = time.perf_counter() - start
        stats.truncated_pairs = tokens.truncated_pairs
        stats.truncated_queries = tokens.truncated_queries
        stats.tokens_dropped = tokens.tokens_dropped
        stats.tokens_dropped_estimated = tokens.tokens_dropped_estimated

        scores = torch.empty(len(documents), dtype=torch.float32, device=self.backend.device)
        for batch in plan_batches(tokens.lengths, self.batch_tokens, self.max_batch_size):
            start = time.perf_counter()
            ids, mask, types = self._pad(tokens, batch)
            stats.pad_seconds += time.perf_counter() - start
            start = time.perf_counter()
            scores[torch.from_numpy(batch).to(scores.device)] = self.backend.score_batch(ids, mask, types)
            stats.forward_seconds += time.perf_counter() - start
            stats.batches += 1
            stats.real_tokens += int(tokens.lengths[batch].sum())
            stats.padded_tokens += ids.size
            if progress is not None:
                progress(len(batch))
        start = time.perf_counter()
        result = scores.cpu().numpy()  # synchronises a GPU once, at the end
        stats.forward_seconds += time.perf_counter() - start
        logger.debug("scored %d pairs in %d batches (%.1f%% padding) in %.3f s", stats.pairs, stats.batches,
                     100 * stats.padding_waste, stats.total_seconds)
        if stats.truncated_pairs:
            logger.warning(
                "truncated %d of %d pairs to %d tokens (%s%d tokens dropped, %d queries capped at %d tokens)",
                stats.truncated_pairs, stats.pairs, self.tokenizer.max_length,
                "about " if stats.tokens_dropped_estimated else "", stats.tokens_dropped,
                stats.truncated_queries, self.tokenizer.query_cap,
            )
        return result, stats

    def _pad(self, tokens, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return pad_batch(tokens, batch, self.tokenizer.pad_id)


def pad_batch(tokens, batch: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Right-pad the pairs ``batch`` (indices into ``tokens``) to their longest member: ids, mask, types."""
    width = int(tokens.lengths[batch].max())
    ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    types = np.zeros((len(batch), width), dtype=np.int64) if tokens.token_type_ids is not None else None
    for row, index in enumerate(batch):
        n = int(tokens.lengths[index])
        ids[row, :n] = tokens.input_ids[index]
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = tokens.token_type_ids[index]
    return ids, mask, types
