"""The report's Sequential gate section: for every gated metric of a sequential gate whose candidate is among the
results, its verdict, the items it took against its budget, the confidence sequence at the stop, and (HTML) the
sequence's path as a plot."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from ftbench.reports.analysis import Analysis
from ftbench.reports.mdtext import inline, table
from ftbench.reports.sequential_plot import sequential_plot

TITLE = "Sequential gate"
LEDE = (
    "Each gated metric's paired difference (candidate − baseline, better positive) with its anytime-valid confidence "
    "sequence after every item evaluated: a regression once it lies wholly below −margin, a pass once wholly above it."
)
HEADER = ["candidate", "task", "metric", "precision", "verdict", "items / budget", "Δ", "sequence at stop", "margin"]


def _row(metric: dict[str, Any]) -> list[str]:
    low, high = metric["interval"]
    return [
        str(metric["candidate"]),
        str(metric["task"]),
        str(metric["metric"]),
        str(metric["precision"]),
        str(metric["verdict"]),
        f"{metric['items']} / {metric['budget']}",
        f"{float(metric['estimate']):+.4g}",
        f"[{float(low):.4g}, {float(high):.4g}]",
        f"{float(metric['margin']):.4g}",
    ]


def sequential_markdown(analysis: Analysis) -> list[str]:
    """The section in ``report.md`` (nothing without a sequential gate among the results)."""
    if not analysis.sequential:
        return []
    return [f"## {TITLE}", "", LEDE, "", *table(HEADER, [_row(m) for m in analysis.sequential], inline), ""]


def sequential_html(analysis: Analysis) -> Markup:
    """The section in ``report.html``, with each metric's path."""
    if not analysis.sequential:
        return Markup("")
    head = Markup("").join(Markup("<th>{}</th>").format(cell) for cell in HEADER)
    rows = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(cell) for cell in _row(metric)))
        for metric in analysis.sequential
    )
    plots = Markup("").join(
        Markup("<figure>{}</figure>").format(Markup(sequential_plot(metric))) for metric in analysis.sequential
    )
    return Markup(
        '<h2 id="sequential">{}</h2><p class="lede">{}</p><table><tr>{}</tr>{}</table><div class="plots">{}</div>'
    ).format(TITLE, LEDE, head, rows, plots)
