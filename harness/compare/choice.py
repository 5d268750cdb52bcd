"""Which checkpoint of a training run to ship, from stored evaluations: each checkpoint's per-item scores aligned
with the baseline's (by doc id and doc hash), the selection with the winner's curse taken out (``selection.py``),
and each metric's signal-to-noise over the run's checkpoints (``signal_noise.py``).

Per-item scores come from the task's declaration: a 0/1 metric's or a per-item score's (``Metric.sample_score``).
A corpus metric (corpus BLEU, perplexity) has none and is refused, naming a per-item metric of the task. For
multiple-choice tasks the log-probability of the right choice among the choices (from the stored choice
log-likelihoods) is offered as a continuous score, which often ranks checkpoints where accuracy cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np

from ftbench.harness.compare.selection import Kind, Selection, combine_metrics, select_checkpoint
from ftbench.harness.compare.signal_noise import SignalNoise, signal_to_noise
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, SampleRecord
from ftbench.tasks.base import Task

CHOICE_LOGPROB = "choice_logprob"
"""The derived continuous score of a multiple-choice item: the log-probability of its right choice among the
choices (natural log, 0 at best; higher is better)."""

T = TypeVar("T")
Item = tuple[int, str]
"""(doc id, doc hash)."""


class Labeled(NamedTuple):
    """One checkpoint's evaluation of the task, with its label and training step (None: not a training step)."""

    label: str
    step: int | None
    record: EvalRecord


class CheckpointChoice(NamedTuple):
    """The selection over a run's checkpoints on one task and metric (or weighted metrics)."""

    task: str
    metric: str
    labels: tuple[str, ...]
    steps: tuple[int | None, ...]
    baseline: str
    items: int
    selection: Selection

    @property
    def selected(self) -> str:
        """The label of the checkpoint to ship."""
        return self.labels[self.selection.selected]


class MetricSignal(NamedTuple):
    """One metric's signal-to-noise over a run's checkpoints."""

    task: str
    metric: str
    signal: SignalNoise
    continuous_alternative: str | None = None
    """A continuous metric of the same task that ranks these checkpoints better (higher ratio), where one does."""


def _choice_logprob(sample: SampleRecord) -> float | None:
    values = sample.choice_loglikelihoods
    if not values or not sample.target.strip().isdigit() or int(sample.target) >= len(values):
        return None
    top = max(values)
    total = top + math.log(sum(math.exp(v - top) for v in values))
    return values[int(sample.target)] - total


def item_scores(task: Task, metric: str, record: EvalRecord) -> dict[Item, float]:
    """Each item's score of ``metric`` in ``record`` (``CHOICE_LOGPROB``: derived from its choices).

    Raises:
        FtbenchError: a metric the task does not declare, a corpus metric, or one its samples do not carry.
    """
    if metric == CHOICE_LOGPROB and task.output == "multiple_choice":
        found = {(s.doc_id, s.doc_hash): _choice_logprob(s) for s in record.samples}
        return {item: value for item, value in found.items() if value is not None}
    info = task.metrics.get(metric)
    if info is None:
        raise FtbenchError(
            f"task {task.name} has no metric {metric!r}; choose from {', '.join(per_item_metrics(task))}"
        )
    if info.kind == "corpus":
        raise FtbenchError(
            f"{task.name} {metric} is a corpus metric with no per-item score to select on; choose a per-item metric "
            f"of the task: {', '.join(per_item_metrics(task))}"
        )
    key = info.sample_score or metric
    return {(s.doc_id, s.doc_hash): s.scores[key] for s in record.samples if key in s.scores}


def per_item_metrics(task: Task) -> list[str]:
    """The task's metrics with a per-item score (and ``CHOICE_LOGPROB`` for multiple choice)."""
    names = [name for name, info in task.metrics.items() if info.kind != "corpus"]
    return [*names, CHOICE_LOGPROB] if task.output == "multiple_choice" else names


def _aligned(rows: Sequence[dict[Item, float]], base: dict[Item, float], where: str) -> tuple[np.ndarray, np.ndarray]:
    shared = sorted(set(base).intersection(*rows))
    if len(shared) < 2:
        raise FtbenchError(
            f"{where}: the checkpoints and the baseline share {len(shared)} items; select among evaluations of the "
            "same items (one suite, one limit)"
        )
    return np.array([[row[item] for item in shared] for row in rows]), np.array([base[item] for item in shared])


def _selected(compute: Callable[[], T], where: str) -> T:
    """``compute()``, its refusal of the scores (a ``ValueError``) as one line naming the task."""
    try:
        return compute()
    except ValueError as exc:
        raise FtbenchError(f"{where}: {exc}") from exc


def choose_checkpoint(
    task: Task,
    metrics: dict[str, float],
    baseline: Labeled,
    checkpoints: Sequence[Labeled],
    alpha: float,
    seed: int = 0,
) -> CheckpointChoice:
    """The checkpoint to ship on ``metrics`` (one metric with weight 1, or several with their weights combined per
    item, each in its own direction and per-item standard deviation), against ``baseline``.

    Raises:
        FtbenchError: fewer than two checkpoints, a metric the task cannot select on, or no shared items.
    """
    if len(checkpoints) < 2:
        raise FtbenchError(
            f"selection needs at least two checkpoints of {task.name} besides the baseline, and the results hold "
            f"{len(checkpoints)}; evaluate more checkpoints of the run"
        )
    where = f"{task.name}"
    matrices = []
    for metric in metrics:
        rows = [item_scores(task, metric, c.record) for c in checkpoints]
        matrices.append(_aligned(rows, item_scores(task, metric, baseline.record), where))
    binary = len(metrics) == 1 and task.metrics.get(next(iter(metrics))) is not None
    binary = binary and task.metrics[next(iter(metrics))].kind == "binary"
    if len(metrics) == 1:
        name = next(iter(metrics))
        higher = task.metrics[name].higher_is_better if name in task.metrics else True
        matrix, base = matrices[0]
        kind: Kind = "binary" if binary else "continuous"
        selection = _selected(lambda: select_checkpoint(matrix, base, higher_is_better=higher, kind=kind,
                                                        alpha=alpha, seed=seed), where)  # fmt: skip
    else:
        directions = [task.metrics[m].higher_is_better if m in task.metrics else True for m in metrics]
        composite = _selected(lambda: combine_metrics([m for m, _ in matrices], [b for _, b in matrices],
                                                      list(metrics.values()), directions), where)  # fmt: skip
        selection = _selected(lambda: select_checkpoint(composite.scores, composite.baseline, kind="continuous",
                                                        alpha=alpha, seed=seed), where)  # fmt: skip
    label = "+".join(f"{w:g}·{m}" for m, w in metrics.items()) if len(metrics) > 1 else next(iter(metrics))
    return CheckpointChoice(task.name, label, tuple(c.label for c in checkpoints), tuple(c.step for c in checkpoints),
                            baseline.label, matrices[0][1].size, selection)  # fmt: skip


def task_signals(task: Task, checkpoints: Sequence[Labeled], seed: int = 0) -> list[MetricSignal]:
    """The signal-to-noise of every per-item metric of ``task`` over the run's checkpoints; a metric below 1 that a
    continuous metric of the task ranks better names it."""
    found = []
    for metric in per_item_metrics(task):
        rows = [item_scores(task, metric, c.record) for c in checkpoints]
        shared = sorted(set(rows[0]).intersection(*rows[1:])) if rows else []
        if len(rows) < 2 or len(shared) < 2:
            continue
        found.append((metric, signal_to_noise(np.array([[row[i] for i in shared] for row in rows]), seed)))
    continuous = [(m, s) for m, s in found if m == CHOICE_LOGPROB or task.metrics[m].kind == "continuous"]
    signals = []
    for metric, signal in found:
        better = max((c for c in continuous if c[0] != metric and c[1].snr > signal.snr), key=lambda c: c[1].snr,
                     default=None)  # fmt: skip
        alternative = better[0] if better is not None and signal.cannot_rank else None
        signals.append(MetricSignal(task.name, metric, signal, alternative))
    return signals
