"""The inference worker: one thread that owns the model and batches concurrent requests together.

Requests put a job on a bounded queue and await a future; the event loop never runs the model. The
worker takes the first waiting job, gathers whatever else arrives within ``max_wait_ms`` (up to
``max_pairs_per_pass`` pairs), scores all of their pairs in one engine call (which forms token-budget
batches across requests) and hands each job its own scores, in order. A failure fails only the jobs of
that pass; the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from crossrank.server.errors import InferenceFailed, Overloaded

logger = logging.getLogger("crossrank.server")

ADAPTIVE_SHARE = 0.02  # gathering window as a share of the previous pass's duration
ADAPTIVE_CAP_S = 0.2


@dataclass
class JobTimings:
    queue_ms: float = 0.0
    tokenization_ms: float = 0.0
    inference_ms: float = 0.0


@dataclass
class _Job:
    queries: list[str]
    documents: list[str]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False


@dataclass
class PassStats:
    """What one engine pass did, for the metrics."""

    requests: int
    pairs: int
    truncated_pairs: int
    seconds: float


class InferenceWorker:
    def __init__(self, engine, queue_size: int, max_wait_ms: float, max_pairs_per_pass: int, retry_after_s: int = 1,
                 on_pass=None):
        self.engine = engine
        self.max_wait = max_wait_ms / 1000.0
        self._last_pass_seconds = 0.0
        self.max_pairs = max_pairs_per_pass
        self.retry_after_s = retry_after_s
        self.on_pass = on_pass or (lambda stats: None)
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="crossrank-inference", daemon=True)
        self._carry: _Job | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued work, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def score(self, queries: list[str], documents: list[str], timeout: float) -> tuple[np.ndarray, JobTimings]:
        loop = asyncio.get_running_loop()
        job = _Job(queries, documents, loop.create_future(), loop)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Overloaded("the inference queue is full; retry shortly",
                             headers={"Retry-After": str(self.retry_after_s)}) from None
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except asyncio.TimeoutError:
            job.cancelled = True
            raise

    # -- the worker thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._carry or self._queue.get()
            self._carry = None
            if first is None:
                return
            jobs = [first]
            pairs = len(first.documents)
            window = max(self.max_wait, min(ADAPTIVE_CAP_S, ADAPTIVE_SHARE * self._last_pass_seconds))
            deadline = time.perf_counter() + window
            while pairs < self.max_pairs:
                remaining = deadline - time.perf_counter()
                try:
                    job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:  # shutting down: finish this pass, then stop
                    self._queue.put(None)
                    break
                if pairs + len(job.documents) > self.max_pairs:
                    self._carry = job  # first in the next pass
                    break
                jobs.append(job)
                pairs += len(job.documents)
            self._score(jobs)

    def _score(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if not j.cancelled]
        if not live:
            return
        started = time.perf_counter()
        queries = [q for j in live for q in j.queries]
        documents = [d for j in live for d in j.documents]
        try:
            scores, stats = self.engine.score(queries, documents)
        except Exception as exc:  # noqa: BLE001 - one bad pass must not stop the server
            logger.exception("inference failed for %d requests", len(live))
            for job in live:
                self._resolve(job, exception=InferenceFailed(f"inference failed: {type(exc).__name__}: {exc}"))
            return
        seconds = time.perf_counter() - started
        self._last_pass_seconds = seconds
        self.on_pass(PassStats(len(live), len(documents), stats.truncated_pairs, seconds))
        offset = 0
        total = max(1, len(documents))
        for job in live:
            n = len(job.documents)
            share = n / total  # tokenization and forward time of the shared pass, split by pair count
            timings = JobTimings(queue_ms=1000 * (started - job.enqueued),
                                 tokenization_ms=1000 * stats.tokenize_seconds * share,
                                 inference_ms=1000 * (stats.forward_seconds + stats.pad_seconds) * share)
            self._resolve(job, result=(scores[offset:offset + n], timings))
            offset += n

    @staticmethod
    def _resolve(job: _Job, result=None, exception: Exception | None = None) -> None:
        def settle() -> None:
            if job.future.done():
                return
            if exception is not None:
                job.future.set_exception(exception)
            else:
                job.future.set_result(result)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the event loop is gone (shutdown)
            pass
