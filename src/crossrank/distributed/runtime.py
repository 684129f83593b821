"""Ray, imported lazily and started the way crossrank needs it.

Without an address crossrank starts a private local runtime sized to the machine: no dashboard, every
service bound to loopback. With ``--ray-address`` it joins an existing cluster (``auto``, ``HOST:PORT`` of
the head's GCS, or a ``ray://HOST:10001`` client address); an address that cannot be reached is one clear
error within seconds instead of Ray's long reconnect loop.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from crossrank.errors import BackendUnavailableError, InvalidInputError


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide a Ray job runs."""

    address: str | None = None  # None: a local runtime; "auto", "HOST:PORT" or "ray://HOST:PORT": a cluster
    workers: int | None = None  # actors in the pool (default: the cluster's CPUs / threads_per_worker)
    threads_per_worker: int = 1  # torch threads (and Ray CPUs reserved) per actor
    gpus_per_worker: float = 0.0  # GPUs per actor (a fraction shares one GPU)
    block_pairs: int = 1024  # rows per block: the unit of work an actor scores (and retries) at once
    # Blocks queued on one actor. 1 keeps the pool balanced (an idle actor takes the next block; with Ray's
    # default of 4 one actor could hold 4 of a job's last blocks while another idles); 2 overlaps a block's
    # transfer with the previous block's scoring, worth it on GPU actors fed large blocks.
    blocks_in_flight: int = 1

    def __post_init__(self):
        if self.threads_per_worker < 1:
            raise InvalidInputError(f"threads per worker must be at least 1, got {self.threads_per_worker}")
        if self.workers is not None and self.workers < 1:
            raise InvalidInputError(f"workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise InvalidInputError(f"GPUs per worker must not be negative, got {self.gpus_per_worker}")
        if self.block_pairs < 1:
            raise InvalidInputError(f"block size must be at least 1, got {self.block_pairs}")
        if self.blocks_in_flight < 1:
            raise InvalidInputError(f"blocks in flight per worker must be at least 1, got {self.blocks_in_flight}")

    def pool_size(self, ray) -> int:
        """Actors to start: as asked, else as many as the cluster's CPUs (or GPUs) allow."""
        if self.workers is not None:
            return self.workers
        resources = ray.cluster_resources()
        by_cpu = int(resources.get("CPU", 1) // self.threads_per_worker)
        if self.gpus_per_worker:
            by_gpu = int(resources.get("GPU", 0) // self.gpus_per_worker)
            if by_gpu < 1:
                raise BackendUnavailableError("GPUs per worker were asked for, but the Ray cluster has no GPU")
            return max(1, min(by_cpu, by_gpu))
        return max(1, by_cpu)


def import_ray():
    """The ray module, or an error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] part of the extra
    except ImportError as exc:
        raise BackendUnavailableError(f"scaling out on Ray needs the [ray] extra: pip install 'crossrank[ray]' "
                                      f"({exc.name} is missing)") from None
    return ray


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast when HOST:PORT does not accept a TCP connection."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"Ray address {address!r} is not 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise BackendUnavailableError(f"cannot reach the Ray cluster at {address!r} ({exc}): is the head node "
                                      "running (ray start --head) and the port open?") from None


def _quiet_ray_data(ray) -> None:
    """crossrank shows one progress bar of its own; Ray Data's bars and per-second log lines would bury it."""
    import logging

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    for name in ("ray.data", "ray.serve"):
        logging.getLogger(name).setLevel(logging.WARNING)


def connect(config: RayConfig | None = None):
    """Join (or start) the Ray runtime once per process; returns the ray module."""
    config = config or RayConfig()
    ray = import_ray()
    _quiet_ray_data(ray)
    if ray.is_initialized():
        return ray
    # Workers run crossrank's code from the installed package; keep their logs out of the user's terminal.
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if config.address is None:
        try:
            ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", **options)
        except Exception as exc:  # noqa: BLE001 - ray raises many kinds here
            raise BackendUnavailableError(f"could not start a local Ray runtime: {type(exc).__name__}: {exc}") from None
        return ray
    if config.address != "auto":
        _probe(config.address)
    try:
        ray.init(address=config.address, **options)
    except Exception as exc:  # noqa: BLE001
        raise BackendUnavailableError(f"cannot connect to the Ray cluster at {config.address!r}: "
                                      f"{type(exc).__name__}: {exc}") from None
    return ray
