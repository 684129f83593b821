"""Run an exported cross-encoder (``model.xml`` + ``model.bin``) with OpenVINO on the CPU.

The graph is crossrank's own exported ONNX graph converted by OpenVINO (same inputs, one float32 score
per pair), so batching, length sorting and truncation reporting stay the engine's. int8 is OpenVINO's
static quantization (NNCF, transformer mode), calibrated on sample pairs at export time: here it ran
1.7x ONNX Runtime's dynamic int8 (``benchmarks/results/openvino_int8.md``). openvino and nncf come with
the ``[openvino]`` extra and are imported only here and in the export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crossrank.engine.onnx_backend import graph_feed, import_extra
from crossrank.errors import BackendUnavailableError


def import_openvino():
    return import_extra("openvino", "openvino", "openvino")


class OpenVinoBackend:
    """One compiled OpenVINO model over a graph file; scores one padded batch at a time."""

    name = "openvino"

    def __init__(self, graph: Path, dtype: str, threads: int | None = None):
        ov = import_openvino()
        # f32 execution precision: on CPUs with bf16 units OpenVINO would otherwise run fp32 graphs in bf16.
        config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        try:
            self.compiled = ov.Core().compile_model(str(graph), "CPU", config)
        except Exception as exc:  # noqa: BLE001 - openvino raises its own exception types
            raise BackendUnavailableError(f"OpenVINO cannot load {graph}: {exc}") from None
        self.request = self.compiled.create_infer_request()
        self.graph = Path(graph)
        self.inputs = {name for port in self.compiled.inputs for name in port.get_names()}
        self.device = torch.device("cpu")
        self.dtype_name = dtype

    def score_batch(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                    token_type_ids: np.ndarray | None) -> torch.Tensor:
        scores = self.request.infer(graph_feed(self.inputs, input_ids, attention_mask, token_type_ids))[0]
        return torch.from_numpy(np.array(scores, dtype=np.float32).reshape(-1))
