"""Scale-out on Ray: batch reranking and index embedding on an actor pool, and a replicated HTTP service.

Needs the ``[ray]`` extra (``pip install 'crossrank[ray]'``); nothing here is imported by the core package.

- ``rerank_run(...)``: the ``crossrank rerank-run --ray`` job from Python (same output as the single process).
- ``score_dataset(dataset, spec)``: score a Ray Dataset of (query, text) rows you already have (parquet, ...).
- ``RayScorer``: a pair scorer (``score(pairs)``) whose work runs on Ray actors; ``RayEncoder`` embeds texts.
- ``serve_on_ray(...)``: ``crossrank serve --ray``, the same HTTP API as a Ray Serve application.
"""

from crossrank.distributed.runtime import RayConfig, connect, import_ray
from crossrank.distributed.scoring import RayEncoder, RayScorer, ScorerSpec, rerank_run, score_dataset

__all__ = ["RayConfig", "RayEncoder", "RayScorer", "ScorerSpec", "connect", "import_ray", "rerank_run",
           "score_dataset"]
