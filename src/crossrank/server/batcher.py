"""The inference worker: one thread that owns the model and batches concurrent requests together.

Requests put a job on a bounded queue and await a future; the event loop never runs the model. The
worker takes the first waiting job, gathers whatever else arrives within ``max_wait_ms`` (up to
``max_pairs_per_pass`` pairs), scores all of their pairs in one call of the model front
(``CrossEncoder.score_with_stats``: ensembles and calibration included, token-budget batches formed across
requests) and hands each job its own scores, in order. A failure fails only the jobs of that pass; the
worker keeps serving.

With a ``budgeted`` scorer (``serve --fallback-model --budget-ms``, see ``server.budget``) a pass scores
with two models instead, and each job learns which model scored each of its documents.

Shutdown: ``begin_shutdown(grace)`` refuses new jobs at once (503); work already accepted is finished
until the grace period ends, and whatever is still queued or running then is refused cleanly (503 with
Retry-After) between two batches, so the thread always ends and no request is left without an answer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from crossrank.server.budget import BudgetedScorer, JobScores
from crossrank.server.errors import InferenceFailed, Overloaded, ShuttingDown

logger = logging.getLogger("crossrank.server")

ADAPTIVE_SHARE = 0.02  # gathering window as a share of the previous pass's duration
ADAPTIVE_CAP_S = 0.2


@dataclass
class JobTimings:
    queue_ms: float = 0.0
    tokenization_ms: float = 0.0
    inference_ms: float = 0.0
    tokens: int = 0  # the job's share of the pass's real (unpadded) tokens


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


class _PastGrace(Exception):
    """Raised between two batches once the shutdown grace period is over."""


class InferenceWorker:
    def __init__(self, scorer, queue_size: int, max_wait_ms: float, max_pairs_per_pass: int, retry_after_s: int = 1,
                 on_pass=None, after_pass=None, budgeted: BudgetedScorer | None = None):
        self.scorer = scorer  # the model front: score_with_stats(queries, documents, progress)
        self.budgeted = budgeted
        self.after_pass = after_pass or (lambda: None)
        self._grace_deadline: float | None = None
        self._in_pass = False
        self.max_wait = max_wait_ms / 1000.0
        self._last_pass_seconds = 0.0
        self._last_pass_requests = 0
        self.max_pairs = max_pairs_per_pass
        self.retry_after_s = retry_after_s
        self.on_pass = on_pass or (lambda stats: None)
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="crossrank-inference", daemon=True)
        self._carry: _Job | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish (or, past the grace period, refuse) queued work, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def begin_shutdown(self, grace_s: float) -> None:
        """Refuse new work from now on; finish accepted work for ``grace_s`` seconds, then refuse the rest."""
        if self._grace_deadline is None:
            self._grace_deadline = time.monotonic() + grace_s

    @property
    def idle(self) -> bool:
        """Nothing queued and no pass running: a shutdown may proceed."""
        return not self._in_pass and self._carry is None and self._queue.empty()

    @property
    def shutting_down(self) -> bool:
        return self._grace_deadline is not None

    def _past_grace(self) -> bool:
        return self._grace_deadline is not None and time.monotonic() >= self._grace_deadline

    def _shutdown_error(self) -> ShuttingDown:
        return ShuttingDown("the server is shutting down; retry on another replica or shortly",
                            headers={"Retry-After": str(self.retry_after_s)})

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def score(self, queries: list[str], documents: list[str], timeout: float) -> tuple[JobScores, JobTimings]:
        if self.shutting_down:
            raise self._shutdown_error()
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
            self._in_pass = True
            jobs = [first]
            pairs = len(first.documents)
            # No wait when the last pass served a lone request and nothing is queued: a lone client (concurrency
            # 1) sends its next request only after this answer, so any wait would be pure latency.
            window = max(self.max_wait, min(ADAPTIVE_CAP_S, ADAPTIVE_SHARE * self._last_pass_seconds)) \
                if self._last_pass_requests != 1 or not self._queue.empty() else 0.0
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
            try:
                self._score(jobs)
            finally:
                self._in_pass = False
                self.after_pass()  # e.g. return freed memory to the OS, after failed or cut passes too

    def _score(self, jobs: list[_Job]) -> None:
        live = [j for j in jobs if not j.cancelled]
        if not live:
            return
        if self._past_grace():
            for job in live:
                self._resolve(job, exception=self._shutdown_error())
            return
        started = time.perf_counter()
        queries = [q for j in live for q in j.queries]
        documents = [d for j in live for d in j.documents]
        try:
            if self.budgeted is not None:  # the tightest request of the pass sets its time
                left = min(self.budgeted.budget_s - (started - j.enqueued) for j in live)
                results, stats = self.budgeted.score_jobs([(j.queries, j.documents) for j in live], left,
                                                          progress=self._between_batches)
            else:
                scores, stats = self.scorer.score_with_stats(queries, documents, progress=self._between_batches)
                bounds = np.cumsum([0] + [len(j.documents) for j in live])
                results = [JobScores(scores[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        except _PastGrace:
            for job in live:
                self._resolve(job, exception=self._shutdown_error())
            return
        except Exception as exc:  # noqa: BLE001 - one bad pass must not stop the server
            if len(live) > 1:  # find the failing request: the others must not pay for it
                logger.warning("a pass of %d requests failed (%s); scoring them one by one", len(live), exc)
                for job in live:
                    self._score([job])
                return
            logger.exception("inference failed for one request")
            self._resolve(live[0], exception=InferenceFailed(f"inference failed: {type(exc).__name__}: {exc}"))
            return
        seconds = time.perf_counter() - started
        self._last_pass_seconds, self._last_pass_requests = seconds, len(live)
        self.on_pass(PassStats(len(live), len(documents), stats.truncated_pairs, seconds))
        total = max(1, len(documents))
        for job, result in zip(live, results):
            share = len(job.documents) / total  # the job's share of the pass's tokens
            # As TEI reports them: the whole pass the request waited for (tokenization, and the forward passes
            # of every member, an ensemble's bi-encoder partner included), not its share of it.
            timings = JobTimings(queue_ms=1000 * (started - job.enqueued),
                                 tokenization_ms=1000 * stats.tokenize_seconds,
                                 inference_ms=1000 * (stats.forward_seconds + stats.pad_seconds + stats.partner_seconds),
                                 tokens=round(stats.real_tokens * share))
            self._resolve(job, result=(result, timings))

    def _between_batches(self, pairs_done: int) -> None:
        """The engine's progress callback: the one point where a pass can stop cleanly."""
        if self._past_grace():
            raise _PastGrace()

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
