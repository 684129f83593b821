"""Run an exported cross-encoder graph (``model.onnx``) with ONNX Runtime on the CPU.

The graph takes the padded batch the engine builds (input_ids, attention_mask and, for BERT-style
models, token_type_ids) and returns one float32 score per pair, so token-budget batching, length sorting
and truncation reporting stay the engine's, the same for every backend. onnxruntime comes with the
``[onnx]`` extra and is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crossrank.errors import BackendUnavailableError



def import_extra(module: str, backend: str, extra: str):
    """An optional runtime, or an error that names the extra providing it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(f"backend {backend!r} needs {module}, from the [{extra}] extra: "
                                      f"pip install 'crossrank[{extra}]' ({exc})") from None


def import_onnxruntime():
    return import_extra("onnxruntime", "onnx", "onnx")


def graph_feed(inputs: set[str], input_ids: np.ndarray, attention_mask: np.ndarray,
               token_type_ids: np.ndarray | None) -> dict[str, np.ndarray]:
    """The exported graph's inputs for one padded batch (token types only where the graph takes them)."""
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in inputs:
        feed["token_type_ids"] = token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)
    return feed


class OnnxBackend:
    """One ONNX Runtime session over a graph file; scores one padded batch at a time."""

    name = "onnx"

    def __init__(self, graph: Path, dtype: str, threads: int | None = None):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # As many threads as torch would use (torch.set_num_threads / OMP_NUM_THREADS apply to both).
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise BackendUnavailableError(f"ONNX Runtime cannot load {graph}: {exc}") from None
        self.graph = Path(graph)
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.device = torch.device("cpu")
        self.dtype_name = dtype

    def score_batch(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                    token_type_ids: np.ndarray | None) -> torch.Tensor:
        (scores,) = self.session.run(None, graph_feed(self.inputs, input_ids, attention_mask, token_type_ids))
        return torch.from_numpy(np.asarray(scores, dtype=np.float32).reshape(-1))
