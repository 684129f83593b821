"""Server limits and options; every field can come from a flag or a CROSSRANK_* environment variable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    max_documents: int = 1000  # per request
    max_document_chars: int = 100_000  # per document
    max_body_bytes: int = 20_000_000  # per request body; refused (413) as soon as more arrives
    max_header_bytes: int = 16_384  # request line and headers together (431 beyond)
    header_timeout_s: float = 10.0  # a request's headers must arrive within this, or the connection is closed
    body_timeout_s: float = 30.0  # a request's body must arrive within this (408 beyond)
    queue_size: int = 256  # requests waiting for the inference worker; beyond: 429
    max_wait_ms: float = 5.0  # how long the worker waits to gather concurrent requests into one pass
    max_pairs_per_pass: int = 4096  # pairs scored in one engine pass (across requests)
    request_timeout_s: float = 60.0  # per request, queueing included; beyond: 504
    retry_after_s: int = 1
    shutdown_grace_s: float = 20.0  # after SIGTERM: finish accepted work this long, then refuse the rest (503)
    docs: bool = False  # /docs and /redoc (their scripts come from a CDN, so they need internet)
    public_metrics: bool = False  # /metrics without the API key (for a Prometheus scraper)
    max_chunks_per_doc: int = 32  # cap on a request's max_chunks_per_doc (default 10; 1: long documents are cut)
    budget_ms: float | None = None  # with a fallback model: scoring time per request, queueing included
    policy: str = "fallback"  # fallback or cascade (server.budget)
    rescore: int = 20  # cascade: documents of each request the main model rescores
