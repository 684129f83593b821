"""Run a cross-encoder forward pass with PyTorch on CPU or GPU and read scores off the logits."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from crossrank.engine.cls_only import ClsOnlyForward
from crossrank.engine.packed import PackedForward
from crossrank.errors import BackendUnavailableError
from crossrank.model.loading import LoadedModel

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str | None) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an unavailable device is an error, not a silent fallback."""
    name = (device or "cpu").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as exc:
        raise BackendUnavailableError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but CUDA is not available on this machine")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but MPS is not available on this machine")
    return resolved


def resolve_devices(device: str | Sequence[str] | None) -> list[torch.device]:
    """The devices one ``CrossEncoder`` runs on: one engine each, the pairs split between them by tokens.

    A list (``["cuda:0", "cuda:1"]``) or a comma-separated string (``"cuda:0,cuda:1"``, what the CLI's
    ``--device`` passes) names them; a bare ``"cuda"`` on a machine with several GPUs means all of them.
    Anything else is one device (``resolve_device``). The same device twice is allowed (two model copies).
    """
    if isinstance(device, str) and "," in device:
        device = [part for part in device.split(",") if part.strip()]
    if isinstance(device, (list, tuple)):
        if not device:
            raise BackendUnavailableError("devices=[] names no device: give at least one, e.g. ['cuda:0']")
        return [resolve_device(name) for name in device]
    if (device or "").strip().lower() == "cuda" and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [torch.device("cuda", index) for index in range(torch.cuda.device_count())]
    return [resolve_device(device)]


class TorchBackend:
    """Holds the model on its device; scores one padded batch at a time."""

    name = "torch"

    def __init__(self, loaded: LoadedModel, device: str | None = "cpu", dtype: str = "float32",
                 cls_only_last_layer: bool = True, packed: bool = False):
        if dtype not in _DTYPES:
            raise BackendUnavailableError(f"unknown dtype {dtype!r}: use one of {sorted(_DTYPES)}")
        self.device = resolve_device(device)
        self.dtype = _DTYPES[dtype]
        self.dtype_name = dtype
        # bf16 on CPU is autocast over fp32 weights: matmuls in bf16 (AVX512-BF16/AMX kernels), layer norms,
        # softmax and residual sums in fp32. Casting the weights instead drifted 3x more in nDCG@10 on DL 2020
        # (+0.0027 against -0.0008, benchmarks/results/throughput.md) at the same speed.
        self.autocast = self.device.type == "cpu" and self.dtype == torch.bfloat16
        weights_dtype = torch.float32 if self.autocast else self.dtype
        self.model = loaded.model.to(device=self.device, dtype=weights_dtype).eval()
        if self.dtype != torch.float32:
            _keep_head_in_float32(self.model)
        self.num_labels = loaded.num_labels
        if packed and not PackedForward.supports(self.model):
            raise BackendUnavailableError(f"no packed forward for model type {self.model.config.model_type!r}: "
                                          "BERT/MiniLM and RoBERTa-style models only")
        self.packed = packed
        if packed:  # padding never computed; the [CLS]-only last layer included
            self._forward = PackedForward(self.model)
        elif cls_only_last_layer and ClsOnlyForward.supports(self.model):
            self._forward = ClsOnlyForward(self.model)
        else:
            self._forward = lambda inputs: self.model(**inputs).logits

    def close(self) -> None:
        """Drop the weights and give a GPU's cached blocks back (``CrossEncoder.close`` calls it)."""
        self.model = self._forward = None
        release_device_memory(self.device)

    @torch.inference_mode()
    def score_batch(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                    token_type_ids: np.ndarray | None) -> torch.Tensor:
        """Scores of one batch as a float32 tensor on the device (not synchronised, for GPU overlap)."""
        inputs = {
            "input_ids": self._to_device(input_ids),
            "attention_mask": self._to_device(attention_mask),
        }
        if token_type_ids is not None:
            inputs["token_type_ids"] = self._to_device(token_type_ids)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            logits = self._forward(inputs).float()
        if self.num_labels == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        if self._forward is None:
            raise BackendUnavailableError("this CrossEncoder was closed: load the model again to score")
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)


def release_device_memory(device: torch.device) -> None:
    """On CUDA, free what no tensor uses any more and return the caching allocator's blocks to the card
    (on a CPU, dropping the last reference already frees the memory)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return
    import gc

    gc.collect()
    with torch.cuda.device(device):
        torch.cuda.empty_cache()


def _keep_head_in_float32(model: torch.nn.Module) -> None:
    """In half precision the score itself would be rounded to 8 bits of mantissa (steps of 1/64 near 3),
    which ties candidates a reranker must tell apart: the pooler and classifier stay float32 and cast
    their input up."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    for head in (getattr(base, "pooler", None), getattr(model, "classifier", None)):
        if isinstance(head, torch.nn.Module):
            head.float()
            head.forward = _in_float32(head.forward)


def _in_float32(forward):
    """``forward`` with floating inputs cast up and autocast off (so its matmuls really run in fp32)."""
    def wrapped(*args, **kwargs):
        args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
        device = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        with torch.autocast(device, enabled=False):
            return forward(*args, **kwargs)
    return wrapped
