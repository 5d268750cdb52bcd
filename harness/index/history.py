"""One metric across every evaluation in the store, in time or training-step order, with the report's 95%
intervals (computed when each evaluation was indexed). The task's rows are checked against their seals first
(``integrity``), so a metric changed in the database is refused, not shown."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.request import EvalRequest
from ftbench.harness.index.check import changed_sources, source_notes
from ftbench.harness.index.connection import Store
from ftbench.harness.index.integrity import read_sealed, refuse
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


@lru_cache(maxsize=8192)
def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


@lru_cache(maxsize=256)
def _precision_rank(name: str) -> int:
    try:
        return Precision(name).rank
    except ValueError:
        return len(Precision) + 1


@lru_cache(maxsize=1024)
def _stage_rank(stage: str) -> int:
    return stage_rank(stage)[0]


def _sort_key(point: HistoryPoint, order: Order) -> tuple[object, ...]:
    step = -1 if point.step is None else point.step  # lifecycle stages in order, then training steps by number
    lineage = (_stage_rank(point.stage), step, _natural(point.stage), _natural(point.checkpoint))
    if order == "step":
        return (*lineage, point.created_at, _precision_rank(point.precision))
    return (point.created_at, *lineage, _precision_rank(point.precision))


_RUN = "(SELECT min(r.path) FROM run_evaluations l JOIN runs r ON r.run_id = l.run_id WHERE l.eval_id = e.eval_id)"


def _point(row: tuple[Any, ...], metric: tuple[Any, ...]) -> HistoryPoint:
    """A point from a sealed row (``integrity.read_sealed`` with the run as its extra column) and a metric row."""
    _, key, _, task, checkpoint, _, stage, precision, _, step, _, _, created, run = row
    name, value, _, n, _, _, low, high = metric
    return HistoryPoint(
        created, checkpoint, stage, step, precision, task, name, value, finite(low), finite(high), n, key, run
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
        FtbenchError: nothing matches (the message lists what the store holds), or the rows of an evaluation of
            ``task`` are not what was indexed.
    """
    name = metric or headline_metric(store, task, task_of)
    sealed = read_sealed(store, "e.task = ?", (task,), extra=(_RUN,))
    refuse(sealed.tampered)  # every evaluation of the task: a row changed to leave a history is refused too
    found = [(row, m) for row in sealed.rows for m in sealed.metrics[row[0]] if m[0] == name]
    if not found:
        known = ", ".join(sorted({m[0] for rows in sealed.metrics.values() for m in rows})) or "none"
        raise FtbenchError(f"no evaluation of {task} reports {name!r}; choose --metric from {known}")
    points = [
        _point(row, m)
        for row, m in found
        if (precision is None or row[7] == precision)
        and (checkpoint is None or fnmatchcase(row[4], checkpoint) or fnmatchcase(row[5], checkpoint))
    ]
    if not points:
        asked = (checkpoint and f"checkpoint {checkpoint!r}", precision and f"precision {precision}")
        wanted = " and ".join(text for text in asked if text)
        labels = sorted({f"{row[4]}@{row[7]}" for row, _ in found})
        raise FtbenchError(f"no evaluation of {task} matches {wanted}; the store holds {', '.join(labels)}")
    return sorted(points, key=lambda point: _sort_key(point, order))


def history_notes(store: Store, points: list[HistoryPoint]) -> list[str]:
    """A line when record files of the evaluations shown are gone or of another size than when indexed (what is
    shown is the store's verified copy); cheap: one ``stat`` per file, no reading."""
    if not points:
        return []
    keys = {point.key for point in points}
    changes = changed_sources(store, "e.task = ?", (points[0].task,), hashed=False)
    return source_notes([change for change in changes if change.key in keys], limit=1)
