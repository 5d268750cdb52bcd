"""Each task's matrix over the store (``compare/grid.py``): the newest evaluation of every checkpoint at every
precision (with its repeats), compared with its parent stage and its widest precision by the report's own paired
comparison (``compare.paired``), so the viewer's first screen matches the report's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from statistics import mean

from ftbench.harness.compare.grid import GridEntry, TaskGrid, build_grid, checkpoint_parents, task_grids
from ftbench.harness.compare.paired import MetricComparison, compare_metric
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.request import NOT_IN_KEY
from ftbench.harness.index.connection import Store
from ftbench.harness.index.lookup import Indexed, list_evaluations, load_records
from ftbench.harness.index.record_rows import metric_interval
from ftbench.tasks.base import Task, TaskOf

Place = tuple[str, str, str]
"""(task, checkpoint, precision) as the store lists them."""


def _request(store: Store, item: Indexed) -> str:
    header = store.execute("SELECT header FROM evaluations WHERE eval_id = ?", (item.eval_id,))[0][0]
    request = json.loads(header)["request"]
    return json.dumps({k: v for k, v in request.items() if k not in ("repeat", *NOT_IN_KEY)}, sort_keys=True)


def newest_evaluations(store: Store) -> dict[Place, list[Indexed]]:
    """Per task, checkpoint and precision: the newest evaluation, with the repeats of its request (each key's
    newest content), newest first."""
    groups: dict[Place, dict[str, Indexed]] = {}
    for item in list_evaluations(store):  # newest first
        groups.setdefault((item.task, item.checkpoint, item.precision), {}).setdefault(item.key, item)
    chosen = {}
    for place, by_key in groups.items():
        items = list(by_key.values())
        wanted = _request(store, items[0]) if len(items) > 1 else ""
        chosen[place] = [items[0], *(i for i in items[1:] if _request(store, i) == wanted)]
    return chosen


def _entry(records: Sequence[EvalRecord], metric: str, key: str, task_of: TaskOf) -> GridEntry | None:
    if any(metric not in r.metrics for r in records):
        return None
    try:
        precision = Precision(records[0].variant.precision)
    except ValueError:
        return None
    interval = metric_interval(records[0], metric, task_of) if len(records) == 1 else None
    value = mean(r.metrics[metric].value for r in records)
    return GridEntry(records[0].variant.name, records[0].variant.stage, precision, value, interval, key)


def _task_grids(task: str, evaluated: Mapping[str, list[EvalRecord]], parent_of: Mapping[str, str],
                task_of: TaskOf, seed: int) -> list[TaskGrid]:  # fmt: skip
    """The task's matrices (``task_grids``: the headline's, and where it did not move, the metrics that did)."""
    try:
        info = task_of(next(iter(evaluated.values()))[0].request)
    except FtbenchError:  # a task this version does not know: its evaluations are listed, not compared
        return []
    metrics = [info.headline, *(m for m in info.metrics if m != info.headline)]
    return task_grids(metrics, partial(_metric_grid, task, info, evaluated, parent_of, task_of, seed))


def _metric_grid(task: str, info: Task, evaluated: Mapping[str, list[EvalRecord]], parent_of: Mapping[str, str],
                 task_of: TaskOf, seed: int, metric: str) -> TaskGrid | None:  # fmt: skip
    if metric not in info.metrics:
        return None
    entries = [e for key, records in evaluated.items() if (e := _entry(records, metric, key, task_of)) is not None]
    by_key = {e.key: evaluated[e.key] for e in entries}

    def compared(reference: GridEntry, entry: GridEntry) -> MetricComparison | None:
        return compare_metric(info, by_key[reference.key], by_key[entry.key], metric, seed)

    if not entries:
        return None
    return build_grid(task, metric, info.metrics[metric].higher_is_better, entries, parent_of, compared)


def store_grids(store: Store, task_of: TaskOf, seed: int = 0) -> list[TaskGrid]:
    """Each task's matrix of its headline metric (with, where it did not change significantly, those of its metrics
    that did: ``task_grids``), tasks by name; a stage's parent is the one its manifest names; ``task_of`` gives
    each evaluation's task."""
    by_task: dict[str, dict[str, list[EvalRecord]]] = {}
    for (task, _, _), items in sorted(newest_evaluations(store).items()):
        by_task.setdefault(task, {})[items[0].key] = load_records(store, items)
    parent_of = checkpoint_parents(records[0].variant for keyed in by_task.values() for records in keyed.values())
    return [
        grid for task, evaluated in by_task.items() for grid in _task_grids(task, evaluated, parent_of, task_of, seed)
    ]
