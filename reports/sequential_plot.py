"""A sequential gate's path as a plot: each gated metric's confidence sequence (the interval of the paired
difference against the items evaluated), the margin it was judged against, and where it stopped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt

from ftbench.reports.plots import _svg, _tidy


def sequential_plot(metric: Mapping[str, Any]) -> str:
    """One gated metric's confidence sequence (from a sequential gate's ``sequential.json``) as inline SVG."""
    path = metric["path"]
    lower, upper, estimate = path["lower"], path["upper"], path["estimate"]
    items = list(range(1, len(lower) + 1))
    figure, axes = plt.subplots(figsize=(5.2, 3.0))
    axes.fill_between(items, lower, upper, alpha=0.25, step=None, label="confidence sequence")
    axes.plot(items, estimate, linewidth=1, label="mean difference")
    margin = float(metric["margin"])
    axes.axhline(-margin, color="tab:red", linewidth=1, linestyle="--", label=f"−margin ({margin:.3g})")
    if metric["mode"] == "equivalence":
        axes.axhline(margin, color="tab:red", linewidth=1, linestyle="--")
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.axvline(int(metric["items"]), color="black", linewidth=0.8, linestyle=":", label=f"{metric['verdict']}")
    bound = float(metric["bound"])
    axes.set_ylim(max(-bound, min(lower) - 0.05 * bound), min(bound, max(upper) + 0.05 * bound))
    axes.set_xlabel(f"items evaluated (budget {metric['budget']})")
    axes.set_ylabel(f"Δ {metric['metric']} (candidate − baseline)")
    axes.set_title(f"{metric['task']} {metric['metric']}@{metric['precision']}: sequential gate", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _tidy(_svg(figure))
