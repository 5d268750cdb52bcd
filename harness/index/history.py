"""One metric across every evaluation in the store, in time or training-step order, with the report's 95%
intervals (computed when each evaluation was indexed)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any, Literal, NamedTuple

from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.request import EvalRequest
from ftbench.harness.index.connection import Store
from ftbench.harness.index.record_rows import finite
from ftbench.tasks.base import TaskOf

Order = Literal["time", "step"]
ORDERS: tuple[Order, ...] = ("time", "step")


class HistoryPoint(NamedTuple):
    """One evaluation's value of the metric."""

    created_at: str
    checkpoint: str
    stage: str
    step: int | None
    precision: str
    task: str
    metric: str
    value: float
    low: float | None
    high: float | None
    n: int
    key: str
    run: str


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


def _precision_rank(name: str) -> int:
    try:
        return Precision(name).rank
    except ValueError:
        return len(Precision) + 1


def _sort_key(point: HistoryPoint, order: Order) -> tuple[object, ...]:
    step = -1 if point.step is None else point.step  # lifecycle stages in order, then training steps by number
    lineage = (stage_rank(point.stage)[0], step, _natural(point.stage), _natural(point.checkpoint))
    if order == "step":
        return (*lineage, point.created_at, _precision_rank(point.precision))
    return (point.created_at, *lineage, _precision_rank(point.precision))


def _point(row: tuple[Any, ...]) -> HistoryPoint:
    created, checkpoint, stage, step, precision, task, metric, value, low, high, n, key, run = row[:13]
    return HistoryPoint(
        created, checkpoint, stage, step, precision, task, metric, value, finite(low), finite(high), n, key, run
    )


def _choices(store: Store, column: str, where: str, params: tuple[object, ...]) -> str:
    rows = store.execute(f"SELECT DISTINCT {column} FROM {where} ORDER BY {column}", params)
    return ", ".join(str(row[0]) for row in rows) or "none"


def headline_metric(store: Store, task: str, task_of: TaskOf) -> str:
    """The task's headline metric, as ``task_of`` says for a stored request of it (a task this version does not
    know: its only stored metric).

    Raises:
        FtbenchError: the store holds no evaluation of ``task``, or the metric is not for ftbench to choose.
    """
    found = store.execute("SELECT header FROM evaluations WHERE task = ? LIMIT 1", (task,))
    if not found:
        tasks = _choices(store, "task", "evaluations", ())
        raise FtbenchError(f"the store holds no evaluation of task {task!r}; choose one of {tasks}")
    try:
        return task_of(EvalRequest.model_validate(json.loads(found[0][0])["request"])).headline
    except FtbenchError:
        pass  # a task this version does not know
    metrics = [row[0] for row in store.execute(
        "SELECT DISTINCT m.metric FROM metrics m JOIN evaluations e ON e.eval_id = m.eval_id WHERE e.task = ?",
        (task,),
    )]  # fmt: skip
    if len(metrics) == 1:
        return str(metrics[0])
    raise FtbenchError(f"give --metric for task {task!r}: one of {', '.join(sorted(metrics))}")


def metric_history(
    store: Store,
    task: str,
    task_of: TaskOf,
    metric: str | None = None,
    checkpoint: str | None = None,
    precision: str | None = None,
    order: Order = "time",
) -> list[HistoryPoint]:
    """Every indexed evaluation of ``task`` that reports ``metric`` (default: the task's headline, as ``task_of``
    says), optionally only checkpoints matching the glob ``checkpoint`` (name or path) and one precision.

    Raises:
        FtbenchError: nothing matches; the message lists what the store holds.
    """
    name = metric or headline_metric(store, task, task_of)
    rows = store.execute(
        "SELECT e.created_at, e.checkpoint, e.stage, e.step, e.precision, e.task, m.metric, m.value, m.low, m.high, "
        "m.n, e.key, (SELECT min(r.path) FROM run_evaluations l JOIN runs r ON r.run_id = l.run_id "
        "WHERE l.eval_id = e.eval_id), e.checkpoint_path FROM evaluations e JOIN metrics m ON m.eval_id = e.eval_id "
        "WHERE e.task = ? AND m.metric = ?",
        (task, name),
    )
    if not rows:
        known = _choices(store, "m.metric", "metrics m JOIN evaluations e ON e.eval_id = m.eval_id WHERE e.task = ?",
                         (task,))  # fmt: skip
        raise FtbenchError(f"no evaluation of {task} reports {name!r}; choose --metric from {known}")
    points = [
        _point(row)
        for row in rows
        if (precision is None or row[4] == precision)
        and (checkpoint is None or fnmatchcase(row[1], checkpoint) or fnmatchcase(row[13], checkpoint))
    ]
    if not points:
        asked = (checkpoint and f"checkpoint {checkpoint!r}", precision and f"precision {precision}")
        wanted = " and ".join(text for text in asked if text)
        labels = sorted({f"{row[1]}@{row[4]}" for row in rows})
        raise FtbenchError(f"no evaluation of {task} matches {wanted}; the store holds {', '.join(labels)}")
    return sorted(points, key=lambda point: _sort_key(point, order))
