"""The selection as a plot: each checkpoint's mean against its training step (or place in the lineage), the
selection-adjusted interval of each gain drawn around it, the baseline as a line, the selected checkpoint and the
could-be-best set marked."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ftbench.harness.compare.choice import CheckpointChoice
from ftbench.reports.plots import _svg, _tidy


def selection_plot(choice: CheckpointChoice) -> str:
    """One task's selection as inline SVG."""
    s = choice.selection
    steps = [step if step is not None else index for index, step in enumerate(choice.steps)]
    figure, axes = plt.subplots(figsize=(5.6, 3.2))
    lows = [s.baseline + interval.low for interval in s.adjusted_intervals]
    highs = [s.baseline + interval.high for interval in s.adjusted_intervals]
    axes.vlines(steps, lows, highs, color="tab:blue", alpha=0.35, linewidth=3, label="adjusted interval")
    axes.plot(steps, s.means, marker="o", color="tab:blue", linewidth=1, label=choice.metric)
    best = set(s.could_be_best)
    axes.scatter([steps[i] for i in best], [s.means[i] for i in best], s=90, facecolors="none",
                 edgecolors="tab:green", linewidths=1.5, label="could be best", zorder=3)  # fmt: skip
    axes.scatter([steps[s.selected]], [s.means[s.selected]], marker="*", s=220, color="tab:orange", zorder=4,
                 label=f"selected: {choice.selected}")  # fmt: skip
    axes.axhline(s.baseline, color="grey", linestyle="--", linewidth=1, label=f"baseline ({choice.baseline})")
    axes.set_xlabel("training step" if all(step is not None for step in choice.steps) else "checkpoint")
    axes.set_ylabel(choice.metric)
    axes.set_title(f"{choice.task}: which checkpoint to ship", fontsize=10)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _tidy(_svg(figure))
