"""What every API shape shares: the loaded models, the key check, validation, cutting and chunking, the
queue, and the final order. Routes (``server.routes``) translate their request shape into one call of
``ServiceState.score`` and its answer back into their response shape."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, replace

import numpy as np
from fastapi import Request

from crossrank.errors import InvalidInputError
from crossrank.ranking.chunking import ChunkedScore, Chunking, chunk_documents
from crossrank.ranking.inputs import normalize_documents, validate_query
from crossrank.ranking.results import RerankResult, rank_scores
from crossrank.server import errors
from crossrank.server.batcher import InferenceWorker
from crossrank.server.budget import JobScores
from crossrank.server.metrics import ServerMetrics
from crossrank.server.settings import ServerSettings

DEFAULT_CHUNKS_PER_DOC = 10  # Cohere v1's max_chunks_per_doc default
MAX_WINDOWS_PER_REQUEST = 10_000  # Cohere's limit on documents x max_chunks_per_doc


@dataclass
class Scored(JobScores):
    """One request's documents, scored (``JobScores``: raw scores in input order, which model scored each),
    with each document's best window when chunked, and the tokens the request cost."""

    windows: list[ChunkedScore] | None = None
    tokens: int = 0


class ServiceState:
    """The model and worker, filled in once loading has finished (until then /health answers 503)."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.metrics = ServerMetrics()
        self.ce = None
        self.fallback = None  # the fallback model under a latency budget (serve --fallback-model)
        self.worker: InferenceWorker | None = None
        self.load_error: str | None = None
        self.model_name = "crossrank"
        self.shutting_down = False

    @property
    def ready(self) -> bool:
        return self.worker is not None

    def drained(self) -> bool:
        """True once no accepted request is waiting for the model (or the grace period has refused them)."""
        return self.worker is None or self.worker.idle

    def begin_shutdown(self) -> None:
        """From now on /health says 503 and new requests are refused; accepted work gets the grace period."""
        self.shutting_down = True
        if self.worker is not None:
            self.worker.begin_shutdown(self.settings.shutdown_grace_s)

    # -- every scoring request ------------------------------------------------------------------------------
    def authorize(self, request: Request) -> None:
        if self.settings.api_key is None:
            return
        # Compare bytes: HTTP headers arrive as bytes (Starlette decodes them as Latin-1), so a key with
        # non-ASCII characters matches when the client sends it in UTF-8, as clients do.
        header = request.headers.get("authorization", "").encode("latin-1")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token, self.settings.api_key.encode("utf-8")):
            raise errors.Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'")

    def validate(self, queries: list[str], texts: list[str]) -> None:
        """Every check of a request's content, before it may reach the queue (422 or 413)."""
        try:
            for query in dict.fromkeys(queries):
                validate_query(query)
            normalize_documents(texts)  # non-empty, valid Unicode (a lone surrogate is a 422, not a 500)
        except InvalidInputError as exc:
            raise errors.ValidationFailed(str(exc)) from None
        if len(texts) > self.settings.max_documents:
            raise errors.PayloadTooLarge(f"{len(texts)} documents exceed the limit of {self.settings.max_documents}")
        for i, text in enumerate(texts):
            if len(text) > self.settings.max_document_chars:
                raise errors.PayloadTooLarge(f"document {i} has {len(text)} characters; the limit is "
                                             f"{self.settings.max_document_chars}")

    def chunks(self, requested: int | None, documents: int) -> int:
        """Windows per document: ``max_chunks_per_doc`` as requested (Cohere's default 10 when not), within
        the server's cap and Cohere's limit of 10,000 windows per request."""
        wanted = requested if requested is not None else DEFAULT_CHUNKS_PER_DOC
        cap = self.settings.max_chunks_per_doc
        if wanted > cap:
            if requested is None:  # the server's cap is below Cohere's default: the cap
                return cap
            raise errors.ValidationFailed(f"max_chunks_per_doc {wanted} exceeds this server's limit of {cap}")
        if documents * wanted > MAX_WINDOWS_PER_REQUEST:
            raise errors.ValidationFailed(f"{documents} documents x max_chunks_per_doc {wanted} exceed "
                                          f"{MAX_WINDOWS_PER_REQUEST} chunks per request: lower max_chunks_per_doc")
        return wanted

    def _prepare(self, queries: list[str], texts: list[str], max_tokens: int | None, refuse_long: bool,
                 chunking: Chunking | None):
        """CPU work on the request's texts (run off the event loop): cut to max_tokens, check length, then
        split long documents into windows (``max_tokens_per_doc`` cuts first, chunking reads what is left)."""
        tokenizer = self.ce.tokenizer
        if max_tokens is not None:
            texts = [tokenizer.cut_document(t, max_tokens) for t in texts]
        if refuse_long:
            lengths = tokenizer(queries, texts)
            if lengths.truncated_pairs:
                raise errors.PayloadTooLarge(f"{lengths.truncated_pairs} inputs exceed {self.ce.max_length} tokens "
                                             "and truncation is off")
        return texts, None if chunking is None else chunk_documents(tokenizer, queries, texts, chunking)

    async def score(self, request: Request, queries: str | list[str], texts: list[str], *,
                    max_tokens: int | None = None, refuse_long: bool = False,
                    chunking: Chunking | None = None) -> Scored:
        """Score (query, text) pairs (one query for all, or one per text) through the queue."""
        self.authorize(request)
        if self.shutting_down:
            raise errors.ShuttingDown("the server is shutting down; retry shortly",
                                      headers={"Retry-After": str(self.settings.retry_after_s)})
        if not self.ready:
            raise errors.NotReady(self.load_error or "the model is still loading")
        queries = [queries] * len(texts) if isinstance(queries, str) else queries
        self.validate(queries, texts)
        chunked = None
        if max_tokens is not None or refuse_long or chunking is not None:
            texts, chunked = await asyncio.to_thread(self._prepare, queries, texts, max_tokens, refuse_long, chunking)
        if chunked is not None:
            queries, texts = chunked.queries, chunked.texts
        self.metrics.queue_depth.set(self.worker.depth)
        try:
            job, timings = await self.worker.score(queries, texts, self.settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise errors.Timeout(f"request not answered within {self.settings.request_timeout_s:g} s") from None
        request.state.timings = timings
        scored = Scored(job.scores, job.scored_by, None, timings.tokens)
        if chunked is not None:  # each document by its best window (never mixing two models' windows)
            windows, roles = chunked.aggregate(job.scores, "max", job.scored_by)
            scored = Scored(np.array([w.score for w in windows], dtype=np.float32), roles, windows, timings.tokens)
        request.state.fallback_scored = scored.fallback_scored
        return scored

    def ranked(self, scored: Scored, texts: list[str] | None, top_n: int | None
               ) -> list[tuple[RerankResult, str | None]]:
        """Best first, each with the model that scored it (None without a fallback). With a fallback, in
        tiers: the main model's documents by its probability, then the fallback's by its own."""
        if scored.scored_by is None:
            return [(r, None) for r in rank_scores(scored.scores, texts, None, top_n, self.ce.probability)]
        out = []
        for role, model in (("main", self.ce), ("fallback", self.fallback)):
            rows = [i for i, who in enumerate(scored.scored_by) if who == role]
            part = rank_scores(scored.scores[rows], None if texts is None else [texts[i] for i in rows], None,
                               None, model.probability)
            out += [(replace(r, index=rows[r.index]), role) for r in part]
        return out[:top_n]

    def probabilities(self, scored: Scored) -> np.ndarray:
        """Each score's probability, in input order, by the model that gave it."""
        main = np.asarray(self.ce.probability(scored.scores), dtype=np.float64)
        if scored.scored_by is None:
            return main
        fallback = np.asarray(self.fallback.probability(scored.scores), dtype=np.float64)
        return np.where(np.array(scored.scored_by) == "main", main, fallback)
