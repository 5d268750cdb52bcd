"""The HTML report: one self-contained file (inline CSS, SVG and script), every string escaped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from ftbench.harness.core.checkpoints import Manifest
from ftbench.reports.analysis import Analysis
from ftbench.reports.curves import CURVES_LEDE, curves_html
from ftbench.reports.glance import baseline_changes, family_rows, glance_families, lineage, significance_counts
from ftbench.reports.leak_section import leakage_html
from ftbench.reports.markdown import METHOD
from ftbench.reports.matrix import colour_legend, grid_view, legend, report_grids
from ftbench.reports.numbers import fmt
from ftbench.reports.plots import footprint_plot, stage_plot
from ftbench.reports.rows import (
    chat_template,
    delta_rows,
    matrix,
    precisions,
    quantization_rows,
    repeat_rows,
    stage_rows,
)
from ftbench.reports.selection_section import selection_section_html
from ftbench.reports.sequential_section import sequential_html

TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))


def _task_context(analysis: Analysis, task: str) -> dict[str, object]:
    info = analysis.tasks[task]
    deltas = []
    for row in delta_rows(analysis, task):
        better = info.metrics[row.metric].higher_is_better
        sign = row.delta.startswith("+") if row.delta != "–" else None
        direction = "" if sign is None or not row.significant else ("up" if sign == better else "down")
        deltas.append({**row._asdict(), "direction": direction})
    moved = [
        {
            "variant": pair.label,
            "samples": [
                {
                    **sample.__dict__,
                    "baseline_score": fmt(sample.baseline_score),
                    "variant_score": fmt(sample.variant_score),
                }
                for sample in samples
            ],
        }
        for (t, pair), samples in analysis.moved.items()
        if t == task and samples
    ]
    return {
        "name": task,
        "headline": info.headline,
        "scale": info.metrics[info.headline].scale,
        "chat_template": chat_template(analysis, task),
        "matrix": matrix(analysis, task),
        "lineage": [step for step in lineage(analysis) if step.task == task],
        "deltas": deltas,
        "moved": moved,
        # Plots are SVG that matplotlib wrote from our numbers; labels inside them are drawn as paths.
        "stage_plot": Markup(stage_plot(analysis, task, info.headline)),
        "footprint_plot": Markup(footprint_plot(analysis, task, info.headline)),
    }


def render_html(analysis: Analysis) -> str:
    """The whole report as one HTML page."""
    provenance = [
        f"run {run.name}: {run.provenance.device} ({run.provenance.device_name}), seed {run.seed}, commit "
        f"{run.provenance.git_commit or 'unknown'}; "
        + ", ".join(f"{k} {v}" for k, v in run.provenance.versions.items())
        for run in analysis.runs
    ]
    manifests = []
    for variant in analysis.variants:
        record = next(r for (_, v), rs in analysis.records.items() if v == variant for r in rs)
        details: dict[str, Any] = {"checkpoint": record.variant.checkpoint, "kind": record.variant.kind}
        details |= {"notes": record.variant.notes}
        details["manifest"] = _manifest_data(record.variant.manifest)
        manifests.append({"label": variant.label, "text": json.dumps(details, indent=1)})
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            baseline=analysis.baseline.label,
            method=METHOD,
            grids=[grid_view(grid) for grid in report_grids(analysis)],
            legend=legend(),
            colour_key=colour_legend(),
            precisions=precisions(analysis),
            tasks=[_task_context(analysis, task) for task in analysis.tasks],
            quantization=quantization_rows(analysis),
            repeats=repeat_rows(analysis),
            stages=stage_rows(analysis),
            families=[
                {"title": title, "rows": family_rows(analysis, family)} for family, title in glance_families(analysis)
            ],
            changes=None if analysis.baseline_chosen else baseline_changes(analysis),
            counts=significance_counts(analysis),
            provenance=provenance,
            notes=analysis.notes,
            manifests=manifests,
            curves=curves_html(analysis),
            curves_lede=CURVES_LEDE,
            leakage=leakage_html(analysis),
            selection=selection_section_html(analysis),
            sequential=sequential_html(analysis),
        )
    )


def _manifest_data(manifest: Manifest | None) -> dict[str, Any] | None:
    return manifest.model_dump(mode="json") if manifest is not None else None
