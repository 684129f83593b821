"""``CrossEncoder``: the Python front of crossrank, one object over the model, engine and ranking layers."""

from __future__ import annotations

import logging
import os
import weakref
from copy import deepcopy
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from crossrank.engine.backends import check_combination, default_dtype, warn_if_slow
from crossrank.engine.onnx_export import read_manifest, verify_export
from crossrank.engine.scorer import ScoreStats, ScoringEngine
from crossrank.engine.token_budget import cuda_token_budget
from crossrank.engine.torch_backend import TorchBackend, resolve_devices
from crossrank.errors import BackendUnavailableError, InvalidInputError
from crossrank.model.default import default_model_dir
from crossrank.model.loading import LoadedModel, load_model
from crossrank.model.source import resolve_model_dir
from crossrank.model.siamese import siamese_pooling
from crossrank.model.tokenization import PairTokenizer
from crossrank.ranking.calibration import Calibration
from crossrank.ranking.chunking import Chunking, chunk_documents
from crossrank.ranking.ensemble import EnsembleConfig, EnsembleScorer
from crossrank.ranking.inputs import normalize_documents, validate_query, validate_text, validate_top_k
from crossrank.ranking.results import RerankResult, rank_scores, sigmoid

logger = logging.getLogger("crossrank")

# Padded tokens per batch. On CPU, ~2k-row matrices stay cache-resident and sorted small batches pad
# little (benchmarks/throughput.py: 2048 beats 8192 by ~20%); a GPU wants far bigger batches.
DEFAULT_BATCH_TOKENS = {"cpu": 2048, "cuda": 65536, "mps": 16384}

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32),
    "tanh": np.tanh,
    "softmax": lambda x: np.ones_like(x),  # softmax over a single logit
}


class CrossEncoder:
    """Score and rerank (query, document) pairs with a Hugging Face sequence-classification model.

    ``CrossEncoder()`` loads the shipped default; ``CrossEncoder("folder")`` or ``CrossEncoder("org/id")``
    loads any 1- or 2-label cross-encoder. Scores are raw logits (float32); results carry
    ``probability`` (see ``probability()``): the same on every surface for the same model and pair.

    ``batch_tokens`` bounds padded tokens per batch; ``query_max_tokens`` caps the query so truncation
    only ever cuts the document; ``cls_only_last_layer`` computes the final layer for [CLS] alone on
    BERT-style models (exact to float32 rounding; set False to run the stock forward pass); ``packed``
    (torch backend, BERT/RoBERTa-style models) never computes padding (``crossrank.engine.packed``).
    A folder with ``ensemble.json`` scores as the ensemble it declares; ``use_ensemble=False`` scores with
    the folder's own weights alone.

    ``device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; ``devices=["cuda:0", "cuda:1"]`` (or
    ``device="cuda"`` on a machine with several GPUs) loads one copy per device and shares each call's
    batches between them by tokens. On CUDA the batch budget comes from the free memory
    (``crossrank.engine.token_budget``), the next chunk of a big request is tokenized while the current one
    runs, and ``close()`` (or deleting the object) gives the memory back.

    ``backend``/``dtype``: ``torch`` in ``float32`` (the exact default on CPU; on CUDA ``bfloat16`` where the
    GPU supports it, else ``float16``), ``bfloat16`` or ``float16``;
    ``onnx`` in ``float32`` or ``int8`` (CPU; the graph is exported on first use and cached, see
    ``crossrank.engine.export_cache``). A folder written by ``crossrank export`` runs with the backend and
    dtype it was exported for. ``crossrank.engine.backends`` lists what runs where.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str | Sequence[str] = "cpu",
        backend: str | None = None,
        max_length: int | None = None,
        *,
        batch_tokens: int | None = None,
        max_batch_size: int = 512,
        query_max_tokens: int = 64,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        cls_only_last_layer: bool = True,
        use_ensemble: bool = True,
        packed: bool = False,
        devices: Sequence[str] | None = None,
    ):
        if devices is not None:
            device = list(devices)
        loaded, self.backends = _load_backend(model if model is not None else default_model_dir(), device, backend,
                                              dtype, max_length, trust_remote_code, revision, cls_only_last_layer,
                                              packed)
        self.backend = self.backends[0]
        self.backend_name, self.dtype = self.backend.name, self.backend.dtype_name
        self.model_dir = loaded.model_dir
        self.max_length = loaded.max_length
        self.num_labels = loaded.num_labels
        self.activation = loaded.settings.activation
        # ensemble.json beside the weights: score with the folder's model plus its declared partners.
        config = EnsembleConfig.load(loaded.model_dir)
        # calibration.json beside the weights, if any. It was fitted on the scores the folder gives as a
        # whole, so it does not apply to the folder's own weights scored alone (use_ensemble=False).
        own_weights_only = not use_ensemble and config is not None
        self.calibration = None if own_weights_only else Calibration.load(loaded.model_dir)
        self.tokenizer = PairTokenizer(loaded.tokenizer, loaded.max_length, query_max_tokens)
        self.device = str(self.backend.device)  # the first one where there are several
        self.devices = [str(b.device) for b in self.backends]
        device_type = self.backend.device.type
        if batch_tokens is None:
            batch_tokens = DEFAULT_BATCH_TOKENS.get(device_type, 8192)
            if device_type == "cuda":  # what the emptiest-handed GPU can hold, measured after loading
                batch_tokens = min(cuda_token_budget(b.device, b.model.config, b.dtype.itemsize, loaded.max_length)
                                   for b in self.backends)
        if batch_tokens < 1:
            raise InvalidInputError(f"batch_tokens must be positive, got {batch_tokens}")
        self.engine = ScoringEngine(self.tokenizer, self.backends, batch_tokens, max_batch_size,
                                    overlap_tokenization=device_type == "cuda")
        # A GPU's memory goes back when the CrossEncoder is deleted (or close()d), not when the process ends.
        self._release = weakref.finalize(self, _close_backends, list(self.backends))
        self._release.atexit = False  # the process's end frees everything anyway
        self.last_stats: ScoreStats | None = None
        self.ensemble = self._load_ensemble(config if use_ensemble else None, batch_tokens, trust_remote_code)

    def _load_ensemble(self, config: EnsembleConfig | None, batch_tokens: int, trust_remote_code: bool):
        if config is None:
            return None
        members = []
        for member in config.members:
            if member.kind == "cross-encoder" and member.path in (None, ".", ""):
                members.append(_OwnWeights(self))
            elif member.kind == "cross-encoder":
                # Partners run where this model runs: the resolved device, never the literal "auto".
                members.append(CrossEncoder(self.model_dir / member.path, device=self.devices,
                                            backend=self.backend_name, dtype=self.dtype,
                                            batch_tokens=batch_tokens, trust_remote_code=trust_remote_code))
            else:
                from crossrank.model.bi_encoder import BiEncoder
                from crossrank.ranking.bi_encoder_reranker import BiEncoderReranker

                path = None if member.path is None else self.model_dir / member.path
                members.append(BiEncoderReranker(BiEncoder(path, device=self.device)))
        return EnsembleScorer(members, config.weights, config.combine, config.stats, config.scale, config.bias)

    def score_with_stats(self, queries: Sequence[str], documents: Sequence[str],
                         progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, ScoreStats]:
        """Raw scores of parallel query/document lists and what the call did (every member's time included).

        The one scoring path under every surface (Python, CLI, search, HTTP), so each of them scores with
        the same model: the ensemble when the folder declares one.
        """
        if self.ensemble is None:
            scores, stats = self.engine.score(queries, documents, progress)
        else:
            scores = self.ensemble.score(list(zip(queries, documents)), progress)
            stats = self.ensemble.last_stats
        self.last_stats = stats
        return scores, stats

    def _score(self, queries: list[str], documents: list[str], progress) -> np.ndarray:
        return self.score_with_stats(queries, documents, progress)[0]

    def close(self) -> None:
        """Free the model's memory now (on a GPU: give it back to the card); scoring afterwards is an error.

        Deleting the last reference does the same; ``with CrossEncoder(...) as model:`` closes at the end.
        """
        if self.ensemble is not None:
            for member in self.ensemble.members:
                if isinstance(member, CrossEncoder):
                    member.close()
        self._release()

    def __enter__(self) -> "CrossEncoder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"devices={self.devices!r}" if len(self.devices) > 1 else f"device={self.device!r}"
        return (f"CrossEncoder({str(self.model_dir)!r}, {where}, backend={self.backend_name!r}, "
                f"dtype={self.dtype!r}, max_length={self.max_length})")

    def score(self, pairs: Sequence[tuple[str, str]], *, apply_activation: bool = False,
              progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Raw scores (float32 logits) of (query, document) pairs, in input order.

        ``apply_activation=True`` applies the activation the model folder declares (as
        sentence-transformers' ``predict`` does); it is the identity for most rerankers.
        """
        queries, documents = [], []
        for position, pair in enumerate(pairs):
            if isinstance(pair, (str, bytes)) or len(pair) != 2:
                raise InvalidInputError(f"pair {position} is not a (query, document) pair")
            queries.append(pair[0])
            documents.append(pair[1])
        for position, query in enumerate(queries):
            if not isinstance(query, str) or not isinstance(documents[position], str):
                raise InvalidInputError(f"pair {position} must hold two strings")
            validate_text(query, f"pair {position}: the query")
            validate_text(documents[position], f"pair {position}: the document")
        scores = self._score(queries, documents, progress)
        return _ACTIVATIONS[self.activation](scores) if apply_activation else scores

    def rerank(self, query: str, documents: Sequence[str | dict[str, Any]], top_k: int | None = None,
               *, return_documents: bool = True, chunking: Chunking | bool | None = None) -> list[RerankResult]:
        """Rank documents for one query, best first (ties keep input order), cut to ``top_k``.

        ``chunking=True`` (or a ``Chunking``): a document longer than the window is read in overlapping
        windows (at most 10 by default) and scored by its best one; each result then carries ``evidence``
        (that window's character span) and ``chunks``. Without it, long documents are truncated (logged).
        """
        return self.rerank_many([query], [documents], top_k, return_documents=return_documents,
                                chunking=chunking)[0]

    def rerank_many(self, queries: Sequence[str], documents_per_query: Sequence[Sequence[str | dict[str, Any]]],
                    top_k: int | Sequence[int | None] | None = None, *, return_documents: bool = True,
                    progress: Callable[[int], None] | None = None,
                    chunking: Chunking | bool | None = None) -> list[list[RerankResult]]:
        """Rerank several queries in one pass: pairs of all queries are batched together by length."""
        if len(queries) != len(documents_per_query):
            raise InvalidInputError(f"{len(queries)} queries but {len(documents_per_query)} document lists")
        top_ks = list(top_k) if isinstance(top_k, Sequence) else [top_k] * len(queries)
        if len(top_ks) != len(queries):
            raise InvalidInputError(f"{len(queries)} queries but {len(top_ks)} top_k values")
        validated = []
        for position, (query, documents) in enumerate(zip(queries, documents_per_query)):
            try:
                validated.append((validate_query(query), normalize_documents(documents),
                                  validate_top_k(top_ks[position])))
            except InvalidInputError as exc:
                raise InvalidInputError(f"query {position}: {exc}" if len(queries) > 1 else str(exc)) from None
        flat_queries = [query for query, docs, _ in validated for _ in docs.texts]
        flat_docs = [text for _, docs, _ in validated for text in docs.texts]
        chunked = None
        if chunking:
            options = chunking if isinstance(chunking, Chunking) else Chunking()
            chunked = chunk_documents(self.tokenizer, flat_queries, flat_docs, options)
            if chunked.unread:
                logger.warning("%d long documents have text beyond their first %d windows, which is not scored "
                               "(raise max_chunks to read more)", chunked.unread, options.max_chunks)
            per_document, _ = chunked.aggregate(self._score(chunked.queries, chunked.texts, progress),
                                                options.aggregation)
            scores = np.array([c.score for c in per_document], dtype=np.float32)
        else:
            scores = self._score(flat_queries, flat_docs, progress)
        results, start = [], 0
        for _, docs, k in validated:
            end = start + len(docs.texts)
            texts = docs.texts if return_documents else None
            ranked = rank_scores(scores[start:end], texts, docs.ids, k, self.probability)
            if chunked is not None:
                ranked = [replace(r, evidence=per_document[start + r.index].evidence,
                                  chunks=per_document[start + r.index].windows) for r in ranked]
            results.append(ranked)
            start = end
        return results

    def probability(self, scores) -> np.ndarray:
        """``probability`` of raw scores, float64; the one definition every surface uses.

        The model folder's ``calibration.json`` (written by ``crossrank calibrate``) when present, else
        ``sigmoid(score)``. The shipped default folds its calibration into its score (``ensemble.json``
        ``scale``/``bias``), so for it ``probability`` is ``sigmoid(score)`` and calibrated.
        """
        if self.calibration is not None:
            return self.calibration.probability(scores)
        if self.ensemble is not None:
            return self.ensemble.probability(scores)
        return np.array([sigmoid(s) for s in np.asarray(scores).ravel()], dtype=np.float64)

    def warm_up(self) -> None:
        """One small pass outside any timing: the first forward pass pays one-off costs (allocation, kernels)."""
        self.score([("warm up", "a short passage to warm up the model"),
                    ("warm up " * 8, "a longer passage to warm up the model " * 12)])

    # sentence-transformers spelling, for drop-in use.
    def predict(self, pairs: Sequence[tuple[str, str]], **kwargs: Any) -> np.ndarray:
        """Alias of ``score(pairs, apply_activation=True)``, matching sentence-transformers' ``predict``."""
        return self.score(pairs, apply_activation=True, **kwargs)


def _load_backend(model, device: str, backend: str | None, dtype: str | None, max_length: int | None,
                  trust_remote_code: bool, revision: str | None, cls_only_last_layer: bool, packed: bool = False):
    """The loaded model (config, tokenizer, settings) and the backend that will run it."""
    from crossrank.engine.onnx_export import open_graph

    model_dir = resolve_model_dir(model, revision)
    devices = resolve_devices(device)
    device_type = devices[0].type
    if len({d.type for d in devices}) > 1:
        raise BackendUnavailableError(f"devices {[str(d) for d in devices]} mix device types: use one type")
    if len(devices) > 1 and (backend or "torch") != "torch":
        raise BackendUnavailableError(f"several devices run on backend='torch', not {backend!r}")
    manifest = read_manifest(model_dir)
    if manifest is not None:  # a folder written by `crossrank export`
        wanted = (backend or manifest["backend"], dtype or manifest["dtype"])
        if wanted != (manifest["backend"], manifest["dtype"]) or device_type != "cpu" or len(devices) > 1:
            raise BackendUnavailableError(
                f"{model_dir} is an export for backend={manifest['backend']!r} dtype={manifest['dtype']!r} on the CPU; "
                f"for {wanted[0]}/{wanted[1]} on {device} load the source model ({manifest.get('source')})")
        loaded = load_model(model_dir, max_length=max_length, trust_remote_code=trust_remote_code,
                            with_weights=False)
        return loaded, [open_graph(manifest["backend"], verify_export(model_dir, manifest), manifest["dtype"])]
    backend = backend or "torch"
    dtype = dtype or default_dtype(backend, device_type)
    check_combination(backend, dtype, device_type)
    warn_if_slow(backend, dtype, device_type)
    def load(with_weights: bool = True) -> LoadedModel:
        return load_model(model_dir, max_length=max_length, trust_remote_code=trust_remote_code, revision=revision,
                          with_weights=with_weights)

    if packed and backend != "torch":
        raise BackendUnavailableError(f"packed=True is a torch-backend forward pass, not one for backend={backend!r}")
    if siamese_pooling(model_dir) is not None and (packed or backend != "torch"):
        raise BackendUnavailableError(f"{model_dir} is a bi-encoder scored as a pair model (siamese.json): it runs "
                                      "on backend='torch' without packed=True")
    if backend in ("onnx", "openvino"):
        from crossrank.engine.export_cache import cached_onnx_export

        # The torch weights are read only when the cached graph has to be (re)built.
        graph = cached_onnx_export(model_dir, dtype, load, cls_only_last_layer, backend)
        return load(with_weights=False), [open_graph(backend, graph, dtype)]
    loaded = load()
    backends = []
    for position, target in enumerate(devices):  # one copy of the weights per device
        copy = loaded if position == len(devices) - 1 else replace(loaded, model=deepcopy(loaded.model))
        backends.append(TorchBackend(copy, device=str(target), dtype=dtype, cls_only_last_layer=cls_only_last_layer,
                                     packed=packed))
    return loaded, backends


def _close_backends(backends: list) -> None:
    for backend in backends:
        close = getattr(backend, "close", None)
        if close is not None:
            close()


class _OwnWeights:
    """An ensemble member that scores with the CrossEncoder's own engine (its folder's weights)."""

    def __init__(self, owner: CrossEncoder):
        self.owner = owner
        self.last_stats: ScoreStats | None = None

    @property
    def tokenizer(self):
        return self.owner.tokenizer

    def score(self, pairs, progress=None) -> np.ndarray:
        scores, self.last_stats = self.owner.engine.score([q for q, _ in pairs], [d for _, d in pairs], progress)
        return scores

    def probability(self, scores) -> np.ndarray:
        return np.array([sigmoid(s) for s in np.asarray(scores).ravel()], dtype=np.float64)
