"""The FastAPI application: model loading, health and metrics, timing headers, and the error handlers.

The scoring routes live in ``server.routes`` (one function per API shape), what they share in
``server.service``, the request and response bodies in ``server.schemas``, the queue in ``server.batcher``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossrank.engine.memory import release_freed_memory
from crossrank.server import errors
from crossrank.server.batcher import InferenceWorker, JobTimings
from crossrank.server.budget import BudgetedScorer
from crossrank.server.limits import RequestLimits
from crossrank.server.routes import SCORING_PATHS, install_routes
from crossrank.server.schemas import ErrorBody
from crossrank.server.service import ServiceState
from crossrank.server.settings import ServerSettings

logger = logging.getLogger("crossrank.server")


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
                                    "devices": ce.devices, "backend": ce.backend_name, "dtype": ce.dtype,
                                    "batch_tokens": ce.engine.batch_tokens}))
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

    install_routes(app, state)

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
            state.authorize(request)
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
        # Drop the body and the shape tags of /rerank's union (tei, vllm) from the field's path.
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "tei", "vllm")) or "body"
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
        endpoint = request.url.path if request.url.path in {*SCORING_PATHS, "/health", "/metrics"} else "other"
        state.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        state.metrics.latency.labels(endpoint).observe(total)
        logger.info(json.dumps({"event": "request", "method": request.method, "path": request.url.path,
                                "status": response.status_code, "ms": round(1000 * total, 2)}))
        return response
