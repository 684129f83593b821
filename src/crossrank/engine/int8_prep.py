"""Prepare a BERT-style cross-encoder for dynamic int8 so that it keeps its ranking.

Plain dynamic int8 (ONNX Runtime's ``quantize_dynamic``: int8 weights per output channel, activations
quantized per batch with one scale) ranked DL 2021 BM25 top-30 lists with a per-query Spearman of only
0.976 against fp32. The cause is one row: the [CLS] token's activations are 5-8x larger than any other
token's (30 against a median token maximum of 4 at the feed-forward input of layer 1), so the one scale
of a batch is set by [CLS] and every other token is quantized 5-8x more coarsely. And [CLS] is the row
the score is read from. Two rewrites, both exact in fp32, fix most of it:

1. **First token apart.** Every encoder linear (query/key/value, attention output, both feed-forward
   layers) computes the first row in fp32 and the other rows in int8. That first row is 1% of the work.
   The [CLS]-only last layer's linears run on that row alone and stay fp32.
2. **Smoothing** (SmoothQuant, Xiao et al. 2023). Some channels of the int8 rows are still 10x larger
   than the rest; dividing each input channel by ``s_j = max|x_j|^a / max|W_j|^(1-a)`` and multiplying the
   weight's column by the same ``s_j`` leaves the product unchanged but moves the range from activations
   (one scale per batch) to weights (one scale per output channel). ``max|x_j|`` comes from sample pairs.

Padding rows are zeroed before int8 (an outlier row of padding would set the batch's scale), and the
smoothing never grows a channel beyond the median channel (a channel quiet in the sample pairs need not be
quiet in use). Measured on DL 2021 BM25 top-30 (40 queries, 1,200 pairs, data neither the sample nor the
benchmark uses), per-query Spearman against fp32 / max score difference: plain 0.976 / 0.71; first token
apart 0.992 / 0.34; plus smoothing from the built-in sample 0.993 / 0.22, from 480 MS MARCO dev pairs
(``--calibration-data``) 0.995 / 0.20. Also tried, on the same pairs: static QDQ int8 with MinMax
calibration 0.864 (no batch dependence, but slower); one pair per batch 0.973 (no batch dependence);
the feed-forward output projections in fp32 0.987 (14% slower); SmoothQuant without the first-token split
0.981 (a = 0.5) and 0.990 (a = 0.75). ``benchmarks/int8_variants.py`` re-measures the main variants.
"""

from __future__ import annotations

import copy
import re

import torch

from crossrank.engine.cls_only import ClsOnlyForward

SMOOTHING_ALPHA = 0.75
KEEP_FP32 = "fp32"  # module attribute name: ONNX nodes under it ('/.../fp32/MatMul') are not quantized
_KEEP_FP32_SCOPE = re.compile(rf"/{KEEP_FP32}(_\d+)?/")  # the exporter numbers repeated scopes: fp32_1


class Float32Linear(torch.nn.Module):
    """A linear layer the quantizer leaves alone (its ONNX node names contain ``/fp32/``)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.fp32 = linear

    def forward(self, x):
        return self.fp32(x)


class _Mask:
    """The batch's attention mask, captured by a pre-hook on the model: padding rows are zeroed before
    int8, since one outlier row of padding would otherwise set the scale of the whole batch."""

    value: torch.Tensor | None = None

    def capture(self, module, args, kwargs):  # a bound method, so that deepcopy keeps hook and holder together
        self.value = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)


class FirstTokenApart(torch.nn.Module):
    """``linear(x)`` with row 0 in fp32 and the other real rows, divided by the smoothing scales, in int8."""

    def __init__(self, linear: torch.nn.Linear, scales: torch.Tensor | None, mask: _Mask):
        super().__init__()
        self.mask = mask
        self.fp32 = linear
        self.rest = copy.deepcopy(linear)
        scales = torch.ones(linear.in_features) if scales is None else scales.detach().float()
        self.register_buffer("inverse_scales", 1.0 / scales)
        with torch.no_grad():
            self.rest.weight.mul_(scales[None, :])

    def forward(self, x):
        rest = x[:, 1:] * self.inverse_scales
        if self.mask.value is not None and self.mask.value.shape[1] == x.shape[1]:
            rest = rest * self.mask.value[:, 1:, None].to(rest.dtype)
        return torch.cat([self.fp32(x[:, :1]), self.rest(rest)], dim=1)


def _groups(model: torch.nn.Module) -> list[list[str]]:
    """Linears that share an input (query/key/value do), per layer; the last layer only has key and value
    over all tokens, since its other linears run on [CLS] alone."""
    prefix = f"{model.base_model_prefix}.encoder.layer"
    layers = getattr(model, model.base_model_prefix).encoder.layer
    groups = []
    for i in range(len(layers)):
        p = f"{prefix}.{i}"
        if i == len(layers) - 1:
            groups.append([f"{p}.attention.self.key", f"{p}.attention.self.value"])
        else:
            groups += [[f"{p}.attention.self.query", f"{p}.attention.self.key", f"{p}.attention.self.value"],
                       [f"{p}.attention.output.dense"], [f"{p}.intermediate.dense"], [f"{p}.output.dense"]]
    return groups


def _input_maxima(model: torch.nn.Module, names: set[str], batches) -> dict[str, torch.Tensor]:
    """Per-channel max |x| at each named linear's input, over real tokens other than the first."""
    maxima: dict[str, torch.Tensor] = {}
    current: dict[str, torch.Tensor] = {}

    def record(name):
        def hook(module, args, output):
            x = args[0].detach().float()
            keep = current["mask"][:, 1:].bool()
            rows = x[:, 1:][keep] if x.shape[1] == keep.shape[1] + 1 else x.reshape(-1, x.shape[-1])
            if rows.numel():
                peak = rows.abs().amax(0)
                maxima[name] = torch.maximum(maxima[name], peak) if name in maxima else peak
        return hook

    modules = dict(model.named_modules())
    hooks = [modules[name].register_forward_hook(record(name)) for name in names]
    try:
        with torch.inference_mode():
            for inputs in batches:
                current["mask"] = inputs["attention_mask"]
                model(**inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return maxima


def prepare_for_int8(model: torch.nn.Module, batches, alpha: float | None = SMOOTHING_ALPHA
                     ) -> tuple[torch.nn.Module, dict]:
    """A float32 copy of ``model`` rewritten for dynamic int8, and what was done (for the manifest).

    ``batches`` yields model inputs (dicts of tensors) of sample pairs, for the smoothing statistics
    (``alpha=None``: no smoothing). Models other than BERT-style encoders come back unchanged (plain
    dynamic int8)."""
    model = copy.deepcopy(model).float().eval().requires_grad_(False)
    if not ClsOnlyForward.supports(model):
        return model, {"first_token_fp32": False, "smoothing": None}
    groups = _groups(model)
    maxima = _input_maxima(model, {name for group in groups for name in group}, batches) if alpha is not None else {}
    modules = dict(model.named_modules())
    mask = _Mask()
    getattr(model, model.base_model_prefix).register_forward_pre_hook(mask.capture, with_kwargs=True)
    for group in groups:
        scales = None
        if group[0] in maxima:
            # A channel quiet in the sample may not be quiet in use: dividing it by a tiny scale would make
            # it the outlier. Channels are only ever shrunk relative to the median channel, never grown.
            x_max = maxima[group[0]].clamp(min=maxima[group[0]].median().item())
            w_max = torch.stack([modules[name].weight.abs().amax(0) for name in group]).amax(0).clamp(min=1e-5)
            scales = (x_max.pow(alpha) / w_max.pow(1 - alpha)).clamp(min=1e-5)
        for name in group:
            parent, attribute = name.rsplit(".", 1)
            setattr(modules[parent], attribute, FirstTokenApart(modules[name], scales, mask))
    last = getattr(model, model.base_model_prefix).encoder.layer[-1]
    last.attention.self.query = Float32Linear(last.attention.self.query)
    last.attention.output.dense = Float32Linear(last.attention.output.dense)
    last.intermediate.dense = Float32Linear(last.intermediate.dense)
    last.output.dense = Float32Linear(last.output.dense)
    smoothing = None if alpha is None else {"method": "SmoothQuant", "alpha": alpha,
                                            "statistics": "sample pairs, real tokens after the first"}
    return model, {"first_token_fp32": True, "smoothing": smoothing}


def sample_batches(tokenizer, queries, documents, batch_tokens: int = 2048):
    """Padded model inputs of sample pairs (as tensors), in the engine's own tokenization and batching."""
    from crossrank.engine.batching import plan_batches
    from crossrank.engine.scorer import pad_batch

    tokens = tokenizer(queries, documents)
    for batch in plan_batches(tokens.lengths, batch_tokens):
        ids, mask, types = pad_batch(tokens, batch, tokenizer.pad_id)
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if types is not None:
            inputs["token_type_ids"] = torch.from_numpy(types)
        yield inputs


def materialize_shared_initializers(graph) -> None:
    """The exporter stores equal weights once and reads them through Identity nodes; the quantizer only
    quantizes a MatMul whose weight is an initializer, so each gets a copy of its own (in place)."""
    import onnx

    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    kept = []
    for node in graph.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy_ = onnx.TensorProto()
            copy_.CopyFrom(initializers[node.input[0]])
            copy_.name = node.output[0]
            graph.graph.initializer.append(copy_)
        else:
            kept.append(node)
    del graph.graph.node[:]
    graph.graph.node.extend(kept)


def float32_nodes(graph) -> list[str]:
    """MatMul/Gemm nodes that stay fp32: the head, the first-token rows and the [CLS]-only last layer."""
    return [node.name for node in graph.graph.node if node.op_type in ("MatMul", "Gemm")
            and (_KEEP_FP32_SCOPE.search(node.name) or any(part in node.name.lower() for part in ("classifier", "pooler")))]
