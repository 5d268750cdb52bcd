"""``ftbench select``: which checkpoint of a training run to ship, with the winner's curse taken out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ftbench.harness.app.cli_common import guarded
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import write_atomic

select_app = typer.Typer()


@select_app.command("select")
@guarded
def select(
    results: Annotated[
        list[Path], typer.Argument(help="Results directories of the run (the callback's, watch's, a pipeline's).")
    ],
    task: Annotated[str | None, typer.Option(help="Only this task (default: every task).")] = None,
    metric: Annotated[str | None, typer.Option(help="Select on this metric (default: the headline).")] = None,
    weights: Annotated[
        str | None, typer.Option(help="Select on several metrics, weighted per item: acc_norm=1,choice_logprob=0.5.")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="The checkpoint gains are measured from (default: the run's).")
    ] = None,
    precision: Annotated[str | None, typer.Option(help="At this precision (default: the widest evaluated).")] = None,
    alpha: Annotated[float, typer.Option(help="One minus the intervals' and the could-be-best set's coverage.")] = 0.05,
    format: Annotated[str, typer.Option("--format", help="md or json.")] = "md",
    plot: Annotated[Path | None, typer.Option(help="Write each task's plot here (an SVG file; TASK appended).")] = None,
) -> None:
    """The best checkpoint of a training run on each task, its gain over the baseline with an interval that accounts
    for having picked it, the chance it is truly the best, the checkpoints that could be the best, and each metric's
    signal-to-noise (which tasks cannot rank the checkpoints at all)."""
    if format not in ("md", "json"):
        raise FtbenchError(f"unknown format {format!r}; use md or json")
    if metric is not None and weights is not None:
        raise FtbenchError("give --metric or --weights, not both")
    if not 0 < alpha < 1:
        raise FtbenchError(f"--alpha {alpha} must be a level between 0 and 1, such as 0.05")
    from ftbench.harness.app.select import parse_weights, select_from_results
    from ftbench.reports.selection_text import selection_data, selection_markdown

    wanted = parse_weights(weights) if weights else ({metric: 1.0} if metric else None)
    found = select_from_results(results, task, wanted, baseline, precision, alpha)
    if plot is not None:
        from ftbench.reports.selection_plot import selection_plot

        for choice in found.choices:
            target = plot.with_name(f"{plot.stem}-{choice.task}{plot.suffix or '.svg'}")
            write_atomic(target, selection_plot(choice))
    if format == "json":
        sys.stdout.write(selection_data(found.choices, found.signals, found.precision) + "\n")
    else:
        sys.stdout.write(selection_markdown(found.choices, found.signals, found.precision, terminal=True))
