"""Prometheus metrics of the service, on a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("crossrank_requests_total", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("crossrank_request_duration_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.batch_pairs = Histogram("crossrank_batch_pairs", "Pairs scored per engine pass (across requests)",
                                     buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096), registry=self.registry)
        self.batch_requests = Histogram("crossrank_batch_requests", "Requests merged into one engine pass",
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.queue_depth = Gauge("crossrank_queue_depth", "Requests waiting for the inference worker",
                                 registry=self.registry)
        self.truncated = Counter("crossrank_truncated_pairs_total", "Pairs that lost tokens to truncation",
                                 registry=self.registry)
        self.pairs = Counter("crossrank_pairs_total", "Pairs scored", registry=self.registry)

    def on_pass(self, stats) -> None:
        self.batch_pairs.observe(stats.pairs)
        self.batch_requests.observe(stats.requests)
        self.truncated.inc(stats.truncated_pairs)
        self.pairs.inc(stats.pairs)

    def render(self) -> bytes:
        return generate_latest(self.registry)
