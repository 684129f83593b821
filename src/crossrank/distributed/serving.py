"""``crossrank serve --ray``: the same HTTP application (routes, schemas, errors, auth, limits, metrics) as a
Ray Serve deployment with N replicas behind Ray's HTTP proxy.

Each replica builds the application itself (``serve.ingress`` with a builder, so nothing stateful is
pickled): its own model, its own inference worker and cross-request batching. Serve routes a request to a
replica only while that replica has fewer than ``max_ongoing_requests`` in flight; a replica batches only
what it has been given, so that cap is set to the replica's queue size: Serve's small default would
starve batching (a replica would never see more than a handful of requests to put in one pass).
What stays with Ray's proxy, not crossrank: the header size and header/body timeouts of ``crossrank
serve`` (the body-size, document and request limits are checked by the application and still apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crossrank.distributed.runtime import RayConfig, connect
from crossrank.distributed.scoring import ScorerSpec


@dataclass(frozen=True)
class ReplicaSettings:
    """How many replicas, or how they autoscale (Ray Serve's ``autoscaling_config`` keys)."""

    replicas: int = 1
    autoscaling: dict = field(default_factory=dict)  # e.g. {"min_replicas": 1, "max_replicas": 8,
    #                                                   "target_ongoing_requests": 32}; empty: fixed replicas
    max_ongoing_requests: int | None = None  # per replica; default: the server's queue size


class CrossrankReplica:
    """One replica of the service; the routes come from crossrank's FastAPI application (see build)."""


def build_deployment(spec: ScorerSpec, settings, config: RayConfig, replicas: ReplicaSettings):
    """A bound Ray Serve application serving crossrank's API."""
    from ray import serve

    threads = config.threads_per_worker

    def build_app():
        import torch

        from crossrank.server.app import create_app

        torch.set_num_threads(threads)
        # Load (and warm) the model here, in the replica's constructor: Serve routes to a replica only once
        # its constructor has returned, so no request ever meets a replica that is still loading (the plain
        # server loads in the background and answers 503 meanwhile; behind Serve that 503 would be
        # returned for a replica while its siblings are ready).
        model = spec.load()
        model.warm_up()
        return create_app(lambda: model, settings)

    options = {"name": "crossrank",
               "ray_actor_options": {"num_cpus": threads, "num_gpus": config.gpus_per_worker},
               "max_ongoing_requests": replicas.max_ongoing_requests or settings.queue_size}
    if replicas.autoscaling:
        options["autoscaling_config"] = dict(replicas.autoscaling)
    else:
        options["num_replicas"] = replicas.replicas
    return serve.deployment(**options)(serve.ingress(build_app)(CrossrankReplica)).bind()


def serve_on_ray(spec: ScorerSpec, settings, config: RayConfig | None = None,
                 replicas: ReplicaSettings | None = None, blocking: bool = True) -> None:
    """Deploy on the cluster (or a local runtime) and serve on ``settings.host:settings.port``."""
    config = config or RayConfig()
    connect(config)
    from ray import serve

    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_deployment(spec, settings, config, replicas or ReplicaSettings()), name="crossrank",
              route_prefix="/", blocking=blocking)
