"""Linear layers computed by oneDNN from weights reordered once, for models the transformers engine evaluates on CPU.

torch computes a CPU ``nn.Linear`` in fp32 with a general matrix product that re-packs the weight matrix on every
call; at the few rows a generation step has, that packing costs as much as the product. oneDNN's linear from a
weight reordered once into its blocked layout (``torch.ops.mkldnn``, what inductor's weight prepacking calls) does
the same fp32 arithmetic, its sums in another order: measured on this project's model, 2-3× faster per layer at 1
to 512 rows, and every greedy Countdown answer the same (``benchmarks/engines.py``). The reordered weights are a
second copy beside the model's own, so a model is packed only when that copy fits well inside free memory.

Only models the engine loaded for evaluation are packed (never a model being trained); with gradients enabled, or
once its weight has changed or moved, a packed layer falls back to torch's own product.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

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
    packed_from: tuple[int, int]
    """The weight's storage address and version when it was reordered: a weight changed or moved since (a
    state dict loaded, an adapter merged) makes the layer compute with torch's product again."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """oneDNN's linear from the reordered weight; torch's own while gradients are recorded or autocast is on,
        for inputs off the CPU or of another type, and once the weight has changed."""
        if (
            torch.is_grad_enabled()
            or torch.is_autocast_enabled("cpu")
            or input.device.type != "cpu"
            or input.dtype != self.packed.dtype
            or _identity(self.weight) != self.packed_from
        ):
            return F.linear(input, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(input, self.packed, self.bias, "none", [], "")


class Packing(NamedTuple):
    """What ``pack_linears`` reordered."""

    layers: int
    bytes: int
    """The reordered copies' size (beside the model's own weights)."""

    @property
    def note(self) -> str:
        """The variant's note on it."""
        return (
            f"linear layers: oneDNN from weights reordered once ({self.layers} layers, {self.bytes / 2**20:.0f} MiB "
            "copy); the same arithmetic as torch's product, summed in another order"
        )


def available() -> bool:
    """Whether this torch build has oneDNN's reordered linear."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def packable_dtypes() -> tuple[torch.dtype, ...]:
    """The weight types oneDNN computes here: fp32, and bf16 where the CPU has the instructions oneDNN needs."""
    bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return PACKED_DTYPES if bf16 is not None and bf16() else (torch.float32,)


def pack_linears(model: nn.Module, device: str) -> Packing | None:
    """Give every plain ``nn.Linear`` of ``model`` (on CPU, fp32 or bf16) a weight reordered for oneDNN, in place.

    Returns:
        What was packed, or None when nothing was (another device or type, no oneDNN, too little free memory for
        the copy, or oneDNN refused a layer: then every layer is left as it was).
    """
    if device != "cpu" or not available():
        return None
    dtypes = packable_dtypes()
    layers = [
        module
        for module in model.modules()
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype in dtypes
    ]
    size = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    if not layers or size > MEMORY_SHARE * psutil.virtual_memory().available:
        return None
    try:
        with torch.no_grad():
            packed: list[Any] = [
                torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), REORDER_ROWS) for layer in layers
            ]
    except RuntimeError:  # oneDNN lacks a kernel for this CPU and type
        return None
    for layer, weight in zip(layers, packed, strict=True):
        layer.__class__ = PackedLinear
        swapped = cast(PackedLinear, layer)
        swapped.packed = weight
        swapped.packed_from = _identity(layer.weight)
    return Packing(len(layers), size)


def _identity(weight: torch.Tensor) -> tuple[int, int]:
    return weight.data_ptr(), weight._version
