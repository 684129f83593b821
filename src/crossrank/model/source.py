"""Where a model lives: a local folder, a model shipped in the package ("default"), or a hub id.

The hub is often unreachable (air-gapped machines, CI), so a hub failure becomes one clear error that
says so and suggests a local folder, instead of a stack of connection retries.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from crossrank.errors import ModelLoadError
from crossrank.model.default import SHIPPED_MODELS, shipped_model_dir

# "org/name" or "name", as the hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_model_dir(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """Return a local folder holding the model, downloading from the hub only for a hub id."""
    text = os.fspath(name_or_path)
    if not text.strip():
        raise ModelLoadError("model name is empty: pass a local model folder or a hub id such as 'org/name'")
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model path {path} is a file, not a folder holding config.json and weights")
        return path.resolve()
    if text in SHIPPED_MODELS:
        return shipped_model_dir(text)
    if text.startswith((".", "/", "~")) or not _HUB_ID.match(text):
        raise ModelLoadError(f"model folder {path} does not exist")
    return _download_from_hub(text, revision)


def _download_from_hub(repo_id: str, revision: str | None) -> Path:
    """Fetch a hub snapshot, preferring the local cache; turn network failures into one clear error."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise ModelLoadError(f"cannot fetch {repo_id!r}: huggingface_hub is not installed") from exc

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "*.bin"]
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True, allow_patterns=patterns))
    except Exception:  # noqa: BLE001 - not cached: fall through to the network
        pass
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, etag_timeout=10))
    except Exception as exc:  # noqa: BLE001 - every hub failure gets the same advice
        raise ModelLoadError(
            f"could not fetch model {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). The machine may be offline: "
            "download the model elsewhere and pass its local folder instead "
            f"(no local folder named {repo_id!r} exists either) "
            "(for example CrossEncoder('/path/to/model-folder') or --model /path/to/model-folder)."
        ) from exc
