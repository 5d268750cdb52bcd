"""Which checkpoint of a training run to ship, from its stored evaluations: the checkpoints of each task in
lineage and step order at one precision, the baseline picked, and each task's selection and signal-to-noise
(``choice.py``). ``ftbench select`` and the report of a training run both answer through here.

The baseline is the one asked for, else the one the run was gated against (its training curve's), else the first
checkpoint in lineage order (a stage before any training step); checkpoints are ordered by stage, then by training
step (``checkpoint-N``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from ftbench.tasks.base import Task, TaskOf

STEP = re.compile(r"checkpoint-(\d+)$")


class RunSelection(NamedTuple):
    """The selection on each task of a run, and the signal-to-noise of every per-item metric."""

    precision: str
    choices: list[CheckpointChoice]
    signals: list[MetricSignal]
    baseline: str


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


def select_run(
    records: Sequence[EvalRecord],
    steps: dict[str, int],
    task_of: TaskOf,
    *,
    run_baseline: str | None = None,
    task: str | None = None,
    metrics: dict[str, float] | None = None,
    baseline: str | None = None,
    precision: str | None = None,
    alpha: float = ALPHA,
    seed: int = 0,
) -> RunSelection:
    """The checkpoint to ship on each task (or ``task``) of a training run's evaluations (``steps``: each
    checkpoint's training step, from its curve), at ``precision`` (default the widest evaluated), on ``metrics``
    (default each task's ``default_metric``; several: weighted per item), against ``baseline`` (default the run's,
    else the first in lineage order).

    Raises:
        FtbenchError: no such task or precision, a baseline not among the evaluations, fewer than two other
            checkpoints, a metric the task cannot select on, or evaluations that share no items.
    """
    records = list({r.key: r for r in records if r.request.repeat == 0}.values())
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
        info = task_of(next(r for r in records if r.task == name).request)
        labeled = _labeled([r for r in records if r.task == name], steps)
        base = next((item for item in labeled if item.label == base_name), None)
        others = [item for item in labeled if item.label != base_name]
        if base is None:
            raise FtbenchError(f"baseline {base_name} was not evaluated on {name}; give another --baseline")
        choices.append(choose_checkpoint(info, metrics or {default_metric(info): 1.0}, base, others, alpha, seed))
        signals += task_signals(info, others, seed)
    return RunSelection(chosen, choices, signals, base_name)
