"""Export a cross-encoder to an ONNX graph (fp32 or int8) in a self-describing model folder.

The folder holds ``model.onnx`` (or, for OpenVINO, ``model.xml`` + ``model.bin`` converted from it), the tokenizer, config and crossrank's own files (ensemble, calibration),
and ``crossrank-export.json``: the source weights' SHA-256, backend, dtype, opset, runtime versions, the
graph's own SHA-256 and the measured agreement with fp32. ``CrossEncoder(folder)`` reads the manifest and
runs the graph with ONNX Runtime; a graph whose hash no longer matches is refused, never trusted.

The graph computes the score itself (1-label logit, or positive minus negative logit) and keeps the
[CLS]-only last layer of ``crossrank.engine.cls_only`` for BERT-style models.

int8 is ONNX Runtime's dynamic quantization (weights int8 per output channel, activations quantized per
batch at run time, VNNI kernels on CPUs that have them) of a model first rewritten by
``crossrank.engine.int8_prep``: the [CLS] row, the classifier head and pooler stay fp32 and the other rows'
activations are smoothed. ``benchmarks/results/throughput.md`` reports what each variant measured.

Attention is exported in its eager form (an additive mask): the SDPA form exports as Where/IsNaN over
every attention matrix, which cost a fifth of the graph's time.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from crossrank.engine.agreement import Agreement, SamplePairs, builtin_sample, measure
from crossrank.engine.cls_only import ClsOnlyForward
from crossrank.engine.int8_prep import float32_nodes, materialize_shared_initializers, prepare_for_int8, sample_batches
from crossrank.engine.onnx_backend import OnnxBackend, import_onnxruntime
from crossrank.engine.openvino_backend import OpenVinoBackend, import_openvino
from crossrank.engine.scorer import ScoringEngine
from crossrank.engine.torch_backend import TorchBackend
from crossrank.errors import BackendUnavailableError, ModelLoadError
from crossrank.model.loading import LoadedModel
from crossrank.model.tokenization import PairTokenizer

logger = logging.getLogger("crossrank")

MANIFEST = "crossrank-export.json"
FORMAT = "crossrank-export"
VERSION = 2  # bump when the graph's inputs, outputs or quantization change: cached graphs are then rebuilt
GRAPH = "model.onnx"
GRAPH_FILES = {"onnx": (GRAPH, None), "openvino": ("model.xml", "model.bin")}  # graph, and its weights file
OPSET = 17
ONNX_DTYPES = ("float32", "int8")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_NOT_COPIED = {*_WEIGHT_FILES, GRAPH, "model.xml", "model.bin", MANIFEST}


class ExportQualityError(ModelLoadError):
    """An export's scores drift from fp32 beyond the thresholds and ``strict`` was asked for (exit 4)."""


@dataclass
class ExportResult:
    folder: Path
    manifest: dict
    agreement: Agreement
    seconds: float


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(model_dir: Path) -> str:
    """SHA-256 over the folder's weight files and config: the key of a cached export."""
    digest = hashlib.sha256()
    for name in (*_WEIGHT_FILES, "config.json"):
        file = model_dir / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(sha256_file(file).encode())
    for shard in sorted(model_dir.glob("model-*.safetensors")):
        digest.update(shard.name.encode())
        digest.update(sha256_file(shard).encode())
    return digest.hexdigest()


class ScoreGraph(torch.nn.Module):
    """The module that is exported: padded batch in, one float32 score per pair out."""

    def __init__(self, model: torch.nn.Module, num_labels: int, cls_only_last_layer: bool = True):
        super().__init__()
        model = copy.deepcopy(model).float().eval().requires_grad_(False)
        with contextlib.suppress(Exception):  # older transformers or models without the switch keep theirs
            model.set_attn_implementation("eager")
        self.num_labels = num_labels
        self.cls_only = cls_only_last_layer and ClsOnlyForward.supports(model)
        self.model = model
        if self.cls_only:
            self.last = ClsOnlyForward(model)  # its hook stays inactive: the truncated encoder never reaches it
            base = getattr(model, model.base_model_prefix)
            self.last_layer = base.encoder.layer[-1]  # still a submodule, so its weights are the graph's weights
            base.encoder.layer = base.encoder.layer[:-1]
            self.base = base

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        if self.cls_only:
            hidden = self.base(**inputs).last_hidden_state  # every layer but the last
            logits = self.last.head(self.last.last_layer_for_first_token(hidden, attention_mask))
        else:
            logits = self.model(**inputs).logits
        return logits[:, 0] if self.num_labels == 1 else logits[:, 1] - logits[:, 0]


def export_onnx(loaded: LoadedModel, output: Path, dtype: str = "int8", sample: SamplePairs | None = None,
                strict: bool = False, cls_only_last_layer: bool = True, progress=None,
                thresholds: dict[str, float] | None = None, backend: str = "onnx") -> ExportResult:
    """Write an export folder at ``output`` (atomically: a finished folder or none) for ONNX Runtime
    (``model.onnx``) or OpenVINO (``model.xml`` + ``model.bin``, converted from the same ONNX graph)."""
    if backend not in GRAPH_FILES:
        raise BackendUnavailableError(f"crossrank export writes graphs for backend 'onnx' or 'openvino', not {backend!r}")
    if dtype not in ONNX_DTYPES:
        raise BackendUnavailableError(f"backend {backend!r} supports dtype {' or '.join(ONNX_DTYPES)}, not {dtype!r}; "
                                      "for bfloat16 use backend='torch' (dtype='bfloat16')")
    runtime = import_onnxruntime() if backend == "onnx" else import_openvino()
    try:
        import onnx  # noqa: F401 - the quantizer and the exporter need it
    except ImportError as exc:
        raise BackendUnavailableError(f"exporting to ONNX needs the onnx package, from the [onnx] extra: "
                                      f"pip install 'crossrank[onnx]' ({exc})") from None
    started = time.perf_counter()
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not (output / MANIFEST).is_file():
        raise ModelLoadError(f"{output} exists and is not a crossrank export; refusing to write into it")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    graph_name, weights_name = GRAPH_FILES[backend]
    try:
        sample = sample or builtin_sample()
        tokenizer = PairTokenizer(loaded.tokenizer, loaded.max_length)
        model, quantization = loaded.model, None
        if dtype == "int8" and backend == "onnx":
            model, rewrite = prepare_for_int8(model, sample_batches(tokenizer, sample.queries, sample.documents))
        graph = ScoreGraph(model, loaded.num_labels, cls_only_last_layer)
        has_types = loaded.tokenizer("a", "b").get("token_type_ids") is not None
        fp32 = staging / "model.fp32.onnx"
        _export_graph(graph, fp32, has_types)
        if backend == "openvino":
            quantization = _to_openvino(fp32, staging / graph_name, dtype, tokenizer, sample)
            fp32.unlink()
        elif dtype == "int8":
            quantization = _quantize_int8(fp32, staging / graph_name) | rewrite
            fp32.unlink()
        else:
            fp32.rename(staging / graph_name)
        _copy_side_files(loaded.model_dir, staging)

        agreement = _agreement(loaded, tokenizer, open_graph(backend, staging / graph_name, dtype), sample,
                               thresholds or {})
        if not agreement.passed:
            message = f"the {backend} {dtype} export of {loaded.model_dir} drifts from fp32: {agreement.summary()}"
            if strict:
                raise ExportQualityError(message + " (--strict)")
            logger.warning("%s; it is kept, but check its ranking before relying on it", message)
        manifest = {
            "format": FORMAT, "version": VERSION, "backend": backend, "dtype": dtype, "graph": graph_name,
            "graph_sha256": sha256_file(staging / graph_name), "source": str(loaded.model_dir),
            "source_weights_sha256": weights_digest(loaded.model_dir), "opset": OPSET,
            "cls_only_last_layer": graph.cls_only, "num_labels": loaded.num_labels,
            "max_length": loaded.max_length, "quantization": quantization,
            "versions": {("onnxruntime" if backend == "onnx" else "openvino"): runtime.__version__,
                         "torch": torch.__version__.split("+")[0], "crossrank": _crossrank_version()},
            "agreement": agreement.to_json(), "created": time.time(),
        }
        if weights_name:
            manifest |= {"graph_weights": weights_name, "graph_weights_sha256": sha256_file(staging / weights_name)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _replace_folder(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(output, manifest, agreement, time.perf_counter() - started)


def open_graph(backend: str, graph: Path, dtype: str):
    """The engine backend that runs an exported graph."""
    if backend == "openvino":
        return OpenVinoBackend(graph, dtype)
    return OnnxBackend(graph, dtype)


def _to_openvino(source: Path, target: Path, dtype: str, tokenizer: PairTokenizer, sample: SamplePairs) -> dict | None:
    """OpenVINO IR of the fp32 ONNX graph; int8: NNCF static quantization calibrated on the sample pairs."""
    ov = import_openvino()
    model = ov.convert_model(str(source))
    settings = None
    if dtype == "int8":
        try:
            import nncf
        except ImportError as exc:
            raise BackendUnavailableError(f"OpenVINO int8 needs nncf, from the [openvino] extra: "
                                          f"pip install 'crossrank[openvino]' ({exc})") from None
        batches = [{k: v.numpy() for k, v in batch.items()}
                   for batch in sample_batches(tokenizer, sample.queries, sample.documents)]
        with contextlib.redirect_stdout(None), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = nncf.quantize(model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(batches))
        from crossrank.engine.backends import cpu_features

        settings = {"method": "NNCF static (transformer mode)", "calibration": f"{len(sample.queries)} pairs "
                    f"({sample.source})", "nncf": nncf.__version__, "cpu_features": cpu_features()}
    ov.save_model(model, str(target), compress_to_fp16=False)  # fp16 weights would change fp32 scores
    return settings


def _export_graph(graph: ScoreGraph, path: Path, has_types: bool) -> None:
    batch = torch.full((2, 16), 1000, dtype=torch.long)
    args = (batch, torch.ones_like(batch)) + ((torch.zeros_like(batch),) if has_types else ())
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if has_types else [])
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"scores": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        try:  # the TorchScript exporter: quick and needs nothing beyond torch and onnx
            torch.onnx.export(graph, args, str(path), input_names=names, output_names=["scores"], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
        except Exception as first:  # noqa: BLE001 - newer torch: the dynamo exporter (needs onnxscript)
            try:
                torch.onnx.export(graph, args, str(path), input_names=names, output_names=["scores"],
                                  dynamic_axes=axes, opset_version=18, dynamo=True, external_data=False,
                                  verbose=False)
            except Exception as exc:  # noqa: BLE001
                raise BackendUnavailableError(
                    f"this model ({type(graph.model).__name__}) could not be exported to ONNX ({first}; {exc}); "
                    "use backend='torch' (float32, or bfloat16 on a CPU with AVX512-BF16 or AMX)") from None


def _quantize_int8(source: Path, target: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import onnx

    from crossrank.engine.backends import cpu_features, fast_int8

    # Without VNNI, x86 int8 kernels multiply u8 x s8 pairs with 16-bit saturation: ONNX Runtime's advice is
    # 7-bit weights (reduce_range) there. With VNNI (or AMX) full 8-bit weights are exact to accumulate.
    reduce_range = not fast_int8()
    graph = onnx.load(str(source))
    materialize_shared_initializers(graph)
    onnx.save(graph, str(source))
    keep_fp32 = float32_nodes(graph)
    settings = {"method": "onnxruntime dynamic", "weights": "int8, per output channel",
                "activations": "uint8, per batch at run time", "kept_fp32": keep_fp32,
                "reduce_range": reduce_range, "cpu_features": cpu_features()}
    with contextlib.redirect_stdout(None), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger().disabled, was = True, logging.getLogger().disabled
        try:
            quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8,
                             # ONNX Runtime splits a Gemm into '<name>_MatMul' + Add before it reads the
                             # exclusions, so an excluded head is named both ways.
                             op_types_to_quantize=["MatMul", "Gemm"],
                             nodes_to_exclude=keep_fp32 + [f"{name}_MatMul" for name in keep_fp32],
                             reduce_range=reduce_range)
        finally:
            logging.getLogger().disabled = was
    return settings


def _agreement(loaded: LoadedModel, tokenizer: PairTokenizer, backend, sample: SamplePairs,
               thresholds: dict) -> Agreement:
    reference = ScoringEngine(tokenizer, TorchBackend(loaded), 2048).score(sample.queries, sample.documents)[0]
    fast = ScoringEngine(tokenizer, backend, 2048).score(sample.queries, sample.documents)[0]
    return measure(reference, fast, sample, **thresholds)


def _copy_side_files(source: Path, target: Path) -> None:
    """Tokenizer, config and crossrank's files; a partner model in a subfolder (ensemble.json) too."""
    for item in source.iterdir():
        if item.is_file() and item.name not in _NOT_COPIED and not item.name.startswith("."):
            shutil.copy2(item, target / item.name)
    ensemble = source / "ensemble.json"
    if ensemble.is_file():
        for member in json.loads(ensemble.read_text(encoding="utf-8")).get("members", []):
            path = member.get("path")
            if path not in (None, "", ".") and (source / path).is_dir():
                shutil.copytree(source / path, target / path)


def _replace_folder(staging: Path, output: Path) -> None:
    """Swap the finished folder in: readers see the old export or the new one, never half of one."""
    if output.exists():
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        os.replace(output, old)
        os.replace(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, output)


def _crossrank_version() -> str:
    from crossrank import __version__

    return __version__


def read_manifest(folder: Path) -> dict | None:
    """The export manifest of a folder, None when there is none; a damaged one is an error."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError("not a crossrank export manifest")
        return manifest
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is damaged ({exc}); export the model again with `crossrank export`") from None


def verify_export(folder: Path, manifest: dict) -> Path:
    """The graph file, after checking it is the one the manifest describes."""
    graph = Path(folder) / manifest.get("graph", GRAPH)
    if manifest.get("version") != VERSION:
        raise ModelLoadError(f"{folder} was exported by another crossrank version (export format "
                             f"{manifest.get('version')}, this one reads {VERSION}); export it again")
    if not graph.is_file():
        raise ModelLoadError(f"{folder} has no {graph.name}; export the model again")
    if sha256_file(graph) != manifest.get("graph_sha256"):
        raise ModelLoadError(f"{graph} does not match the SHA-256 in {MANIFEST}: it was changed or damaged after "
                             "export; export the model again")
    if manifest.get("graph_weights"):
        weights = Path(folder) / manifest["graph_weights"]
        if not weights.is_file() or sha256_file(weights) != manifest.get("graph_weights_sha256"):
            raise ModelLoadError(f"{weights} is missing or does not match the SHA-256 in {MANIFEST}: it was changed "
                                 "or damaged after export; export the model again")
    return graph
