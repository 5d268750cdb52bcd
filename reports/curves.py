"""Training curves: each task's headline metric against the training step, for results that ``FtbenchCallback`` or
``ftbench watch`` wrote, with the 95% intervals and the first checkpoint the gate found regressed."""

from __future__ import annotations

from typing import NamedTuple

import matplotlib.pyplot as plt
from markupsafe import Markup
from matplotlib.ticker import MaxNLocator

from ftbench.harness.compare.statistics import Interval
from ftbench.harness.core.training_curve import TrainingCurve
from ftbench.reports.analysis import Analysis, Cell
from ftbench.reports.mdtext import code, table
from ftbench.reports.numbers import cell_text
from ftbench.reports.plots import _svg, _tidy
from ftbench.reports.rows import precisions


class CurvePoint(NamedTuple):
    """One evaluated checkpoint on a curve (step 0: the baseline evaluated with the run)."""

    step: int
    checkpoint: str
    cell: Cell
    outcome: str | None
    """The gate's answer on this checkpoint (None: the baseline itself, or no gate)."""


class TaskCurve(NamedTuple):
    """One task's headline metric by step, at one precision, for one training run."""

    run: str
    task: str
    metric: str
    precision: str
    points: list[CurvePoint]
    first_regression: int | None


def _labels(curve: TrainingCurve) -> list[tuple[int, str, str | None]]:
    """(step, checkpoint name, gate outcome) of the curve's baseline (step 0) and steps."""
    first = [(0, curve.baseline_name, None)] if curve.baseline_name else []
    return first + [(s.step, s.name, s.outcome) for s in curve.steps]


def task_curves(analysis: Analysis) -> list[TaskCurve]:
    """Every training run's curve of every task's headline metric at every precision it was evaluated at."""
    cells = {(t, m, v.checkpoint, v.precision.value): c for (t, m, v), c in analysis.cells.items()}
    curves = []
    for curve in analysis.training:
        for task in analysis.tasks:
            metric = analysis.tasks[task].headline
            for precision in precisions(analysis):
                points = [
                    CurvePoint(step, name, cell, outcome)
                    for step, name, outcome in _labels(curve)
                    if (cell := cells.get((task, metric, name, precision))) is not None
                ]
                if points:
                    curves.append(TaskCurve(curve.name, task, metric, precision, points, curve.first_regression))
    return curves


def curve_plot(curves: list[TaskCurve]) -> str:
    """One task's curves (one line per precision) as SVG: values with 95% intervals, the first regression marked."""
    figure, axes = plt.subplots(figsize=(5.2, 3.0))
    for curve in curves:
        steps = [p.step for p in curve.points]
        values = [p.cell.value for p in curve.points]
        intervals = [p.cell.interval or Interval(p.cell.value, p.cell.value) for p in curve.points]
        axes.fill_between(steps, [i.low for i in intervals], [i.high for i in intervals], alpha=0.2)
        axes.plot(steps, values, marker="o", label=curve.precision)
        regressed = [p for p in curve.points if p.outcome == "regression"]
        if regressed:
            axes.scatter([p.step for p in regressed], [p.cell.value for p in regressed], marker="x", s=60, color="red")
    first = curves[0].first_regression
    if first is not None:
        axes.axvline(first, color="red", linestyle="--", linewidth=1)
        axes.annotate(
            f"first regression: step {first} ",
            (first, 0.97),
            xycoords=("data", "axes fraction"),
            ha="right",
            va="top",
            fontsize=7,
            color="red",
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("training step")
    axes.set_ylabel(curves[0].metric)
    axes.set_title(f"{curves[0].task}: {curves[0].metric} by training step (95% intervals)", fontsize=10)
    axes.legend(fontsize=8, title="precision", title_fontsize=8)
    axes.grid(alpha=0.3)
    return _tidy(_svg(figure))


def plots_by_task(analysis: Analysis) -> dict[tuple[str, str], str]:
    """(run, task) → its curve plot, for every task with a curve."""
    grouped: dict[tuple[str, str], list[TaskCurve]] = {}
    for curve in task_curves(analysis):
        grouped.setdefault((curve.run, curve.task), []).append(curve)
    return {key: curve_plot(curves) for key, curves in grouped.items()}


class CurveRow(NamedTuple):
    """One point of a curve, formatted."""

    run: str
    task: str
    metric: str
    precision: str
    step: str
    checkpoint: str
    value: str
    gate: str


def curve_rows(analysis: Analysis) -> list[CurveRow]:
    """Every point of every curve, with its interval and the gate's answer (``▼ first regression`` marked)."""
    rows = []
    for curve in task_curves(analysis):
        for point in curve.points:
            gate = point.outcome or ("baseline" if point.step == 0 else "–")
            if point.step == curve.first_regression:
                gate = "▼ first regression"
            rows.append(
                CurveRow(
                    curve.run,
                    curve.task,
                    curve.metric,
                    curve.precision,
                    str(point.step),
                    point.checkpoint,
                    cell_text(point.cell),
                    gate,
                )
            )
    return rows


def last_good(analysis: Analysis) -> list[tuple[str, str | None, int | None]]:
    """Each training run's name, its last good checkpoint and its first regressed step (gated runs only)."""
    return [(c.name, c.last_good, c.first_regression) for c in analysis.training if c.baseline is not None]


CURVES_LEDE = (
    "Each task's headline metric at every checkpoint the training run saved (step 0: the baseline evaluated with "
    "the run), with its 95% interval, and the gate's answer on each checkpoint against the baseline."
)


def curves_markdown(analysis: Analysis) -> list[str]:
    """The report's training-curve section (nothing for results that hold no training curve)."""
    rows = curve_rows(analysis)
    if not rows:
        return []
    lines = ["## Training curves", "", CURVES_LEDE, ""]
    for name, good, first in last_good(analysis):
        where = f"first regression at step {first}" if first is not None else "no regression"
        lines += [f"- run {code(name)}: {where}; last good checkpoint {code(good or '–')}", ""]
    header = ["run", "task", "metric", "precision", "step", "checkpoint", "value [95% CI]", "gate"]
    return [*lines, *table(header, [list(row) for row in rows]), ""]


def curves_html(analysis: Analysis) -> list[dict[str, object]]:
    """The HTML report's training curves: per run and task, the plot and its rows; empty without a curve."""
    rows = curve_rows(analysis)
    found: list[dict[str, object]] = []
    for (run, task), svg in plots_by_task(analysis).items():
        good = next((g for name, g, _ in last_good(analysis) if name == run), None)
        found.append(
            {
                "run": run,
                "task": task,
                "last_good": good,
                # SVG that matplotlib wrote from our numbers; labels inside it are drawn as paths.
                "plot": Markup(svg),
                "rows": [r._asdict() for r in rows if (r.run, r.task) == (run, task)],
            }
        )
    return found
