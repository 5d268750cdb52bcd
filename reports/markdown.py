"""The markdown report: fits a pull-request comment or a CI job summary."""

from __future__ import annotations

import html

from reports.analysis import Analysis
from reports.rows import delta_rows, glance, matrix, precisions, quantization_rows, stage_rows
from tasks.registry import get_task

METHOD = (
    "Intervals are 95% percentile bootstrap intervals over samples. Deltas are variant minus baseline on the "
    "items both share (matched by doc id and doc hash), with a paired 95% bootstrap interval and a paired test: "
    "McNemar's exact test for 0/1 metrics, a paired permutation test otherwise. ✱ marks p < 0.05."
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = [[_inline(cell).replace("|", "\\|") for cell in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in clean)]


def _inline(text: str) -> str:
    """A value safe inside one markdown line: no line breaks, no raw HTML."""
    return html.escape(" ".join(str(text).split()), quote=False)


def _glance(analysis: Analysis) -> list[str]:
    lines = ["## At a glance", ""]
    changes = glance(analysis)
    compared = sum(1 for d in analysis.deltas if d.comparison is not None)
    if changes:
        rows = [[r.verdict, r.variant, f"{r.task}: {r.metric}", r.delta, r.interval, r.p_value] for r in changes]
        lines += _table(["", "variant", "metric", "Δ", "95% CI of Δ", "p"], rows)
        lines += ["", f"{len(changes)} of {compared} paired comparisons differ significantly (p < 0.05).", ""]
    else:
        lines += [f"No significant difference from the baseline in {compared} paired comparisons (p < 0.05).", ""]
    return lines


def _overview(analysis: Analysis) -> list[str]:
    lines = ["## Overview", ""]
    for task in analysis.tasks:
        info = get_task(task)
        lines += [f"### {task}: {info.headline} ({info.metrics[info.headline].scale})", ""]
        rows = [[f"{r.checkpoint} ({r.stage})", *r.cells] for r in matrix(analysis, task)]
        lines += [*_table(["checkpoint (stage)", *precisions(analysis)], rows), ""]
    lines += ["## Stages", ""]
    header = ["checkpoint", "stage", "method", "parent", "finetune", "data (rows)", "steps", "final loss", "train s"]
    return [*lines, *_table(header, [list(r) for r in stage_rows(analysis)]), ""]


def _deltas(analysis: Analysis) -> list[str]:
    lines = [f"## Deltas against {analysis.baseline.label}", ""]
    header = ["variant", "metric", "baseline", "variant value", "Δ", "95% CI of Δ", "p", "test", "n", "note"]
    for task in analysis.tasks:
        rows = [
            [r.variant, r.metric, r.baseline, r.value, r.delta + (" ✱" if r.significant else ""), r.interval, *r[6:]]
            for r in delta_rows(analysis, task)
        ]
        if rows:
            lines += [f"### {task}", "", *_table(header, rows), ""]
    return lines


def _quantization(analysis: Analysis) -> list[str]:
    header = ["checkpoint", "precision", "task (headline)", "value", "Δ vs widest precision", "footprint MiB"]
    header += ["peak MiB", "tokens/s"]
    rows = [list(r) for r in quantization_rows(analysis)]
    return ["## Quantization: cost against quality", "", *_table(header, rows)]


def _provenance(analysis: Analysis) -> list[str]:
    lines = ["", "## Provenance", ""]
    for run in analysis.runs:
        prov = run.provenance
        versions = ", ".join(f"{k} {v}" for k, v in prov.versions.items())
        where = f"{prov.device} ({prov.device_name})"
        lines.append(
            f"- run `{_inline(run.name)}`: {where}, seed {run.seed}, commit {prov.git_commit or 'unknown'}; {versions}"
        )
    for variant in analysis.variants:
        record = next(r for (t, v), rs in analysis.records.items() if v == variant for r in rs)
        manifest = record.variant.manifest or {}
        lineage = f"method {manifest.get('method', 'unknown')}, parent {manifest.get('parent') or '–'}"
        lines.append(
            f"- {_inline(variant.label)}: {record.variant.kind} checkpoint `{_inline(record.variant.checkpoint)}`, "
            f"{_inline(lineage)}"
        )
    return lines + [f"- note: {_inline(note)}" for note in analysis.notes]


def render_markdown(analysis: Analysis) -> str:
    """The whole report as markdown."""
    lines = ["# ftbench comparison report", "", f"Baseline: **{_inline(analysis.baseline.label)}**. {METHOD}", ""]
    lines += _glance(analysis) + _overview(analysis) + _deltas(analysis) + _quantization(analysis)
    return "\n".join(lines + _provenance(analysis)) + "\n"
