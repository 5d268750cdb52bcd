"""Wall time of a 4-variant matrix (2 checkpoints × 2 precisions) evaluated sequentially and over a Ray cluster
(a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/cluster_matrix.py --model checkpoints/initial --cluster local

The second checkpoint is the model with its last layer's MLP perturbed, so that both evaluate distinct weights.
Both runs start from empty results folders; the cluster's time includes starting Ray (``local``) and its workers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftbench.harness.core.store import load_run_evals
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec


def perturbed_copy(model: Path, out: Path) -> Path:
    """``model`` with noise added to its last layer's MLP, saved to ``out``."""
    torch.manual_seed(0)
    loaded = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    with torch.no_grad():
        for name, parameter in loaded.named_parameters():
            if f"layers.{loaded.config.num_hidden_layers - 1}.mlp" in name:
                parameter.add_(torch.randn_like(parameter) * 0.01)
    loaded.save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return out


def timed_run(data: dict[str, Any]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    run_spec(parse_spec(data, "benchmark"))
    return time.perf_counter() - started, load_run_evals(Path(data["out"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--cluster", default="local")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftbench-matrix-") as scratch:
        root = Path(scratch)
        models = [args.model.resolve(), perturbed_copy(args.model, root / "perturbed")]
        data: dict[str, Any] = {
            "checkpoints": [str(model) for model in models],
            "precisions": args.precisions,
            "tasks": [{"name": "countdown", "options": {"source": "generated", "count": 64, "seed": 3}}],
            "generation": {"max_gen_toks": args.tokens},
            "limit": args.items,
            "batch_size": args.items,
            "device": args.device,
        }
        sequential, ours = timed_run(data | {"out": str(root / "sequential")})
        spread, theirs = timed_run(data | {"out": str(root / "cluster"), "cluster": args.cluster})
        differing = {
            f"{a.variant.name}@{a.variant.precision}": sum(
                x.response != y.response for x, y in zip(a.samples, b.samples, strict=True)
            )
            for a, b in zip(ours, theirs, strict=True)
        }
    figures = {
        "variants": len(ours),
        "sequential_seconds": round(sequential, 1),
        "cluster_seconds": round(spread, 1),
        "speedup": round(sequential / spread, 2),
        "responses_differing_per_variant": differing,
        "threads": {"sequential": torch.get_num_threads(), "cluster_worker": 1},
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
