"""Inline SVG plots (matplotlib, no network): metric by stage per precision, and quality against footprint."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt

from ftbench.reports.analysis import Analysis
from ftbench.reports.variants import variant_order

plt.rcParams["svg.hashsalt"] = "ftbench"  # stable ids, so the same results give the same page


def _svg(figure: plt.Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _tidy(svg: str) -> str:
    """Drop the width/height attributes, so the SVG scales with its container, and the RDF metadata block."""
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, count=1, flags=re.DOTALL)
    return re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r"\1", svg, count=1)


def stage_plot(analysis: Analysis, task: str, metric: str) -> str:
    """The metric by checkpoint (in stage order), one line per precision, with 95% interval bars."""
    checkpoints = list(dict.fromkeys(v.checkpoint for v in sorted(analysis.variants, key=variant_order)))
    figure, axes = plt.subplots(figsize=(5.2, 3.0))
    precisions = list(dict.fromkeys(v.precision for v in sorted(analysis.variants, key=variant_order)))
    for offset, precision in enumerate(precisions):
        dodge = (offset - (len(precisions) - 1) / 2) * 0.08  # side by side, so intervals do not hide each other
        xs, ys, lows, highs = [], [], [], []
        for x, checkpoint in enumerate(checkpoints):
            cell = next(
                (
                    c
                    for (t, m, v), c in analysis.cells.items()
                    if (t, m, v.checkpoint, v.precision) == (task, metric, checkpoint, precision)
                ),
                None,
            )
            if cell is None:
                continue
            xs.append(x + dodge)
            ys.append(cell.value)
            low, high = cell.interval if cell.interval else (cell.value, cell.value)
            lows.append(max(0.0, cell.value - low))  # a stored value outside its samples' interval draws no bar
            highs.append(max(0.0, high - cell.value))
        if xs:
            axes.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, label=precision)
    axes.set_xticks(range(len(checkpoints)), checkpoints)
    axes.set_ylabel(metric)
    axes.set_title(f"{task}: {metric} by stage (95% intervals)", fontsize=10)
    axes.legend(fontsize=8, title="precision", title_fontsize=8)
    axes.grid(alpha=0.3)
    return _tidy(_svg(figure))


def footprint_plot(analysis: Analysis, task: str, metric: str) -> str:
    """Quality against model footprint: one point per variant."""
    figure, axes = plt.subplots(figsize=(5.2, 3.0))
    for (t, m, variant), cell in analysis.cells.items():
        if (t, m) != (task, metric):
            continue
        record = analysis.records[(task, variant)][0]
        size = record.variant.footprint_bytes / 2**20
        axes.scatter([size], [cell.value])
        axes.annotate(variant.label, (size, cell.value), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xlabel("model footprint (MiB)")
    axes.set_ylabel(metric)
    axes.set_title(f"{task}: {metric} against footprint", fontsize=10)
    axes.grid(alpha=0.3)
    return _tidy(_svg(figure))
