"""A sequential gate's confidence sequence on an evaluation's page: the gate's ``sequential.json`` beside the
evaluation's run folder, drawn as the interval of the paired difference against the items evaluated, with the
margin it was judged against and where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftbench.harness.viewer.html_parts import esc, number

SEQUENTIAL_FILE = "sequential.json"


def gated_paths(run_folder: str | None, task: str, precision: str) -> list[dict[str, Any]]:
    """The gated metrics of ``task`` at ``precision`` in the sequential gate written into ``run_folder`` (none
    where it holds no readable ``sequential.json``)."""
    if run_folder is None:
        return []
    try:
        data = json.loads((Path(run_folder) / SEQUENTIAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    metrics = data.get("metrics") if isinstance(data, dict) else None
    return [
        m for m in metrics or [] if isinstance(m, dict) and m.get("task") == task and m.get("precision") == precision
    ]


def sequence_svg(metric: dict[str, Any]) -> str:
    """The confidence sequence of one gated metric as an SVG (lower and upper bounds, mean, −margin, the stop)."""
    path = metric["path"]
    lower, upper, estimate = path["lower"], path["upper"], path["estimate"]
    width, height, pad = 520, 240, 40
    margin, count = float(metric["margin"]), max(1, len(lower))
    low = min([*lower, -margin]) if lower else -margin
    high = max([*upper, 0.0]) if upper else 0.0
    span = (high - low) or 1.0

    def y(value: float) -> float:
        return height - pad - (value - low) / span * (height - 2 * pad)

    def x(item: float) -> float:
        return pad + (item - 1) * (width - 2 * pad) / max(1, count - 1)

    def line(values: list[float], colour: str) -> str:
        points = " ".join(f"{x(i + 1):.1f},{y(v):.1f}" for i, v in enumerate(values))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'

    stop = x(float(metric["items"]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        line(lower, "#4393c3"), line(upper, "#4393c3"), line(estimate, "#1d2330"),
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(-margin):.1f}" y2="{y(-margin):.1f}" stroke="#b3261e" '
        'stroke-dasharray="4 3"/>',
        f'<line x1="{stop:.1f}" x2="{stop:.1f}" y1="{pad}" y2="{height - pad}" stroke="#6b7280" '
        'stroke-dasharray="2 2"/>',
        f'<text x="{pad}" y="14" font-size="11">{esc(metric["metric"])}: {esc(metric["verdict"])} after '
        f'{esc(metric["items"])} of {esc(metric["budget"])} items; −margin {number(margin)}</text>',
    ]  # fmt: skip
    parts += [f'<text x="2" y="{y(v) + 4:.1f}" font-size="10">{number(v)}</text>' for v in (low, high)]
    return "".join(parts) + "</svg>"
