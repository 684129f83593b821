"""Batch work on a Ray actor pool: cross-encoder scoring of pairs and bi-encoder embedding of texts.

Each actor loads its model once (``ScorerSpec.load``: any backend and dtype the engine has) and scores one
block of rows per call through the engine's token-budget batching, which sorts the block's pairs by length.
The rows carry their position, so results are put back in input order whatever order blocks finish in, and
a block whose actor dies is retried on a restarted actor (Ray Data's actor pools restart actors and retry
their tasks), so a job survives a lost worker and still writes the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from crossrank.distributed.runtime import RayConfig, connect
from crossrank.errors import CrossrankError


@dataclass(frozen=True)
class ScorerSpec:
    """What each actor loads: ``CrossEncoder``'s arguments (small and picklable, so it travels to workers)."""

    model: str | None = None  # folder, shipped name or hub id; None: the shipped default
    backend: str | None = None
    dtype: str | None = None
    device: str = "cpu"
    batch_tokens: int | None = None
    max_length: int | None = None
    use_ensemble: bool = True

    def load(self):
        from crossrank.cross_encoder import CrossEncoder

        return CrossEncoder(self.model, device=self.device, backend=self.backend, dtype=self.dtype,
                            batch_tokens=self.batch_tokens, max_length=self.max_length,
                            use_ensemble=self.use_ensemble)


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class PairScoringActor:
    """Scores blocks of (query, text) rows; adds a float64 ``score`` column."""

    def __init__(self, spec: ScorerSpec, threads: int, query_column: str = "query", text_column: str = "text",
                 score_column: str = "score", keep: Sequence[str] | None = None):
        _limit_threads(threads)
        self.model = spec.load()
        self.model.warm_up()  # the first pass's one-off costs belong to the actor's start, not to a block
        self.columns = (query_column, text_column, score_column)
        self.keep = keep  # None: every input column passes through

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        query, text, score = self.columns
        pairs = list(zip(batch[query].tolist(), batch[text].tolist()))
        kept = batch if self.keep is None else {name: batch[name] for name in self.keep}
        return {**kept, score: np.asarray(self.model.score(pairs), dtype=np.float64)}


class EmbeddingActor:
    """Embeds blocks of texts with a bi-encoder; adds a float32 ``vector`` column (L2-normalised rows)."""

    def __init__(self, model: str | None, device: str, threads: int):
        from crossrank.model.bi_encoder import BiEncoder

        _limit_threads(threads)
        self.encoder = BiEncoder(model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"row": batch["row"], "vector": self.encoder.encode(batch["text"].tolist())}


def _map_on_pool(dataset, actor, constructor_kwargs: dict, config: RayConfig, ray):
    from ray.data import ActorPoolStrategy

    return dataset.map_batches(actor, fn_constructor_kwargs=constructor_kwargs,
                               compute=ActorPoolStrategy(size=config.pool_size(ray),
                                                         max_tasks_in_flight_per_actor=config.blocks_in_flight),
                               batch_size=config.block_pairs,
                               num_cpus=config.threads_per_worker, num_gpus=config.gpus_per_worker or None,
                               batch_format="numpy")


def score_dataset(dataset, spec: ScorerSpec | None = None, config: RayConfig | None = None, *,
                  query_column: str = "query", text_column: str = "text", score_column: str = "score",
                  keep_columns: Sequence[str] | None = None):
    """A lazy Ray Dataset: ``dataset``'s rows plus ``score_column``, scored on an actor pool.

    For data that already lives in Ray Data (``ray.data.read_parquet(...)``): write the result with
    ``.write_parquet(...)`` or iterate it; every other column passes through unchanged (or only
    ``keep_columns``).
    """
    config = config or RayConfig()
    ray = connect(config)
    kwargs = {"spec": spec or ScorerSpec(), "threads": config.threads_per_worker, "query_column": query_column,
              "text_column": text_column, "score_column": score_column, "keep": keep_columns}
    return _map_on_pool(dataset, PairScoringActor, kwargs, config, ray)


def _blocks_dataset(ray, columns: dict[str, list], block_rows: int):
    """A Ray Dataset of one Arrow table per block (each block is one unit of work), with a ``row`` column."""
    import pyarrow as pa

    total = len(next(iter(columns.values())))
    tables = [pa.table({"row": np.arange(start, min(start + block_rows, total), dtype=np.int64),
                        **{name: values[start:start + block_rows] for name, values in columns.items()}})
              for start in range(0, total, block_rows)]
    return ray.data.from_arrow(tables)


def _collect(dataset, total: int, column: str, width: int | None,
             progress: Callable[[int], None] | None) -> np.ndarray:
    out = np.full((total,) if width is None else (total, width), np.nan,
                  dtype=np.float64 if width is None else np.float32)
    seen = np.zeros(total, dtype=bool)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        rows = batch["row"]
        out[rows] = batch[column]
        seen[rows] = True
        if progress is not None:
            progress(len(rows))
    if not seen.all():  # never expected: Ray retries lost blocks; say so rather than return holes
        raise CrossrankError(f"the Ray job returned {int(seen.sum())} of {total} rows")
    return out


class RayScorer:
    """A pair scorer with ``CrossEncoder.score``'s contract whose work runs on a Ray actor pool."""

    def __init__(self, spec: ScorerSpec | None = None, config: RayConfig | None = None):
        self.spec = spec or ScorerSpec()
        self.config = config or RayConfig()
        self.name = f"cross-encoder on Ray ({self.spec.model or 'default'})"

    def score(self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if len(pairs) == 0:
            return np.zeros(0, dtype=np.float64)
        ray = connect(self.config)
        dataset = _blocks_dataset(ray, {"query": [q for q, _ in pairs], "text": [d for _, d in pairs]},
                                  self.config.block_pairs)
        # Actors send back only row and score: a projection step after them would be one more Ray task
        # waiting for CPUs the actor pool holds, so results would arrive only once the pool is done.
        scored = score_dataset(dataset, self.spec, self.config, keep_columns=["row"])
        return _collect(scored, len(pairs), "score", None, progress)


class RayEncoder:
    """A bi-encoder with ``BiEncoder.encode``'s contract whose work runs on a Ray actor pool (dense indexes)."""

    def __init__(self, model: str | None = None, device: str = "cpu", config: RayConfig | None = None):
        self.model, self.device = model, device
        self.config = config or RayConfig()
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:  # read once, from a local load of the (small) encoder
            from crossrank.model.bi_encoder import BiEncoder

            self._dimension = BiEncoder(self.model).dimension
        return self._dimension

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | bool | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ray = connect(self.config)
        dataset = _blocks_dataset(ray, {"text": list(texts)}, self.config.block_pairs)
        kwargs = {"model": self.model, "device": self.device, "threads": self.config.threads_per_worker}
        embedded = _map_on_pool(dataset, EmbeddingActor, kwargs, self.config, ray)
        return _collect(embedded, len(texts), "vector", self.dimension, progress if callable(progress) else None)


def rerank_run(run, queries: dict, corpus: dict, depth: int, spec: ScorerSpec | None = None,
               config: RayConfig | None = None, progress: Callable[[int], None] | None = None,
               first_stage_weight: float = 0.0):
    """``crossrank.pipeline.run_reranking.rerank_run`` with the scoring on Ray: the same run comes back
    (same documents, same order, the same rule for documents below ``depth``)."""
    from crossrank.pipeline.run_reranking import rerank_run as rerank_locally

    return rerank_locally(RayScorer(spec, config), run, queries, corpus, depth, progress=progress,
                          first_stage_weight=first_stage_weight)
