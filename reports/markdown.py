"""The markdown report: fits a pull-request comment or a CI job summary."""

from __future__ import annotations

from reports.analysis import Analysis
from reports.rows import delta_rows, glance, matrix, precisions, quantization_rows, stage_rows
from tasks.registry import get_task

METHOD = (
    "Intervals are 95% percentile bootstrap intervals over samples. Deltas are variant minus baseline on the "
    "items both share (matched by doc id and doc hash), with a paired 95% bootstrap interval and a paired test: "
    "McNemar's exact test for 0/1 metrics, a paired permutation test otherwise. ✱ marks p < 0.05."
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = [[cell.replace("|", "\\|").replace("\n", " ") for cell in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in clean)]


def render_markdown(analysis: Analysis) -> str:
    """The whole report as markdown."""
    lines = ["# ftbench comparison report", "", f"Baseline: **{analysis.baseline.label}**. {METHOD}", ""]
    lines += ["## At a glance", ""]
    changes = glance(analysis)
    compared = sum(1 for d in analysis.deltas if d.comparison is not None)
    if changes:
        rows = [[r.verdict, r.variant, f"{r.task}: {r.metric}", r.delta, r.interval, r.p_value] for r in changes]
        lines += _table(["", "variant", "metric", "Δ", "95% CI of Δ", "p"], rows)
        lines += ["", f"{len(changes)} of {compared} paired comparisons differ significantly (p < 0.05).", ""]
    else:
        lines += [f"No significant difference from the baseline in {compared} paired comparisons (p < 0.05).", ""]
    lines += ["## Overview", ""]
    for task in analysis.tasks:
        info = get_task(task)
        lines += [f"### {task}: {info.headline} ({info.metrics[info.headline].scale})", ""]
        rows = [[f"{r.checkpoint} ({r.stage})", *r.cells] for r in matrix(analysis, task)]
        lines += [*_table(["checkpoint (stage)", *precisions(analysis)], rows), ""]
    lines += ["## Stages", ""]
    rows = [list(r) for r in stage_rows(analysis)]
    header = ["checkpoint", "stage", "method", "parent", "finetune", "data (rows)", "steps", "final loss", "train s"]
    lines += [*_table(header, rows), ""]
    lines += [f"## Deltas against {analysis.baseline.label}", ""]
    for task in analysis.tasks:
        rows = [
            [
                r.variant,
                r.metric,
                r.baseline,
                r.value,
                r.delta + (" ✱" if r.significant else ""),
                r.interval,
                r.p_value,
                r.test,
                r.n,
                r.note,
            ]
            for r in delta_rows(analysis, task)
        ]
        if rows:
            lines += [f"### {task}", ""]
            lines += _table(
                ["variant", "metric", "baseline", "variant value", "Δ", "95% CI of Δ", "p", "test", "n", "note"], rows
            )
            lines += [""]
    lines += ["## Quantization: cost against quality", ""]
    rows = [list(r) for r in quantization_rows(analysis)]
    lines += _table(
        [
            "checkpoint",
            "precision",
            "task (headline)",
            "value",
            "Δ vs widest precision",
            "footprint MiB",
            "peak MiB",
            "tokens/s",
        ],
        rows,
    )
    lines += ["", "## Provenance", ""]
    for run in analysis.runs:
        prov = run.provenance
        versions = ", ".join(f"{k} {v}" for k, v in prov.versions.items())
        commit = prov.git_commit or "unknown"
        where = f"{prov.device} ({prov.device_name})"
        lines.append(f"- run `{run.name}`: {where}, seed {run.seed}, commit {commit}; {versions}")
    for variant in analysis.variants:
        record = next(r for (t, v), rs in analysis.records.items() if v == variant for r in rs)
        manifest = record.variant.manifest or {}
        lineage = f"method {manifest.get('method', 'unknown')}, parent {manifest.get('parent') or '–'}"
        lines.append(f"- {variant.label}: {record.variant.kind} checkpoint `{record.variant.checkpoint}`, {lineage}")
    lines += [f"- note: {note}" for note in analysis.notes]
    return "\n".join(lines) + "\n"
