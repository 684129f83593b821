"""The scoring engine: tokenize, plan token-budget batches, pad, run the backend(s), restore input order."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from crossrank.engine.batching import plan_batches
from crossrank.errors import BackendUnavailableError, InvalidInputError
from crossrank.model.tokenization import PairTokenizer, TokenizedPairs

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
    """Scores many (query, document) pairs with as little padding and as few passes as possible.

    ``backend`` is one backend or a list of them (one per device, ``CrossEncoder(devices=[...])``): the
    planned batches are then shared between them by padded tokens and run side by side, one thread each
    (a GPU's kernels release the GIL). ``overlap_tokenization`` tokenizes requests of more than
    ``chunk_pairs`` pairs in chunks, the next chunk in a background thread while the current one runs
    (the Rust tokenizer releases the GIL too); on a GPU that hides tokenization, on a busy CPU it would
    only compete for the cores, so ``CrossEncoder`` switches it on for CUDA. A batch that runs out of
    device memory is split in two and retried, and the budget lowered for the batches after it.
    """

    def __init__(self, tokenizer: PairTokenizer, backend, batch_tokens: int, max_batch_size: int = 512,
                 overlap_tokenization: bool = False, chunk_pairs: int = 2048):
        self.tokenizer = tokenizer
        self.backends = list(backend) if isinstance(backend, (list, tuple)) else [backend]
        if not self.backends:
            raise ValueError("a scoring engine needs at least one backend")
        self.backend = self.backends[0]
        self.batch_tokens = int(batch_tokens)
        self.max_batch_size = int(max_batch_size)
        self.overlap_tokenization = bool(overlap_tokenization)
        self.chunk_pairs = max(1, int(chunk_pairs))
        self._lock = threading.Lock()  # progress callbacks and the budget, shared by device threads

    def score(self, queries: Sequence[str], documents: Sequence[str],
              progress: ProgressCallback | None = None) -> tuple[np.ndarray, ScoreStats]:
        """Raw float32 scores in input order, and the stats of this call."""
        stats = ScoreStats(pairs=len(documents))
        if not documents:
            return np.zeros(0, dtype=np.float32), stats
        if len(queries) != len(documents):
            raise InvalidInputError(f"{len(queries)} queries but {len(documents)} documents")
        result = np.empty(len(documents), dtype=np.float32)
        for offset, tokens in self._tokenized_chunks(queries, documents, stats):
            result[offset:offset + len(tokens.lengths)] = self._score_tokens(tokens, stats, progress)
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

    def _tokenized_chunks(self, queries: Sequence[str], documents: Sequence[str], stats: ScoreStats
                          ) -> Iterator[tuple[int, TokenizedPairs]]:
        """(offset, tokens) of the whole request, or of chunks tokenized one ahead in a background thread."""
        n = len(documents)
        size = self.chunk_pairs if self.overlap_tokenization else n
        starts = list(range(0, n, size))

        def tokenize(start: int) -> tuple[TokenizedPairs, float]:
            began = time.perf_counter()
            tokens = self.tokenizer(queries[start:start + size], documents[start:start + size])
            return tokens, time.perf_counter() - began

        def account(tokens: TokenizedPairs, seconds: float) -> TokenizedPairs:
            stats.tokenize_seconds += seconds
            stats.truncated_pairs += tokens.truncated_pairs
            stats.truncated_queries += tokens.truncated_queries
            stats.tokens_dropped += tokens.tokens_dropped
            stats.tokens_dropped_estimated |= tokens.tokens_dropped_estimated
            return tokens

        if len(starts) == 1:
            yield 0, account(*tokenize(0))
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crossrank-tokenize") as pool:
            pending = pool.submit(tokenize, starts[0])
            for position, start in enumerate(starts):
                tokens = account(*pending.result())
                if position + 1 < len(starts):
                    pending = pool.submit(tokenize, starts[position + 1])
                yield start, tokens

    def _score_tokens(self, tokens: TokenizedPairs, stats: ScoreStats,
                      progress: ProgressCallback | None) -> np.ndarray:
        batches = plan_batches(tokens.lengths, self.batch_tokens, self.max_batch_size)
        if len(self.backends) == 1:
            return self._run(self.backend, tokens, batches, stats, progress)
        work = [(backend, share, ScoreStats()) for backend, share
                in zip(self.backends, split_by_tokens(batches, tokens.lengths, len(self.backends))) if share]
        with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="crossrank-device") as pool:
            futures = [pool.submit(self._run, backend, tokens, share, part, progress) for backend, share, part in work]
            results = [future.result() for future in futures]
        scores = np.zeros(len(tokens.lengths), dtype=np.float32)
        for result, (_, share, _) in zip(results, work):
            rows = np.concatenate(share)
            scores[rows] = result[rows]
        parts = [part for _, _, part in work]
        for part in parts:
            stats.batches += part.batches
            stats.real_tokens += part.real_tokens
            stats.padded_tokens += part.padded_tokens
            stats.pad_seconds += part.pad_seconds
        stats.forward_seconds += max(part.forward_seconds for part in parts)  # side by side: the wall time
        return scores

    def _run(self, backend, tokens: TokenizedPairs, batches: list[np.ndarray], stats: ScoreStats,
             progress: ProgressCallback | None) -> np.ndarray:
        """Scores of the pairs in ``batches`` (other rows zero), each batch one forward pass on ``backend``."""
        scores = torch.zeros(len(tokens.lengths), dtype=torch.float32, device=backend.device)
        queue = list(reversed(batches))
        while queue:
            batch = queue.pop()
            start = time.perf_counter()
            ids, mask, types = pad_batch(tokens, batch, self.tokenizer.pad_id)
            stats.pad_seconds += time.perf_counter() - start
            start = time.perf_counter()
            try:
                scores[torch.from_numpy(batch).to(scores.device)] = backend.score_batch(ids, mask, types)
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise BackendUnavailableError(
                        f"out of memory on {backend.device} scoring a single pair of {ids.shape[1]} tokens: "
                        "lower max_length or free the device") from None
                self._lower_budget(ids.size, backend.device)
                half = len(batch) // 2
                queue += [batch[half:], batch[:half]]  # the first half runs next
                continue
            finally:
                stats.forward_seconds += time.perf_counter() - start
            stats.batches += 1
            stats.real_tokens += int(tokens.lengths[batch].sum())
            stats.padded_tokens += ids.size
            if progress is not None:
                with self._lock:
                    progress(len(batch))
        start = time.perf_counter()
        result = scores.cpu().numpy()  # synchronises a GPU once, at the end
        stats.forward_seconds += time.perf_counter() - start
        return result

    def _lower_budget(self, failed_tokens: int, device) -> None:
        """After an out-of-memory error: later batches get at most half the tokens of the one that failed."""
        with self._lock:
            lowered = max(self.tokenizer.max_length, min(self.batch_tokens, failed_tokens // 2))
            if lowered < self.batch_tokens:
                logger.warning("out of memory on %s with a batch of %d padded tokens: batch budget %d -> %d",
                               device, failed_tokens, self.batch_tokens, lowered)
                self.batch_tokens = lowered
        if device.type == "cuda":
            torch.cuda.empty_cache()


def split_by_tokens(batches: list[np.ndarray], lengths: np.ndarray, devices: int) -> list[list[np.ndarray]]:
    """Share batches between devices so each gets about the same padded tokens (longest batches first,
    each to the least loaded device); a device's batches keep their planned order."""
    shares: list[list[np.ndarray]] = [[] for _ in range(devices)]
    load = [0] * devices
    for batch in batches:  # plan_batches orders them longest first
        target = load.index(min(load))
        shares[target].append(batch)
        load[target] += len(batch) * int(lengths[batch].max())
    return shares


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
