"""How many padded tokens one batch may hold on a GPU: derived from the memory that is free there.

A fixed budget is either timid on a 140 GB H200 or out of memory on an 8 GB card, and the worst request a
server accepts (1,000 documents of 512 tokens) must split into batches that fit. In inference mode
PyTorch frees each layer's activations before the next layer runs, so the peak is one layer's working
set per token: the hidden states in and out, Q, K, V and the attention output, the feed-forward
intermediate and its activation, and, when the attention kernel materialises them (the padded ``math``
path), the attention probabilities, ``heads x length`` per token. Half of the free memory is given to
it, so the allocator's fragmentation and other processes on the card keep room. The engine still splits
a batch that runs out of memory (``crossrank.engine.scorer``): the estimate is a plan, not a promise.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bigger batches no longer pay on current GPUs (benchmarks/gpu.py measures 16k-64k): the budget never
# exceeds this however much memory is free.
MAX_GPU_BATCH_TOKENS = 65536
MEMORY_FRACTION = 0.5


@dataclass(frozen=True)
class LayerShape:
    hidden: int
    intermediate: int
    heads: int

    @classmethod
    def of(cls, config) -> "LayerShape":
        hidden = int(getattr(config, "hidden_size", 768))
        return cls(hidden, int(getattr(config, "intermediate_size", 4 * hidden)),
                   int(getattr(config, "num_attention_heads", 12)))


def bytes_per_token(shape: LayerShape, dtype_bytes: int, max_length: int) -> int:
    """Peak activation bytes one padded token costs inside one encoder layer (see the module docstring)."""
    return dtype_bytes * (6 * shape.hidden + 2 * shape.intermediate + shape.heads * max_length)


def memory_token_budget(free_bytes: int, shape: LayerShape, dtype_bytes: int, max_length: int,
                        fraction: float = MEMORY_FRACTION, ceiling: int = MAX_GPU_BATCH_TOKENS) -> int:
    """Padded tokens per batch that fit in ``fraction`` of ``free_bytes``; at least one full-length pair."""
    fitting = int(free_bytes * fraction) // bytes_per_token(shape, dtype_bytes, max_length)
    return max(int(max_length), min(int(ceiling), fitting))


def cuda_token_budget(device, config, dtype_bytes: int, max_length: int) -> int:
    """``memory_token_budget`` for the memory free on CUDA ``device`` now (after the weights are loaded)."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return memory_token_budget(free, LayerShape.of(config), dtype_bytes, max_length)
