"""Linear layers computed by oneDNN from weights reordered once, for models the transformers engine evaluates on CPU.

torch computes a CPU ``nn.Linear`` in fp32 with a general matrix product that re-packs the weight matrix on every
call; at the few rows a generation step has, that packing costs as much as the product. oneDNN's linear from a
weight reordered once into its blocked layout (``torch.ops.mkldnn``, what inductor's weight prepacking calls) does
the same fp32 arithmetic, its sums in another order: measured on this project's model, 2-3× faster per layer at 1
to 512 rows, and every greedy Countdown answer the same (``benchmarks/engines.py``). The reordered weights are a
second copy beside the model's own, so a model is packed only when that copy fits well inside free memory.

Only models the engine loaded for evaluation are packed: the reordered copy does not follow a weight that changes
(a model being trained), and with gradients enabled a packed layer falls back to torch's own product.
"""

from __future__ import annotations

from typing import Any

import psutil
import torch
import torch.nn.functional as F
from torch import nn

PACKED_DTYPES = (torch.float32, torch.bfloat16)
"""Weight types oneDNN's reordered linear was measured faster at on CPU."""

REORDER_ROWS = 64
"""The rows oneDNN tunes the reordered layout for (it computes any number; 1-512 rows measured within 10%)."""

MEMORY_SHARE = 0.5
"""Pack only when the reordered copy needs at most this share of the memory available."""


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` whose forward pass, without gradients, is oneDNN's product with ``packed`` (the weight
    reordered once); its parameters and state dict stay the module's own."""

    packed: torch.Tensor

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """oneDNN's linear from the reordered weight; torch's own while gradients are recorded or autocast is on."""
        if torch.is_grad_enabled() or torch.is_autocast_enabled("cpu") or input.dtype != self.packed.dtype:
            return F.linear(input, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(input, self.packed, self.bias, "none", [], "")


def available() -> bool:
    """Whether this torch build has oneDNN's reordered linear."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def pack_linears(model: nn.Module, device: str) -> str | None:
    """Give every plain ``nn.Linear`` of ``model`` (on CPU, fp32 or bf16) a weight reordered for oneDNN, in place.

    Returns:
        A note for the variant's record, or None when nothing was packed (another device or type, no oneDNN, or
        too little free memory for the copy).
    """
    if device != "cpu" or not available():
        return None
    layers = [
        module
        for module in model.modules()
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype in PACKED_DTYPES
    ]
    size = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    if not layers or size > MEMORY_SHARE * psutil.virtual_memory().available:
        return None
    for layer in layers:
        _pack(layer)
    return (
        f"linear layers: oneDNN from weights reordered once ({len(layers)} layers, {size / 2**20:.0f} MiB copy); "
        "the same arithmetic as torch's product, summed in another order"
    )


def _pack(layer: nn.Linear) -> None:
    with torch.no_grad():
        packed: Any = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), REORDER_ROWS)
    layer.__class__ = PackedLinear
    layer.packed = packed
