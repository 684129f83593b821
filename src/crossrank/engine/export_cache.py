"""Export on first use: ``CrossEncoder(hf_folder, backend="onnx", dtype="int8")`` reuses a cached graph.

The cache lives in the model folder's ``.crossrank-exports/`` when that folder is writable, else in
``$CROSSRANK_HOME/exports/`` (default ``~/.cache/crossrank``). Entries are keyed by the SHA-256 of the
weights, so a changed checkpoint never meets an old graph. A lock file makes a second process wait for
the first one's export and then reuse it; an entry that is stale (another export format), foreign (other
weights) or damaged (graph hash mismatch) is rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from crossrank.engine.onnx_export import export_onnx, read_manifest, verify_export, weights_digest
from crossrank.errors import CrossrankError
from crossrank.model.default import cache_dir
from crossrank.model.loading import LoadedModel

logger = logging.getLogger("crossrank")

FOLDER_CACHE = ".crossrank-exports"


def cached_onnx_export(model_dir: Path, dtype: str, load_weights: Callable[[], LoadedModel],
                       cls_only_last_layer: bool = True, backend: str = "onnx") -> Path:
    """The verified graph of an export of ``model_dir`` for ``backend`` in ``dtype``; the torch weights are
    loaded (by ``load_weights``) only when the graph has to be exported."""
    digest = weights_digest(model_dir)
    key = f"{backend}-{dtype}-{'cls' if cls_only_last_layer else 'full'}-{digest[:20]}"
    root = _cache_root(model_dir)
    entry = root / key
    with _locked(root / f".{key}.lock"):
        graph = _verified_graph(entry, digest, dtype, backend)
        if graph is not None:
            return graph
        if entry.exists():
            logger.warning("rebuilding the cached export %s: it is stale, foreign or damaged", entry)
            shutil.rmtree(entry, ignore_errors=True)
        logger.info("exporting %s for %s %s (once; cached in %s)", model_dir, backend, dtype, entry)
        result = export_onnx(load_weights(), entry, dtype, cls_only_last_layer=cls_only_last_layer, backend=backend)
    return entry / result.manifest["graph"]


def _cache_root(model_dir: Path) -> Path:
    """The model folder's own cache when it can be written, else the user's cache."""
    own = model_dir / FOLDER_CACHE
    try:
        own.mkdir(exist_ok=True)
        probe = own / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return own
    except OSError:
        user = cache_dir() / "exports"
        user.mkdir(parents=True, exist_ok=True)
        return user


def _verified_graph(entry: Path, digest: str, dtype: str, backend: str) -> Path | None:
    """The entry's graph when the entry is sound and made from these weights in this dtype, else None."""
    try:
        manifest = read_manifest(entry)
        if (manifest is None or manifest.get("source_weights_sha256") != digest or manifest.get("dtype") != dtype
                or manifest.get("backend") != backend):
            return None
        return verify_export(entry, manifest)
    except CrossrankError:
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a second exporter waits, then finds the first one's graph
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
