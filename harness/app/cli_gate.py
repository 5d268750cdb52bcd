"""``ftbench gate``, ``ftbench baseline`` and ``ftbench power``: deciding on a candidate against a baseline."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ftbench.harness.app.cli_common import VerboseOption, guarded, print_error
from ftbench.harness.app.display import LOG_FILE, Display, console, library_output
from ftbench.harness.core.errors import FtbenchError

gate_app = typer.Typer()


@gate_app.command()
@guarded
def gate(
    baseline: Annotated[Path, typer.Option(help="Baseline results directory (e.g. results/baselines/NAME).")],
    candidate: Annotated[Path, typer.Option(help="Candidate results directory, or a checkpoint to evaluate first.")],
    policy: Annotated[Path | None, typer.Option(help="Gate policy YAML; defaults apply without it.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    candidate_out: Annotated[Path, typer.Option(help="Where a candidate checkpoint's results go.")] = Path(
        "results/gate-candidate"
    ),
    base: Annotated[Path | None, typer.Option(help="Base model of a LoRA candidate.")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Exit 0 when the candidate passes, 1 when it is significantly worse than the baseline beyond the policy's
    margins, 2 when the gate could not decide or the input is bad."""
    from ftbench.harness.app.gate import check_gate_paths, is_results_dir, run_gate
    from ftbench.harness.core.checkpoints import resolve_checkpoint
    from ftbench.harness.core.store import load_run

    check_gate_paths(baseline, candidate, policy, junit, candidate_out, base)  # before a log could be written
    load_run(baseline)  # a wrong path is refused before any library loads
    if is_results_dir(candidate):  # nothing to evaluate: no model libraries, no log, no progress line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numerical warnings of the tests; the verdicts say what counts
            outcome = run_gate(baseline, candidate, policy, junit, candidate_out, base)
    else:
        resolve_checkpoint(candidate, base)
        display = Display()
        try:
            with library_output(candidate_out / LOG_FILE, verbose):
                outcome = run_gate(baseline, candidate, policy, junit, candidate_out, base, display.show)
        finally:
            display.stop()
    print(outcome.summary)
    for warning in outcome.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if outcome.exit_code == 2:
        print_error(f"the gate could not decide: {outcome.decision.reason}")
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


baseline_app = typer.Typer(help="Stored baselines for the gate.", no_args_is_help=True)


@baseline_app.command("update")
@guarded
def baseline_update(
    results_dir: Annotated[Path, typer.Argument(help="A directory written by `ftbench run`.")],
    name: Annotated[str | None, typer.Option(help="Baseline name; default: the run's name.")] = None,
    note: Annotated[str | None, typer.Option(help="Why this run becomes the baseline.")] = None,
    root: Annotated[Path, typer.Option(help="Where baselines live.")] = Path("results/baselines"),
) -> None:
    """Store a run as the new baseline (a deliberate decision, recorded with provenance)."""
    from ftbench.harness.app.baseline import update_baseline

    print(f"baseline: {update_baseline(results_dir, name, note, root)}")


@gate_app.command()
@guarded
def power(
    results_dir: Annotated[Path, typer.Option("--results", help="A directory written by `ftbench run`.")],
    delta: Annotated[float, typer.Option(help="The change to detect, in the headline metric's own scale.")],
    alpha: Annotated[float, typer.Option(help="The paired test's two-sided level (the gate policy's alpha).")] = 0.05,
) -> None:
    """How many items each task needs to detect a change of DELTA with 80% power (paired test at ALPHA)."""
    if not math.isfinite(delta) or delta <= 0:
        raise FtbenchError(f"--delta {delta} must be a positive, finite change in the metric's own scale")
    from ftbench.harness.compare.power import power_table
    from ftbench.harness.core.store import load_run_evals
    from ftbench.reports.markdown import markdown_table
    from ftbench.tasks.registry import recorded_task

    rows = power_table(load_run_evals(results_dir), recorded_task, delta, alpha)
    header = ["task", "metric", "comparison", "n", "spread", "detectable now", f"items for Δ {delta:g}"]
    cells = [[r.task, r.metric, r.comparison, str(r.n), r.spread, r.detectable_text, r.needed_text] for r in rows]
    print("\n".join(markdown_table(header, cells)))
