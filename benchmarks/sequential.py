"""The sequential gate against the fixed-n gate on the embedded model, side by side (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/sequential.py --model checkpoints/initial --items 300

A stored baseline of the model on ARC-Easy (``--items`` test items, fp32, by log-likelihood), then two candidates,
each gated twice from an empty results folder, once with the fixed-n gate (every item) and once with
``--sequential`` (the same budget, a look every ``--chunk`` items):

- a planted regression: the model with its attention and MLP weights damaged (each multiplied by 1 + N(0, s²),
  ``--damage s``, seeded), so that it answers worse;
- the baseline's own checkpoint, unchanged, which the gate must never call a regression.

Prints one row per candidate × gate: the decision and exit code, the items evaluated, the wall time (from the
gate's call to its decision: the model load, the evaluation and the statistics), and the confidence sequence at
the stop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file

from ftbench.harness.app.gate import run_gate
from ftbench.harness.app.gate_sequential import run_sequential_gate
from ftbench.harness.compare.policy import SequentialSettings
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec

DAMAGED = ("self_attn", "mlp")


class Row(NamedTuple):
    """One gate's answer on one candidate."""

    candidate: str
    gate: str
    decision: str
    exit_code: int
    items: str
    seconds: float
    detail: str


def damaged_copy(model: Path, out: Path, scale: float, seed: int) -> Path:
    """``model`` with every attention and MLP weight multiplied by 1 + N(0, scale²) (a planted regression)."""
    shutil.copytree(model, out)
    generator = torch.Generator().manual_seed(seed)
    for path in out.glob("*.safetensors"):
        tensors = load_file(path)
        for name, tensor in tensors.items():
            if any(part in name for part in DAMAGED) and name.endswith("weight"):
                noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * scale
                tensors[name] = (tensor.float() * (1 + noise)).to(tensor.dtype)
        save_file(tensors, path, metadata={"format": "pt"})
    (out / "ftbench.json").unlink(missing_ok=True)  # no longer the checkpoint its manifest describes
    return out


def _baseline(model: Path, items: int, out: Path) -> Path:
    spec = {"name": "sequential-baseline", "checkpoints": [str(model)], "precisions": ["fp32"], "device": "cpu",
            "tasks": [{"name": "arc_easy", "limit": items}], "batch_size": 16, "out": str(out)}  # fmt: skip
    run_spec(parse_spec(spec, "benchmark"))
    return out


def side_by_side(baseline: Path, candidate: Path, label: str, chunk: int, scratch: Path) -> list[Row]:
    """The fixed-n and the sequential gate on ``candidate``, each from an empty results folder."""
    started = time.perf_counter()
    fixed = run_gate(baseline, candidate, candidate_out=scratch / f"{label}-fixed")
    fixed_seconds = time.perf_counter() - started
    (verdict,) = [v for v in fixed.verdicts if v.mode == "gate"]
    comparison = verdict.comparison
    rows = [Row(label, "fixed-n", fixed.decision.outcome, fixed.exit_code, str(comparison.n), fixed_seconds,
                f"Δ {comparison.delta:+.3f}, 95% CI [{comparison.interval.low:.3f}, {comparison.interval.high:.3f}], "
                f"p = {comparison.p_value:.3g}")]  # fmt: skip
    started = time.perf_counter()
    settings = SequentialSettings(chunk=chunk)
    sequential = run_sequential_gate(baseline, candidate, settings=settings, candidate_out=scratch / f"{label}-seq")
    seconds = time.perf_counter() - started
    (judged,) = sequential.judgements
    v = judged.verdict
    budget = sequential.plan.budgets[(judged.gated.task.name, judged.gated.precision)]
    used = f"{len(judged.lower)} / {budget}"
    detail = f"Δ {v.estimate:+.3f}, sequence [{v.lower:.3f}, {v.upper:.3f}] at item {v.items}, "
    detail += f"margin {judged.gated.margin:.3f}"
    rows.append(Row(label, "sequential", sequential.decision.outcome, sequential.exit_code, used, seconds, detail))
    return rows


def main() -> None:
    """Measure both gates on both candidates and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the embedded model's checkpoint (ftbench base)")
    parser.add_argument("--items", type=int, default=300, help="ARC-Easy test items in the baseline")
    parser.add_argument("--chunk", type=int, default=16, help="items between the sequential gate's looks")
    parser.add_argument("--damage", type=float, default=0.5, help="relative noise on the damaged weights")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("FTBENCH_STORE", "none")  # the gates alone are timed
    with tempfile.TemporaryDirectory(prefix="ftbench-sequential-") as folder:
        scratch = Path(folder)
        baseline = _baseline(args.model, args.items, scratch / "baseline")
        damaged = damaged_copy(args.model, scratch / "damaged", args.damage, args.seed)
        rows = side_by_side(baseline, damaged, "damaged", args.chunk, scratch)
        rows += side_by_side(baseline, args.model, "unchanged", args.chunk, scratch)
    print("| candidate | gate | decision (exit) | items | wall s | at the stop |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.candidate} | {row.gate} | {row.decision} ({row.exit_code}) | {row.items} | "
              f"{row.seconds:.1f} | {row.detail} |")  # fmt: skip


if __name__ == "__main__":
    main()
