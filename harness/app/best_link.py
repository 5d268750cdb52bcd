"""The best checkpoint so far, kept on disk as a training run goes: a link to it (or a copy, for a trainer that
deletes old checkpoints, ``save_total_limit``), so a run that collapses late still has its best checkpoint.

The best is the checkpoint ``ftbench select`` would select: the best mean of the suite's first task on its
selection metric (the headline, or a per-item metric where the headline is a corpus one), at its widest precision,
the earliest of ties.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ftbench.harness.compare.choice import item_scores
from ftbench.harness.compare.run_choice import default_metric
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.training_curve import TrainingCurve
from ftbench.tasks.base import Task

MARKER = ".ftbench-best"
"""The file a best-checkpoint copy holds: the checkpoint it copies."""


def best_checkpoint(curve: TrainingCurve, records: dict[str, EvalRecord], task: Task) -> str | None:
    """The path of the curve's best checkpoint on ``task`` so far (None before any was evaluated)."""
    metric, sign = default_metric(task), 1.0 if task.metrics[default_metric(task)].higher_is_better else -1.0
    best: tuple[float, str] | None = None
    for step in curve.steps:
        found = [records[key] for key in step.evaluations if key in records and records[key].task == task.name]
        if not found:
            continue
        widest = min(found, key=lambda r: r.variant.precision.rank)
        scores = list(item_scores(task, metric, widest).values())
        if scores:
            value = sign * sum(scores) / len(scores)
            best = (value, step.checkpoint) if best is None or value > best[0] else best
    return best[1] if best is not None else None


def check_target(target: Path) -> None:
    """Refuse a path that holds something other than a best-checkpoint link or copy (it would be replaced).

    Raises:
        FtbenchError: naming the path and the fix.
    """
    if (target.exists() or target.is_symlink()) and not target.is_symlink() and not (target / MARKER).is_file():
        raise FtbenchError(f"{target} exists and is not a best-checkpoint link or copy; give --link-best a new path")


def keep(target: Path, checkpoint: Path, copy: bool) -> None:
    """Point ``target`` at ``checkpoint``: a symbolic link replaced at once, or a copy put in place at once.

    Raises:
        FtbenchError: ``target`` exists and is neither a link nor a copy ftbench made.
    """
    check_target(target)
    staging = target.with_name(f".{target.name}.tmp")
    if staging.is_symlink() or staging.is_file():
        staging.unlink()
    elif staging.is_dir():
        shutil.rmtree(staging)
    if copy:
        shutil.copytree(checkpoint, staging, symlinks=True)
        (staging / MARKER).write_text(f"{checkpoint.resolve()}\n", encoding="utf-8")
        if target.is_symlink():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        staging.rename(target)
    else:
        staging.symlink_to(checkpoint.resolve(), target_is_directory=True)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staging, target)


class BestLink:
    """Keeps ``target`` on the run's best checkpoint after every evaluated checkpoint.

    Args:
        target: where the link (or copy) goes.
        copy: copy the checkpoint rather than link it (the trainer deletes old checkpoints).
        tasks: the suite's tasks; the first decides.
    """

    def __init__(self, target: Path, copy: bool, tasks: Sequence[Task]) -> None:
        if not tasks:
            raise FtbenchError("keeping the best checkpoint needs a suite with a task")
        check_target(target)
        self.target, self.copy, self.task = target, copy, tasks[0]
        self.current: str | None = None

    def update(self, curve: TrainingCurve, records: dict[str, EvalRecord]) -> str | None:
        """Move the link to the best checkpoint so far, when it changed and is still on disk; returns it."""
        best = best_checkpoint(curve, records, self.task)
        if best is not None and best != self.current and Path(best).is_dir():
            keep(self.target, Path(best), self.copy)
            self.current = best
        return self.current
