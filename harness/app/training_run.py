"""The one loop over a training run's checkpoints that ``FtbenchCallback`` and ``ftbench watch`` share: each
checkpoint evaluated (and, with a gate, judged against the baseline), the run added to the results store once per
checkpoint from the records in memory, and a ``CheckpointEvent`` sent."""

from __future__ import annotations

from pathlib import Path

from ftbench.harness.app.best_link import BestLink
from ftbench.harness.core.events import CheckpointEvent, EventSink, ignore
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.evaluation.steps import StepEvaluator, StepResult
from ftbench.harness.index.indexing import run_indexer
from ftbench.tasks.registry import recorded_task


def checkpoint_event(result: StepResult, headlines: dict[str, str]) -> CheckpointEvent:
    """What a display shows of an evaluated checkpoint: each evaluation's headline value and the gate's verdict.

    Args:
        result: the checkpoint's step and records.
        headlines: each task's headline metric, by task name.
    """
    several = len({r.request.precision for r in result.evaluations}) > 1
    values = []
    for record in result.evaluations:
        metric = headlines.get(record.task, "")
        if metric in record.metrics:
            label = f"{metric}@{record.request.precision}" if several else metric
            values.append((record.task, label, record.metrics[metric].value))
    step = result.step
    regressions = tuple(regression.describe() for regression in step.regressions)
    return CheckpointEvent(
        step.step, step.name, tuple(values), step.eval_seconds, step.outcome, step.reason, regressions
    )


class TrainingRun:
    """A training run's checkpoints evaluated into one results directory, each added to the results store.

    Args:
        evaluator: evaluates each checkpoint and keeps the run's curve and records.
        best: keeps a link to (or a copy of) the best checkpoint so far (None: nothing kept).

    Raises:
        FtbenchError: the results store cannot be reached or is of a newer schema (checked here, before any step).
    """

    def __init__(self, evaluator: StepEvaluator, best: BestLink | None = None) -> None:
        self.evaluator, self.best = evaluator, best
        self.add_to_store = run_indexer(evaluator.out, recorded_task)
        self.headlines = {task.name: task.definition.headline for task in evaluator.suite.tasks}

    def _stored(self) -> None:
        run = self.evaluator.run
        if run is not None:
            self.add_to_store(run, self.evaluator.run_records())

    def baseline(self, checkpoint: Path, on_event: EventSink | None = None) -> list[EvalRecord]:
        """Evaluate the checkpoint the run is gated against and hold its records."""
        records = self.evaluator.evaluate_baseline(checkpoint, on_event)
        self._stored()
        return records

    def checkpoint(self, step: int, checkpoint: Path, on_event: EventSink | None = None) -> StepResult:
        """Evaluate the checkpoint of training step ``step`` (judged, with a gate) and add it to the store."""
        result = self.evaluator.evaluate(step, checkpoint, on_event)
        self._stored()
        if self.best is not None:
            self.best.update(self.evaluator.curve, self.evaluator.records)
        (on_event or ignore)(checkpoint_event(result, self.headlines))
        return result
