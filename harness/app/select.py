"""``ftbench select`` as one library call: from the stored evaluations of a training run (the results of the
callback, ``ftbench watch`` or a pipeline), the checkpoint to ship on each task, its gain over the baseline with
the winner's curse taken out, the checkpoints that could be the best, and every metric's signal-to-noise.

The baseline is ``--baseline``, else the one the run was gated against (its training curve's), else the first
checkpoint in lineage order (a stage before any training step); checkpoints are ordered by stage, then by training
step (``checkpoint-N``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.compare.choice import (
    CheckpointChoice,
    Labeled,
    MetricSignal,
    choose_checkpoint,
    per_item_metrics,
    task_signals,
)
from ftbench.harness.compare.grid import lineage_order
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.core.training_curve import load_curve
from ftbench.tasks.base import Task
from ftbench.tasks.registry import recorded_task

STEP = re.compile(r"checkpoint-(\d+)$")


class RunSelection(NamedTuple):
    """The selection on each task of a run, and the signal-to-noise of every per-item metric."""

    precision: str
    choices: list[CheckpointChoice]
    signals: list[MetricSignal]
    baseline: str


def parse_weights(text: str) -> dict[str, float]:
    """``acc_norm=1,choice_logprob=0.5`` as metric → weight.

    Raises:
        FtbenchError: a part that is not METRIC=NUMBER, or a weight that is not a positive number.
    """
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, equals, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = 0.0
        if not equals or not name.strip() or not weight > 0:
            raise FtbenchError(f"--weights {part!r} is not METRIC=WEIGHT with a positive weight, e.g. acc_norm=1")
        weights[name.strip()] = weight
    if not weights:
        raise FtbenchError("--weights names no metric; give METRIC=WEIGHT pairs, e.g. acc_norm=1,choice_logprob=0.5")
    return weights


def default_metric(task: Task) -> str:
    """What a task's checkpoints are selected on by default: its headline, or where that is a corpus metric (with
    no per-item score) its first per-item metric (perplexity: the documents' log-likelihood)."""
    if task.metrics[task.headline].kind != "corpus":
        return task.headline
    return next(iter(per_item_metrics(task)), task.headline)


def _step(record: EvalRecord, steps: dict[str, int]) -> int | None:
    found = STEP.search(record.variant.name)
    return steps.get(record.variant.name, int(found.group(1)) if found else None)


def _labeled(records: Sequence[EvalRecord], steps: dict[str, int]) -> list[Labeled]:
    ordered = sorted(records, key=lambda r: (_step(r, steps) is not None, _step(r, steps) or 0,
                                             lineage_order(r.variant.name, r.variant.stage)))  # fmt: skip
    return [Labeled(r.variant.name, _step(r, steps), r) for r in ordered]


def _loaded(results: Sequence[Path]) -> tuple[list[EvalRecord], dict[str, int], str | None]:
    records: list[EvalRecord] = []
    steps: dict[str, int] = {}
    baseline = None
    for directory in results:
        records += load_run_evals(directory)
        curve = load_curve(directory)
        if curve is not None:
            steps |= {step.name: step.step for step in curve.steps}
            baseline = baseline or curve.baseline_name
    return list({r.key: r for r in records if r.request.repeat == 0}.values()), steps, baseline


def select_from_results(
    results: Sequence[Path],
    task: str | None = None,
    metrics: dict[str, float] | None = None,
    baseline: str | None = None,
    precision: str | None = None,
    alpha: float = ALPHA,
    seed: int = 0,
) -> RunSelection:
    """The checkpoint to ship on each task (or ``task``) of the runs in ``results``, at ``precision`` (default the
    widest evaluated), on ``metrics`` (default each task's headline; several: weighted per item).

    Raises:
        FtbenchError: no such task or precision, a baseline not among the evaluations, fewer than two other
            checkpoints, a metric the task cannot select on, or evaluations that share no items.
    """
    records, steps, run_baseline = _loaded(results)
    precisions = sorted({r.variant.precision for r in records}, key=lambda p: p.rank)
    chosen = precision or (precisions[0].value if precisions else "")
    records = [r for r in records if r.variant.precision.value == chosen]
    if not records:
        raise FtbenchError(f"no evaluation at precision {chosen}; choose from {', '.join(p.value for p in precisions)}")
    tasks = list(dict.fromkeys(r.task for r in records))
    if task is not None and task not in tasks:
        raise FtbenchError(f"the results hold no evaluation of task {task!r}; choose from {', '.join(tasks)}")
    names = list(dict.fromkeys(item.label for item in _labeled(records, steps)))
    base_name = baseline or run_baseline or names[0]
    if base_name not in names:
        raise FtbenchError(f"baseline {base_name!r} is not among the evaluated checkpoints: {', '.join(names)}")
    choices, signals = [], []
    for name in [task] if task else tasks:
        info = recorded_task(next(r for r in records if r.task == name).request)
        labeled = _labeled([r for r in records if r.task == name], steps)
        base = next((item for item in labeled if item.label == base_name), None)
        others = [item for item in labeled if item.label != base_name]
        if base is None:
            raise FtbenchError(f"baseline {base_name} was not evaluated on {name}; give another --baseline")
        wanted = metrics or {default_metric(info): 1.0}
        choices.append(choose_checkpoint(info, wanted, base, others, alpha, seed))
        signals += task_signals(info, others, seed)
    return RunSelection(chosen, choices, signals, base_name)
