"""Table rows shared by the markdown and HTML renderers, so both show the same numbers."""

from __future__ import annotations

from typing import NamedTuple

from ftbench.harness.core.precision import Precision
from ftbench.reports.analysis import Analysis, full_precision
from ftbench.reports.numbers import agreement_text, cell_text, delta_text, flips_text, fmt, fmt_p
from ftbench.reports.pairs import Delta
from ftbench.reports.variants import Variant, variant_order


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
    metric = analysis.tasks[task].headline
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
    return [_delta_row(d) for d in analysis.deltas if d.task == task and d.pair.reference == analysis.baseline]


def _delta_row(delta: Delta) -> DeltaRow:
    c = delta.comparison
    if c is None:
        return DeltaRow(delta.variant.label, delta.metric, "–", "–", "–", "–", "–", "–", "0", False, delta.note or "")
    direction = "" if delta.definition.metrics[delta.metric].higher_is_better else "lower is better"
    return DeltaRow(
        delta.variant.label,
        delta.metric,
        fmt(c.baseline),
        fmt(c.candidate),
        delta_text(c.delta),
        f"[{fmt(c.interval.low, c.delta)}, {fmt(c.interval.high, c.delta)}]",
        fmt_p(c.p_value),
        "McNemar exact" if c.test == "mcnemar_exact" else "paired permutation",
        str(c.n),
        delta.significant,
        "; ".join(part for part in (direction, f"flips {flips_text(c)}" if c.flips else "") if part),
    )


class QuantRow(NamedTuple):
    """One precision of one checkpoint against that checkpoint's widest precision."""

    checkpoint: str
    precision: str
    task: str
    value: str
    change: str
    flips: str
    agreement: str
    footprint_mib: str
    peak_mib: str
    tokens_per_second: str
    engine: str


def quantization_rows(analysis: Analysis) -> list[QuantRow]:
    """For each checkpoint and task, every precision's headline change from its widest precision, with flips,
    output agreement, size and speed."""
    rows = []
    for task in analysis.tasks:
        metric = analysis.tasks[task].headline
        evaluated = [v for v in analysis.variants if (task, v) in analysis.records]
        for variant in sorted(evaluated, key=variant_order):
            record = analysis.records[(task, variant)][0]
            reference = full_precision(evaluated, variant.checkpoint) or variant
            pair = next((p for p in analysis.pairs if (p.reference, p.variant) == (reference, variant)), None)
            delta = next((d for d in analysis.deltas if d.task == task and d.metric == metric and d.pair == pair), None)
            value = record.metrics[metric].value
            base = analysis.records[(task, reference)][0].metrics[metric].value
            speed = record.performance.tokens_per_second
            rows.append(
                QuantRow(
                    variant.checkpoint,
                    variant.precision,
                    f"{task} ({metric})",
                    fmt(value),
                    "reference" if reference == variant else delta_text(value - base),
                    flips_text(delta.comparison) if delta else "–",
                    agreement_text(analysis.agreements.get((task, pair))) if pair else "–",
                    f"{record.variant.footprint_bytes / 2**20:.1f}",
                    f"{record.performance.peak_memory_bytes / 2**20:.0f}",
                    f"{speed:.1f}" if speed is not None else "–",
                    record.variant.engine,
                )
            )
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
        manifest = record.variant.manifest
        training = manifest.training if manifest else None
        parent = manifest.parent if manifest else None
        data = "; ".join(f"{d.name} {d.rows}" for d in manifest.data) if manifest and manifest.data else "–"
        rows.append(
            StageRow(
                checkpoint=checkpoint,
                stage=stage,
                method=manifest.method if manifest else "unknown",
                parent=parent.rstrip("/").rsplit("/", 1)[-1] if parent else "–",
                finetune=manifest.finetune if manifest and manifest.method != "bootstrap" else "–",
                data=data,
                steps=str(training.steps) if training else "–",
                final_loss=fmt(training.final_loss if training else None),
                train_seconds=f"{training.wall_seconds:.0f}" if training else "–",
            )
        )
    return rows


def chat_template(analysis: Analysis, task: str) -> str:
    """Whether the task's prompts were rendered with the chat template: ``chat template``, ``no chat template``,
    or ``chat template differs by variant``."""
    settings = {r.request.chat_template for (t, _), rs in analysis.records.items() if t == task for r in rs}
    if len(settings) > 1:
        return "chat template differs by variant"
    return "chat template" if settings == {True} else "no chat template"


class RepeatRow(NamedTuple):
    """One metric of a variant evaluated several times: mean ± sd and each repeat's value."""

    variant: str
    task: str
    metric: str
    mean_sd: str
    values: str


def repeat_rows(analysis: Analysis) -> list[RepeatRow]:
    """Every metric of every variant evaluated with repeats, in stage order."""
    rows = []
    for (task, metric, variant), cell in sorted(
        analysis.cells.items(), key=lambda kv: (kv[0][0], variant_order(kv[0][2]), kv[0][1])
    ):
        if cell.repeats > 1:
            each = ", ".join(fmt(v) for v in cell.repeat_values)
            rows.append(RepeatRow(variant.label, task, metric, f"{fmt(cell.value)} ± {fmt(cell.repeat_sd)}", each))
    return rows
