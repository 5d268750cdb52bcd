"""``ftbench rescore``: score a run's stored responses again with the tasks' current scoring, without the model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbench.harness.app.cli_common import VerboseOption, guarded, split_flag
from ftbench.harness.core.names import terminal_text
from ftbench.harness.core.store import load_run

if TYPE_CHECKING:
    from ftbench.harness.evaluation.rescore import Rescored

rescore_app = typer.Typer()


def rescore_line(item: Rescored) -> str:
    """``countdown (initial@fp32): re-scored from KEY as KEY; accuracy 0.1 -> 0.15``: what happened to one
    evaluation, with its headline value before and after."""
    from ftbench.tasks.registry import recorded_task

    source, record = item.source, item.record
    where = f"{source.task} ({source.variant.name}@{source.variant.precision})"
    if not item.selected:
        return f"{where}: not selected, copied as it is"
    if record is source:
        return f"{where}: already current (its task did not change), copied as it is"
    headline = recorded_task(record.request).headline
    before = source.metrics.get(headline)
    after = record.metrics.get(headline)
    change = f"{before.value:.4g} -> " if before is not None else ""
    value = f"; {headline} {change}{after.value:.4g}" if after is not None else ""
    return f"{where}: re-scored from {source.key} as {record.key}{value}"


@rescore_app.command()
@guarded
def rescore(
    results_dir: Annotated[
        Path, typer.Argument(metavar="DIR", help="A directory written by `ftbench run` (never changed).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="The new results directory (absent or empty); default: DIR-rescored.")
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(help="Re-score only these tasks, comma-separated; the others are copied as they are."),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Score the stored responses in DIR again with the tasks' current scoring, without the model, into a new
    results directory; each re-scored evaluation names the one it came from. Refused for a task whose items,
    prompts or data changed, and for log-likelihood and judged tasks (their scores come from a model)."""
    load_run(results_dir)  # a wrong path is refused before the libraries load
    from ftbench.harness.app.display import library_output
    from ftbench.harness.evaluation.rescore import default_out, rescore_results
    from ftbench.harness.index.indexing import run_indexer
    from ftbench.reports.summary import write_summary
    from ftbench.tasks.registry import recorded_task

    target = out or default_out(results_dir)
    add_to_store = run_indexer(target, recorded_task)  # the store: checked now, added to once the run is in place
    with library_output(None, verbose):
        outcome = rescore_results(results_dir, target, split_flag(task))
    add_to_store(outcome.run, outcome.records)
    for item in outcome.evaluations:
        print(terminal_text(rescore_line(item)))
    summary = write_summary(outcome.out)
    print(f"results: {outcome.out}")
    print(f"summary: {summary}")
