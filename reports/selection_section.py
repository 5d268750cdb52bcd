"""The report of a training run (or a pipeline's stages) opens with the selection: which checkpoint to ship, its
gain with the winner's curse taken out, the could-be-best set, and the tasks that cannot rank the checkpoints
(``compare.run_choice``, as ``ftbench select`` answers)."""

from __future__ import annotations

from markupsafe import Markup

from ftbench.harness.compare.run_choice import RunSelection, select_run
from ftbench.harness.core.errors import FtbenchError
from ftbench.reports.analysis import Analysis
from ftbench.reports.selection_plot import selection_plot
from ftbench.reports.selection_text import (
    CHOICE_HEADER,
    SIGNAL_HEADER,
    choice_row,
    selection_markdown,
    signal_row,
    signal_sentence,
)
from ftbench.tasks.registry import recorded_task

MIN_CHECKPOINTS = 3
"""A selection needs the baseline and two other checkpoints."""


def report_selection(analysis: Analysis) -> RunSelection | str | None:
    """The run's selection, why there is none (a sentence), or None where the results hold too few checkpoints."""
    records = [record for found in analysis.records.values() for record in found]
    if len({record.variant.name for record in records}) < MIN_CHECKPOINTS:
        return None
    steps = {step.name: step.step for curve in analysis.training for step in curve.steps}
    try:
        return select_run(records, steps, recorded_task, run_baseline=analysis.baseline.checkpoint)
    except FtbenchError as exc:
        return f"No checkpoint is selected: {exc}."


def selection_section_markdown(analysis: Analysis) -> list[str]:
    """The opening section of ``report.md`` (nothing for results of fewer than three checkpoints)."""
    found = report_selection(analysis)
    if found is None:
        return []
    if isinstance(found, str):
        return ["## Which checkpoint to ship", "", found, ""]
    return [selection_markdown(found.choices, found.signals, found.precision), ""]


def _table(header: list[str], rows: list[list[str]]) -> Markup:
    head = Markup("").join(Markup("<th>{}</th>").format(cell) for cell in header)
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(cell) for cell in row))
        for row in rows
    )
    return Markup("<table><tr>{}</tr>{}</table>").format(head, body)


def selection_section_html(analysis: Analysis) -> Markup:
    """The opening section of ``report.html``: the same tables, each task's plot, and the tasks that cannot rank."""
    found = report_selection(analysis)
    if found is None:
        return Markup("")
    if isinstance(found, str):
        return Markup('<h2 id="select">Which checkpoint to ship</h2><p>{}</p>').format(found)
    plots = Markup("").join(
        Markup("<figure>{}</figure>").format(Markup(selection_plot(choice))) for choice in found.choices
    )
    weak = Markup("").join(
        Markup("<li>{}</li>").format(signal_sentence(s)) for s in found.signals if s.signal.cannot_rank
    )
    alpha = found.choices[0].selection.alpha if found.choices else 0.05
    lede = (
        f"Against {found.baseline} at {found.precision}. The best checkpoint's gain is biased upward (the winner's "
        f"curse): the adjusted interval holds its true gain with probability ≥ {1 - alpha:.0%}, the shrunk gain takes "
        f"the curse out of the estimate, and the could-be-best set holds the true best with probability ≥ "
        f"{1 - alpha:.0%}."
    )
    return (
        Markup('<h2 id="select">Which checkpoint to ship</h2><p class="lede">{}</p>').format(lede)
        + _table(CHOICE_HEADER, [choice_row(choice) for choice in found.choices])
        + Markup('<div class="plots">{}</div>').format(plots)
        + _table(SIGNAL_HEADER, [signal_row(signal) for signal in found.signals])
        + (Markup("<ul>{}</ul>").format(weak) if weak else Markup(""))
    )
