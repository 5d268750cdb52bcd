"""The report's first screen: one matrix per task (checkpoint × precision, headline metric), each cell the
variant's value with its change against the parent stage and against the widest precision, from the report's
own paired comparisons (``compare/grid.py`` builds the grid; this module words it for markdown and HTML)."""

from __future__ import annotations

from functools import partial

from ftbench.harness.compare.grid import (
    MARKS,
    SHORT,
    Change,
    GridCell,
    GridEntry,
    TaskGrid,
    build_grid,
    change_text,
    change_title,
    colour_key,
    legend_text,
    signed,
    task_grids,
)
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.paired import MetricComparison
from ftbench.harness.core.precision import Precision
from ftbench.reports.analysis import Analysis
from ftbench.reports.mdtext import inline, table
from ftbench.reports.numbers import fmt
from ftbench.reports.pairs import Delta
from ftbench.reports.variants import Variant


def _place(variant: Variant | GridEntry) -> tuple[str, Precision]:
    return (variant.checkpoint, variant.precision)


def _task_grid(analysis: Analysis, task: str, parent_of: dict[str, str], metric: str) -> TaskGrid | None:
    info = analysis.tasks[task]
    entries = [
        GridEntry(v.checkpoint, v.stage, v.precision, cell.value, cell.interval, analysis.records[(task, v)][0].key)
        for v in analysis.variants
        if (cell := analysis.cells.get((task, metric, v))) is not None
    ]
    deltas: dict[tuple[tuple[str, Precision], tuple[str, Precision]], Delta] = {
        (_place(d.pair.reference), _place(d.pair.variant)): d
        for d in analysis.deltas
        if d.task == task and d.metric == metric
    }

    def compared(reference: GridEntry, entry: GridEntry) -> MetricComparison | None:
        found = deltas.get((_place(reference), _place(entry)))
        return MetricComparison(found.metric, found.comparison, found.note) if found is not None else None

    if not entries or metric not in info.metrics:
        return None
    return build_grid(task, metric, info.metrics[metric].higher_is_better, entries, parent_of, compared, ALPHA)


def report_grids(analysis: Analysis) -> list[TaskGrid]:
    """Each task's matrix of its headline metric (with, where it did not change significantly, those of its
    metrics that did: ``task_grids``), over the report's comparisons (a stage's parent as the report found it: its
    manifest, or the training step before)."""
    parent_of = {p.variant.checkpoint: p.reference.checkpoint for p in analysis.pairs if "parent" in p.families}
    grids = []
    for task, info in analysis.tasks.items():
        metrics = [info.headline, *(m for m in info.metrics if m != info.headline)]
        grids += task_grids(metrics, partial(_task_grid, analysis, task, parent_of))
    return grids


def cell_changes(cell: GridCell) -> list[Change]:
    """A cell's changes, the parent's first."""
    return [change for change in (cell.parent, cell.widest) if change is not None]


def legend() -> str:
    """What a matrix cell says and what each mark means, at the report's level."""
    return legend_text(ALPHA)


def change_classes(tone: str, level: int, faded: bool) -> str:
    """The classes that colour a change (the template's style defines them)."""
    return f"change tone-{tone} level-{level}" + (" faded" if faded else "")


def colour_legend() -> list[tuple[str, str]]:
    """The colours' legend as (classes, meaning) of each swatch."""
    return [(change_classes(s.tone, s.level, s.faded), s.meaning) for s in colour_key()]


def grid_markdown(grid: TaskGrid) -> list[str]:
    """A task's matrix as a markdown table (value and marked changes per cell)."""
    direction = "higher is better" if grid.higher_is_better else "lower is better"
    rows = []
    for checkpoint, stage in grid.rows:
        cells = []
        for precision in grid.columns:
            cell = grid.cell(checkpoint, precision)
            shown = [fmt(cell.entry.value), *map(change_text, cell_changes(cell))] if cell is not None else ["–"]
            cells.append("; ".join(shown))
        rows.append([f"{checkpoint} ({stage})", *cells])
    heading = f"### {inline(grid.task)}: {inline(grid.metric)} ({direction})"
    return [heading, "", *table(["checkpoint (stage)", *grid.columns], rows), ""]


def _change_view(change: Change, variant: GridEntry) -> dict[str, object]:
    faded = change.mark not in ("better", "worse")
    return {
        "kind": change.kind,
        "mark": change.mark,
        "label": SHORT[change.kind],
        "symbol": MARKS[change.mark].symbol,
        "delta": signed(change.delta) if change.delta is not None else "",
        "title": change_title(change, variant),
        "classes": change_classes(change.tone, change.level, faded),
    }


def grid_view(grid: TaskGrid) -> dict[str, object]:
    """A task's matrix for the HTML template: every string still to be escaped by it."""
    rows = []
    for checkpoint, stage in grid.rows:
        cells: list[dict[str, object] | None] = []
        for precision in grid.columns:
            cell = grid.cell(checkpoint, precision)
            if cell is None:
                cells.append(None)
                continue
            entry, interval = cell.entry, cell.entry.interval
            shown = f" [{fmt(interval.low, entry.value)}, {fmt(interval.high, entry.value)}]" if interval else ""
            title = f"{checkpoint}@{precision}: {fmt(entry.value)}{shown}"
            changes = [_change_view(change, entry) for change in cell_changes(cell)]
            cells.append({"precision": precision, "value": fmt(entry.value), "title": title, "changes": changes})
        rows.append({"checkpoint": checkpoint, "stage": stage, "cells": cells})
    direction = "higher is better" if grid.higher_is_better else "lower is better"
    return {"task": grid.task, "metric": grid.metric, "direction": direction, "columns": grid.columns, "rows": rows}
