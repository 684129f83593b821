"""The FastAPI application: routes, auth, limits, timing headers, metrics and the error handlers."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossrank.engine.memory import release_freed_memory
from crossrank.errors import InvalidInputError
from crossrank.ranking.inputs import normalize_documents, validate_query
from crossrank.ranking.results import RerankResult, rank_scores
from crossrank.server import errors
from crossrank.server.batcher import InferenceWorker, JobTimings
from crossrank.server.budget import BudgetedScorer, JobScores
from crossrank.server.limits import RequestLimits
from crossrank.server.metrics import ServerMetrics
from crossrank.server.schemas import (CohereRerankRequest, CohereRerankResponse, ErrorBody, TEIRerankRequest,
                                      TEIResult)
from crossrank.server.settings import ServerSettings

logger = logging.getLogger("crossrank.server")

_ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (400, 401, 408, 413, 422, 429, 431, 500, 503, 504)}


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


def create_app(load_model: Callable[[], object], settings: ServerSettings,
               load_fallback: Callable[[], object] | None = None) -> FastAPI:
    """``load_fallback``: the fallback model for ``settings.budget_ms`` (see ``server.budget``)."""
    state = ServiceState(settings)

    def load() -> None:
        try:
            ce = load_model()
            ce.warm_up()
            budgeted = None
            if load_fallback is not None:
                fallback = load_fallback()
                fallback.warm_up()
                budgeted = BudgetedScorer(ce, fallback, settings.budget_ms, settings.policy, settings.rescore)
                budgeted.measure()
                state.fallback = fallback
                logger.info(json.dumps({
                    "event": "fallback_loaded", "model": str(fallback.model_dir), "policy": settings.policy,
                    "budget_ms": settings.budget_ms,
                    "main_us_per_token": round(1e6 * budgeted.main_cost.per_token, 2),
                    "fallback_us_per_token": round(1e6 * budgeted.fallback_cost.per_token, 2)}))
            # The worker scores through the model front, so the server gives what Python and the CLI give.
            # After each pass, freed activation memory goes back to the OS: varied batch shapes would
            # otherwise ratchet the resident size up (crossrank.engine.memory says why).
            worker = InferenceWorker(ce, settings.queue_size, settings.max_wait_ms, settings.max_pairs_per_pass,
                                     settings.retry_after_s, state.metrics.on_pass, release_freed_memory, budgeted)
            worker.start()
            state.ce, state.model_name = ce, ce.model_dir.name
            state.worker = worker
            if state.shutting_down:  # a SIGTERM came while the model was loading
                worker.begin_shutdown(settings.shutdown_grace_s)
            logger.info(json.dumps({"event": "model_loaded", "model": str(ce.model_dir), "device": ce.device,
                                    "backend": ce.backend_name, "dtype": ce.dtype}))
        except Exception as exc:  # noqa: BLE001 - reported by /health
            state.load_error = f"{type(exc).__name__}: {exc}"
            logger.error(json.dumps({"event": "model_load_failed", "error": state.load_error}))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = threading.Thread(target=load, name="crossrank-model-loader", daemon=True)
        loader.start()
        yield
        state.begin_shutdown()
        loader.join()
        if state.worker is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: state.worker.stop(settings.shutdown_grace_s + 10))
        logger.info(json.dumps({"event": "stopped"}))

    # Swagger UI and ReDoc load their scripts from a CDN, so they are blank offline: off unless asked for.
    docs = {} if settings.docs else {"docs_url": None, "redoc_url": None}
    app = FastAPI(title="crossrank", version=_version(), lifespan=lifespan, **docs,
                  description="Cross-encoder reranking, compatible with the Cohere, Jina and TEI rerank APIs.")
    app.state.service = state
    _install_error_handlers(app)
    _install_middleware(app, state)

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        # Compare bytes: HTTP headers arrive as bytes (Starlette decodes them as Latin-1), so a key with
        # non-ASCII characters matches when the client sends it in UTF-8, as clients do.
        header = request.headers.get("authorization", "").encode("latin-1")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token, settings.api_key.encode("utf-8")):
            raise errors.Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'")

    def validate(query: str, texts: list[str]) -> None:
        """Every check of a request's content, before it may reach the queue (422 or 413)."""
        try:
            validate_query(query)
            normalize_documents(texts)  # non-empty, valid Unicode (a lone surrogate is a 422, not a 500)
        except InvalidInputError as exc:
            raise errors.ValidationFailed(str(exc)) from None
        if len(texts) > settings.max_documents:
            raise errors.PayloadTooLarge(f"{len(texts)} documents exceed the limit of {settings.max_documents}")
        for i, text in enumerate(texts):
            if len(text) > settings.max_document_chars:
                raise errors.PayloadTooLarge(f"document {i} has {len(text)} characters; the limit is "
                                             f"{settings.max_document_chars}")

    def prepare(query: str, texts: list[str], max_tokens: int | None, refuse_long: bool) -> list[str]:
        """CPU work on the request's texts (run off the event loop): cut to max_tokens, check length."""
        if max_tokens is not None:
            texts = [state.ce.tokenizer.cut_document(t, max_tokens) for t in texts]
        if refuse_long:
            lengths = state.ce.tokenizer([query] * len(texts), texts)
            if lengths.truncated_pairs:
                raise errors.PayloadTooLarge(f"{lengths.truncated_pairs} inputs exceed {state.ce.max_length} tokens "
                                             "and truncate is false")
        return texts

    async def rerank(request: Request, query: str, texts: list[str], max_tokens: int | None = None,
                     refuse_long: bool = False):
        """Scores of the (possibly cut) texts, in input order."""
        authorize(request)
        if state.shutting_down:
            raise errors.ShuttingDown("the server is shutting down; retry shortly",
                                      headers={"Retry-After": str(settings.retry_after_s)})
        if not state.ready:
            raise errors.NotReady(state.load_error or "the model is still loading")
        validate(query, texts)
        if max_tokens is not None or refuse_long:
            texts = await asyncio.to_thread(prepare, query, texts, max_tokens, refuse_long)
        state.metrics.queue_depth.set(state.worker.depth)
        try:
            scored, timings = await state.worker.score([query] * len(texts), texts, settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise errors.Timeout(f"request not answered within {settings.request_timeout_s:g} s") from None
        request.state.timings = timings
        request.state.fallback_scored = scored.fallback_scored
        return scored

    def ranked(scored: JobScores, texts: list[str], top_n: int | None) -> list[tuple[RerankResult, str | None]]:
        """Best first, each with the model that scored it (None without a fallback). With a fallback, in
        tiers: the main model's documents by its probability, then the fallback's by its own."""
        if scored.scored_by is None:
            return [(r, None) for r in rank_scores(scored.scores, texts, None, top_n, state.ce.probability)]
        out = []
        for role, model in (("main", state.ce), ("fallback", state.fallback)):
            rows = [i for i, who in enumerate(scored.scored_by) if who == role]
            part = rank_scores(scored.scores[rows], [texts[i] for i in rows], None, None, model.probability)
            out += [(replace(r, index=rows[r.index]), role) for r in part]
        return out[:top_n]

    @app.post("/v1/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True,
              responses=_ERROR_RESPONSES, tags=["rerank"], summary="Rerank (Cohere v1 / Jina shape)")
    async def rerank_v1(body: CohereRerankRequest, request: Request):
        return await _cohere(body, request, "1")

    @app.post("/v2/rerank", response_model=CohereRerankResponse, response_model_exclude_none=True,
              responses=_ERROR_RESPONSES, tags=["rerank"], summary="Rerank (Cohere v2 shape)")
    async def rerank_v2(body: CohereRerankRequest, request: Request):
        return await _cohere(body, request, "2")

    async def _cohere(body: CohereRerankRequest, request: Request, version: str):
        texts = [d if isinstance(d, str) else d.text for d in body.documents]
        scored = await rerank(request, body.query, texts, body.max_tokens_per_doc)
        # Documents come back as sent, never as the cut text that was scored.
        results = [{"index": r.index, "relevance_score": r.probability, "scored_by": role,
                    **({"document": {"text": r.text}} if body.return_documents else {})}
                   for r, role in ranked(scored, texts, body.top_n)]
        return {"id": str(uuid.uuid4()), "results": results, "model": body.model or state.model_name,
                "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}}}

    @app.post("/rerank", response_model=list[TEIResult], response_model_exclude_none=True,
              responses=_ERROR_RESPONSES, tags=["rerank"], summary="Rerank (Hugging Face TEI shape)")
    async def rerank_tei(body: TEIRerankRequest, request: Request):
        if body.truncation_direction.lower() == "left":  # accepted by the schema for TEI clients, not done here
            raise errors.ValidationFailed("truncation_direction 'left' is not supported: documents lose their end")
        scored = await rerank(request, body.query, body.texts, refuse_long=body.truncate is False)
        return [{"index": r.index, "score": r.score if body.raw_scores else r.probability, "scored_by": role,
                 **({"text": r.text} if body.return_text else {})}
                for r, role in ranked(scored, body.texts, None)]

    @app.get("/health", tags=["operations"], responses={503: {"model": ErrorBody}})
    async def health():
        if state.shutting_down:
            raise errors.ShuttingDown("the server is shutting down")
        if state.ready:
            return {"status": "ok", "model": state.model_name}
        if state.load_error:
            raise errors.NotReady(f"model failed to load: {state.load_error}")
        raise errors.NotReady("the model is still loading")

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics(request: Request):
        if not settings.public_metrics:  # a Prometheus scraper often has no key: --public-metrics
            authorize(request)
        if state.worker is not None:
            state.metrics.queue_depth.set(state.worker.depth)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _version() -> str:
    from crossrank import __version__

    return __version__


def _install_error_handlers(app: FastAPI) -> None:
    def render(error: errors.ApiError) -> JSONResponse:
        return JSONResponse(errors.body(error), status_code=error.status, headers=error.headers)

    @app.exception_handler(errors.ApiError)
    async def api_error(request: Request, exc: errors.ApiError):
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return render(errors.BadRequest("request body is not valid JSON"))
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        return render(errors.ValidationFailed(f"{where}: {first.get('msg', 'invalid value')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI could not decode the body (e.g. invalid UTF-8)
            return render(errors.BadRequest(f"request body could not be parsed as UTF-8 JSON ({exc.detail})"))
        kind = {404: errors.NotFound}.get(exc.status_code)
        if kind is not None:
            return render(kind(str(exc.detail)))
        return JSONResponse({"error": str(exc.detail), "error_type": "http_error"}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        logger.exception("unhandled error")
        return render(errors.ApiError(f"internal error: {type(exc).__name__}"))


def _install_middleware(app: FastAPI, state: ServiceState) -> None:
    settings = state.settings
    # Added first, so it runs inside `observe`: its 413/408/431 answers are timed and counted too.
    app.add_middleware(RequestLimits, max_header_bytes=settings.max_header_bytes,
                       max_body_bytes=settings.max_body_bytes, body_timeout_s=settings.body_timeout_s)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        if request.method == "POST" and "json" not in request.headers.get("content-type", ""):
            # Every body here is JSON: parse it as such whatever the client declared (curl -d sends a form type).
            request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"] + \
                [(b"content-type", b"application/json")]
        response = await call_next(request)
        total = time.perf_counter() - started
        timings: JobTimings | None = getattr(request.state, "timings", None)
        response.headers["x-total-time"] = f"{1000 * total:.2f}"
        if timings is not None:
            response.headers["x-queue-time"] = f"{timings.queue_ms:.2f}"
            response.headers["x-tokenization-time"] = f"{timings.tokenization_ms:.2f}"
            response.headers["x-inference-time"] = f"{timings.inference_ms:.2f}"
        fallback_scored = getattr(request.state, "fallback_scored", 0)
        if fallback_scored:
            response.headers["x-fallback-scored"] = str(fallback_scored)
        endpoint = request.url.path if request.url.path in {"/v1/rerank", "/v2/rerank", "/rerank", "/health",
                                                            "/metrics"} else "other"
        state.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        state.metrics.latency.labels(endpoint).observe(total)
        logger.info(json.dumps({"event": "request", "method": request.method, "path": request.url.path,
                                "status": response.status_code, "ms": round(1000 * total, 2)}))
        return response
