"""Table rows shared by the markdown and HTML renderers, so both show the same numbers."""

from __future__ import annotations

from typing import NamedTuple

from harness.core.precision import Precision
from reports.analysis import Analysis, Cell, Delta, Variant, full_precision, variant_order
from tasks.registry import get_task


def fmt(value: float | None, like: float | None = None) -> str:
    """A metric value: two decimals at 10 and above (BLEU, perplexities), else three; ``like`` picks the
    decimals from another value, so an interval reads like its estimate."""
    if value is None:
        return "–"
    scale = abs(like if like is not None else value)
    return f"{value:.2f}" if scale >= 10 else f"{value:.3f}"


def fmt_p(p: float) -> str:
    """A p-value."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cell_text(cell: Cell | None) -> str:
    """A value with its 95% interval, or mean ± sd over repeats."""
    if cell is None:
        return "–"
    if cell.repeats > 1:
        return f"{fmt(cell.value)} ± {fmt(cell.repeat_sd)} (mean ± sd, {cell.repeats} runs)"
    if cell.interval is None:
        return fmt(cell.value)
    return f"{fmt(cell.value)} [{fmt(cell.interval.low, cell.value)}, {fmt(cell.interval.high, cell.value)}]"


class MatrixRow(NamedTuple):
    """One checkpoint's headline metric across precisions."""

    checkpoint: str
    stage: str
    cells: list[str]


def precisions(analysis: Analysis) -> list[Precision]:
    """Every precision in the results, widest first."""
    return list(dict.fromkeys(v.precision for v in sorted(analysis.variants, key=variant_order)))


def matrix(analysis: Analysis, task: str) -> list[MatrixRow]:
    """The stage × precision matrix of a task's headline metric."""
    metric = get_task(task).headline
    columns = precisions(analysis)
    rows = []
    for checkpoint, stage in dict.fromkeys(
        (v.checkpoint, v.stage) for v in sorted(analysis.variants, key=variant_order)
    ):
        cells = [cell_text(analysis.cells.get((task, metric, Variant(checkpoint, stage, p)))) for p in columns]
        rows.append(MatrixRow(checkpoint, stage, cells))
    return rows


class DeltaRow(NamedTuple):
    """One paired comparison, formatted."""

    variant: str
    metric: str
    baseline: str
    value: str
    delta: str
    interval: str
    p_value: str
    test: str
    n: str
    significant: bool
    note: str


def delta_rows(analysis: Analysis, task: str) -> list[DeltaRow]:
    """The paired comparisons of a task against the baseline."""
    rows = []
    for delta in (d for d in analysis.deltas if d.task == task):
        rows.append(_delta_row(delta))
    return rows


def _delta_row(delta: Delta) -> DeltaRow:
    c = delta.comparison
    if c is None:
        return DeltaRow(delta.variant.label, delta.metric, "–", "–", "–", "–", "–", "–", "0", False, delta.note or "")
    direction = "" if get_task(delta.task).metrics[delta.metric].higher_is_better else " (lower is better)"
    return DeltaRow(
        delta.variant.label,
        delta.metric,
        fmt(c.baseline),
        fmt(c.candidate),
        f"{c.delta:+.3f}" if abs(c.delta) < 10 else f"{c.delta:+.2f}",
        f"[{fmt(c.interval.low, c.delta)}, {fmt(c.interval.high, c.delta)}]",
        fmt_p(c.p_value),
        "McNemar exact" if c.test == "mcnemar_exact" else "paired permutation",
        str(c.n),
        delta.significant,
        direction.strip(),
    )


class QuantRow(NamedTuple):
    """One precision of one checkpoint against that checkpoint's widest precision."""

    checkpoint: str
    precision: str
    task: str
    value: str
    change: str
    footprint_mib: str
    peak_mib: str
    tokens_per_second: str


def quantization_rows(analysis: Analysis) -> list[QuantRow]:
    """For each checkpoint and task, every precision's headline change from its full-precision score."""
    rows = []
    for task in analysis.tasks:
        metric = get_task(task).headline
        for variant in sorted(analysis.variants, key=variant_order):
            if (task, variant) not in analysis.records:
                continue
            record = analysis.records[(task, variant)][0]
            reference = full_precision(
                [v for v in analysis.variants if (task, v) in analysis.records], variant.checkpoint
            )
            value = record.metrics[metric].value
            base = analysis.records[(task, reference)][0].metrics[metric].value if reference else value
            speed = record.performance.tokens_per_second
            rows.append(
                QuantRow(
                    variant.checkpoint,
                    variant.precision,
                    f"{task} ({metric})",
                    fmt(value),
                    "reference" if reference == variant else f"{value - base:+.3f}",
                    f"{record.variant.footprint_bytes / 2**20:.1f}",
                    f"{record.performance.peak_memory_bytes / 2**20:.0f}",
                    f"{speed:.1f}" if speed is not None else "–",
                )
            )
    return rows


class GlanceRow(NamedTuple):
    """A significant change against the baseline."""

    task: str
    metric: str
    variant: str
    delta: str
    interval: str
    p_value: str
    verdict: str
    """``better`` or ``worse``, from the metric's direction."""


def glance(analysis: Analysis) -> list[GlanceRow]:
    """The significant changes against the baseline: headline metrics first, then by p-value."""
    rows = []
    significant = [d for d in analysis.deltas if d.significant and d.comparison is not None]
    significant.sort(key=lambda d: (d.metric != get_task(d.task).headline, d.comparison.p_value if d.comparison else 1))
    for delta in significant:
        row = _delta_row(delta)
        better = get_task(delta.task).metrics[delta.metric].higher_is_better
        verdict = "better" if row.delta.startswith("+") == better else "worse"
        rows.append(GlanceRow(delta.task, delta.metric, row.variant, row.delta, row.interval, row.p_value, verdict))
    return rows


class StageRow(NamedTuple):
    """One checkpoint's lineage, from its manifest."""

    checkpoint: str
    stage: str
    method: str
    parent: str
    finetune: str
    data: str
    steps: str
    final_loss: str
    train_seconds: str


def stage_rows(analysis: Analysis) -> list[StageRow]:
    """The lineage of every checkpoint in stage order: how it was made, from what, on which data."""
    rows = []
    for checkpoint, stage in dict.fromkeys(
        (v.checkpoint, v.stage) for v in sorted(analysis.variants, key=variant_order)
    ):
        record = next(r for (_, v), rs in analysis.records.items() if v.checkpoint == checkpoint for r in rs)
        manifest = record.variant.manifest or {}
        training = manifest.get("training") or {}
        parent = manifest.get("parent")
        data = "; ".join(f"{d['name']} {d['rows']}" for d in manifest.get("data") or []) or "–"
        wall = training.get("wall_seconds")
        rows.append(
            StageRow(
                checkpoint=checkpoint,
                stage=stage,
                method=str(manifest.get("method", "unknown")),
                parent=parent.rstrip("/").rsplit("/", 1)[-1] if parent else "–",
                finetune=str(manifest.get("finetune", "–")) if manifest.get("method") != "bootstrap" else "–",
                data=data,
                steps=str(training.get("steps", "–")),
                final_loss=fmt(training.get("final_loss")),
                train_seconds=f"{wall:.0f}" if isinstance(wall, int | float) else "–",
            )
        )
    return rows
