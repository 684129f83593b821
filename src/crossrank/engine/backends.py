"""Which backend runs a model: the one place that knows every backend x dtype x device combination.

| backend | dtype | device | what runs |
|---|---|---|---|
| torch | float32 (default on CPU) | any | PyTorch, exact reference |
| torch | bfloat16 | CPU, CUDA (default on Ampere and newer) | PyTorch autocast; fast on CPUs with AVX512-BF16 or AMX |
| torch | float16 | CUDA (default before Ampere), MPS | PyTorch half precision |
| onnx | float32, int8 | CPU | ONNX Runtime over an exported graph (int8: VNNI kernels where the CPU has them) |
| openvino | float32, int8 | CPU | OpenVINO over the same graph (int8: static, calibrated at export) |

Anything else is a ``BackendUnavailableError`` that says what does work. An exported folder (with
``crossrank-export.json``) runs with the backend and dtype it was exported for.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from crossrank.errors import BackendUnavailableError

logger = logging.getLogger("crossrank")

BACKENDS = ("torch", "onnx", "openvino")
DTYPES = ("float32", "bfloat16", "float16", "int8")
_WORKS = ("torch with float32 (any device), bfloat16 (CPU or CUDA) or float16 (CUDA, MPS); "
          "onnx or openvino with float32 or int8 (CPU)")


@lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """The instruction sets that decide which low-precision kernels are fast here (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        flags = []
    names = {"avx2": "avx2", "avx512": "avx512f", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
             "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16", "amx_int8": "amx_int8"}
    return {name: flag in flags for name, flag in names.items()}


def fast_bfloat16() -> bool:
    features = cpu_features()
    return features["avx512_bf16"] or features["amx_bf16"]


def fast_int8() -> bool:
    features = cpu_features()
    return features["avx512_vnni"] or features["avx_vnni"] or features["amx_int8"]


def default_dtype(backend: str, device_type: str) -> str:
    """The dtype when none is asked for: float32 (exact) on the CPU; on CUDA bfloat16 where the GPU has
    native bf16 (Ampere and newer: fp16's range without loss scaling), float16 elsewhere; float16 on MPS."""
    if backend != "torch" or device_type == "cpu":
        return "float32"
    if device_type == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float16" if device_type == "mps" else "float32"


def check_combination(backend: str, dtype: str, device_type: str) -> None:
    """Refuse what cannot run, naming what can."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; what works: {_WORKS}")
    if dtype not in DTYPES:
        raise BackendUnavailableError(f"unknown dtype {dtype!r}; what works: {_WORKS}")
    if backend == "torch" and dtype == "int8":
        raise BackendUnavailableError(f"int8 runs on backend='onnx' or 'openvino' (CPU); what works: {_WORKS}")
    if backend == "torch" and dtype == "float16" and device_type == "cpu":
        raise BackendUnavailableError(f"float16 has no fast CPU kernels: use dtype='bfloat16' or backend='onnx' "
                                      f"with dtype='int8' on the CPU; what works: {_WORKS}")
    if backend == "torch" and dtype == "bfloat16" and device_type == "mps":
        raise BackendUnavailableError(f"bfloat16 is not supported on MPS: use float16; what works: {_WORKS}")
    if backend in ("onnx", "openvino") and device_type != "cpu":
        raise BackendUnavailableError(f"backend {backend!r} runs on the CPU here; on {device_type} use "
                                      f"backend='torch' with float16 or bfloat16; what works: {_WORKS}")
    if backend in ("onnx", "openvino") and dtype not in ("float32", "int8"):
        raise BackendUnavailableError(f"backend {backend!r} supports float32 and int8, not {dtype}; for {dtype} use "
                                      f"backend='torch'; what works: {_WORKS}")


def warn_if_slow(backend: str, dtype: str, device_type: str) -> None:
    """Low precision without the instructions for it is emulated, often slower than float32: say so."""
    if device_type != "cpu":
        return
    if dtype == "bfloat16" and not fast_bfloat16():
        logger.warning("this CPU has neither AVX512-BF16 nor AMX: bfloat16 is emulated and may be slower than "
                       "float32; backend='onnx' with dtype='int8' is the fast path here")
    if dtype == "int8" and not fast_int8():
        logger.warning("this CPU has no VNNI or AMX int8 instructions: int8 gains less here")
