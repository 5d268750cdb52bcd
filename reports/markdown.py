"""The markdown report: fits a pull-request comment or a CI job summary."""

from __future__ import annotations

from ftbench.reports.analysis import Analysis
from ftbench.reports.curves import curves_markdown
from ftbench.reports.glance import GlanceRow, baseline_changes, family_rows, glance_families, significance_counts
from ftbench.reports.leak_section import leakage_markdown
from ftbench.reports.matrix import grid_markdown, legend, report_grids
from ftbench.reports.mdtext import code, table
from ftbench.reports.mdtext import inline as _inline
from ftbench.reports.rows import (
    chat_template,
    delta_rows,
    matrix,
    precisions,
    quantization_rows,
    repeat_rows,
    stage_rows,
)
from ftbench.reports.selection_section import selection_section_markdown
from ftbench.reports.sequential_section import sequential_markdown

METHOD = (
    "Intervals are 95%: exact (Clopper-Pearson) for 0/1 metrics, Student t for other means, jackknife t for "
    "corpus metrics. Deltas are variant minus reference on the items both share (matched by doc id and doc "
    "hash), with a paired 95% interval (exact bounds from the flips for 0/1 metrics, paired t or jackknife t "
    "otherwise) and a paired test: McNemar's exact test for 0/1 metrics, a paired permutation test otherwise. "
    "✱ marks p < 0.05. Flips count the items that went wrong → right (+) and right → wrong (−). Agreement is the "
    "mean KL divergence of the choice distributions (multiple choice) or of the top-8 next-token distributions of "
    "the first 256 tokens (perplexity; a lower bound), with how often the top choice agrees; for generated "
    "answers, the share that changed. A small KL with many flips means the flipped items were near-ties. "
    "'Detects ≥' is the smallest change the paired test finds with 80% power at p < 0.05 at this number of items "
    "(exact for McNemar's test; for the permutation test, for normal differences of the observed spread); "
    "'cannot decide at n items' means no change at all could be significant with so few."
)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table, each cell on one line with its pipes escaped and no raw HTML."""
    return table(header, rows)


GLANCE_HEADER = ["comparison", "task", "metric", "Δ", "95% CI of Δ", "p", "flips", "agreement", "detects ≥"]


def _glance_table(rows: list[GlanceRow]) -> list[str]:
    mark = {"better": " ▲", "worse": " ▼", "same": ""}
    cells = [
        [
            r.comparison,
            r.task,
            r.metric,
            r.delta + mark[r.verdict],
            r.interval,
            r.p_value,
            r.flips,
            r.agreement,
            r.detects,
        ]
        for r in rows
    ]
    return [*markdown_table(GLANCE_HEADER, cells), ""]


def _glance(analysis: Analysis) -> list[str]:
    lines = ["## At a glance", ""]
    for grid in report_grids(analysis):
        lines += grid_markdown(grid)
    lines += [legend(), "", METHOD, ""]
    for family, title in glance_families(analysis):
        rows = family_rows(analysis, family)
        if rows:
            lines += [f"### {_inline(title)}", "", *_glance_table(rows)]
    compared, significant = significance_counts(analysis)
    if not analysis.baseline_chosen:
        changes = baseline_changes(analysis)
        lines += [f"### Other significant changes against {_inline(analysis.baseline.label)}", ""]
        lines += _glance_table(changes) if changes else ["None beyond those above.", ""]
    lines += [f"{significant} of {compared} paired comparisons differ significantly (p < 0.05; ▲ better, ▼ worse).", ""]
    return lines


def _repeats(analysis: Analysis) -> list[str]:
    rows = repeat_rows(analysis)
    if not rows:
        return []
    lines = [
        "## Repeated evaluations",
        "",
        "Each variant evaluated several times with derived seeds: mean ± sd over "
        "the repeats, then each repeat's value. Paired comparisons average each item over its repeats.",
        "",
    ]
    table = [[r.variant, r.task, r.metric, r.mean_sd, r.values] for r in rows]
    return [*lines, *markdown_table(["variant", "task", "metric", "mean ± sd", "each repeat"], table), ""]


def _overview(analysis: Analysis) -> list[str]:
    lines = ["## Overview", ""]
    for task in analysis.tasks:
        info = analysis.tasks[task]
        lines += [
            "### "
            + _inline(
                f"{task}: {info.headline} ({info.metrics[info.headline].scale}; {chat_template(analysis, task)})"
            ),
            "",
        ]
        rows = [[f"{r.checkpoint} ({r.stage})", *r.cells] for r in matrix(analysis, task)]
        lines += [*markdown_table(["checkpoint (stage)", *precisions(analysis)], rows), ""]
    lines += ["## Stages", ""]
    header = ["checkpoint", "stage", "method", "parent", "finetune", "data (rows)", "steps", "final loss", "train s"]
    return [*lines, *markdown_table(header, [list(r) for r in stage_rows(analysis)]), ""]


def _starred(delta: str, significant: bool) -> str:
    return delta + (" ✱" if significant else "")


def _deltas(analysis: Analysis) -> list[str]:
    lines = [f"## Deltas against {_inline(analysis.baseline.label)}", ""]
    header = ["variant", "metric", "baseline", "variant value", "Δ", "95% CI of Δ", "p", "test", "n", "note"]
    for task in analysis.tasks:
        rows = [
            [r.variant, r.metric, r.baseline, r.value, _starred(r.delta, r.significant), r.interval, *r[6:9], r.note]
            for r in delta_rows(analysis, task)
        ]
        if rows:
            lines += [f"### {_inline(task)}", "", *markdown_table(header, rows), ""]
    return lines


def _quantization(analysis: Analysis) -> list[str]:
    header = ["checkpoint", "precision", "task (headline)", "value", "Δ vs widest precision", "flips", "agreement"]
    header += ["footprint MiB", "peak MiB", "tokens/s", "engine"]
    rows = [list(r) for r in quantization_rows(analysis)]
    return ["## Quantization: cost against quality", "", *markdown_table(header, rows)]


def _provenance(analysis: Analysis) -> list[str]:
    lines = ["", "## Provenance", ""]
    for run in analysis.runs:
        prov = run.provenance
        versions = ", ".join(f"{k} {v}" for k, v in prov.versions.items())
        where = f"{prov.device} ({prov.device_name})"
        lines.append(
            f"- run {code(run.name)}: "
            + _inline(f"{where}, seed {run.seed}, commit {prov.git_commit or 'unknown'}; {versions}")
        )
    for variant in analysis.variants:
        record = next(r for (t, v), rs in analysis.records.items() if v == variant for r in rs)
        manifest = record.variant.manifest
        lineage = f"method {manifest.method if manifest else 'unknown'}, parent {(manifest and manifest.parent) or '–'}"
        lines.append(
            f"- {_inline(variant.label)}: {_inline(record.variant.kind)} checkpoint {code(record.variant.checkpoint)}, "
            f"{_inline(lineage)}"
        )
    return lines + [f"- note: {_inline(note)}" for note in analysis.notes]


def render_markdown(analysis: Analysis) -> str:
    """The whole report as markdown."""
    lines = ["# ftbench comparison report", "", f"Baseline: **{_inline(analysis.baseline.label)}**.", ""]
    lines += selection_section_markdown(analysis)  # a training run's report opens with the checkpoint to ship
    lines += _glance(analysis) + _repeats(analysis) + _overview(analysis) + leakage_markdown(analysis)
    lines += _deltas(analysis) + _quantization(analysis)
    lines += curves_markdown(analysis) + sequential_markdown(analysis)
    return "\n".join(lines + _provenance(analysis)) + "\n"
