"""torch's CPU linear product against oneDNN's from reordered weights, over one pass through a model's linear
layers (a measurement, not a test).

The layers are shaped as the model's config says (attention q, k, v, o and the MLP's gate, up and down, times its
layers; the vocabulary projection apart), with random weights, each product timed at several row counts: a
generation step's few rows, a batch of them, a context pass. Prints a markdown table.

    PYTHONPATH=. python benchmarks/linear.py --model checkpoints/initial
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig

from ftbench.harness.engines.hf_generate import attention_shape
from ftbench.harness.engines.onednn import REORDER_ROWS

Product = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def layer_shapes(config: object, with_head: bool) -> list[tuple[int, int]]:
    """(out, in) of every linear layer in one pass through the model."""
    shape = attention_shape(config)
    queries, keys = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    layer = [(queries, shape.hidden), (keys, shape.hidden), (keys, shape.hidden), (shape.hidden, queries)]
    layer += [
        (shape.intermediate, shape.hidden),
        (shape.intermediate, shape.hidden),
        (shape.hidden, shape.intermediate),
    ]
    shapes = layer * shape.layers
    return [*shapes, (shape.vocab, shape.hidden)] if with_head else shapes


def timed(weights: list[torch.Tensor], product: Product, rows: int, dtype: torch.dtype, repeats: int) -> float:
    """The fastest of ``repeats`` passes through all the layers, in seconds."""
    inputs = {size: torch.randn(rows, size, dtype=dtype) for size in {int(w.shape[1]) for w in weights}}
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for weight in weights:
                product(inputs[int(weight.shape[1])], weight)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Parse the flags, time both products at each row count and type, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("checkpoints/initial"), help="a model directory")
    parser.add_argument("--rows", default="1,16,64,512")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--head", action="store_true", help="include the vocabulary projection")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shapes = layer_shapes(AutoConfig.from_pretrained(str(args.model)), args.head)
    torch_product: Product = F.linear
    onednn_product: Product = lambda x, w: torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")  # noqa: E731
    print(f"{len(shapes)} linear layers of {args.model}, {args.threads} threads, fastest of {args.repeats} passes")
    print()
    print("| type | rows | torch's product, ms | oneDNN, reordered weights, ms | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name in args.dtypes.split(","):
        dtype = getattr(torch, name)
        weights = [torch.randn(shape, dtype=dtype) for shape in shapes]
        packed = [torch.ops.mkldnn._reorder_linear_weight(w, REORDER_ROWS) for w in weights]
        for rows in [int(part) for part in args.rows.split(",")]:
            plain = timed(weights, torch_product, rows, dtype, args.repeats)
            ours = timed(packed, onednn_product, rows, dtype, args.repeats)
            print(f"| {name} | {rows} | {plain * 1e3:.1f} | {ours * 1e3:.1f} | {plain / ours:.2f}× |")


if __name__ == "__main__":
    main()
