"""``ftbench gate``, ``ftbench baseline`` and ``ftbench power``: deciding on a candidate against a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.app.cli_common import VerboseOption, guarded
from harness.app.display import LOG_FILE, Display, console, library_output

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
    from harness.app.gate import run_gate

    display = Display()
    try:
        with library_output(candidate_out / LOG_FILE, verbose):
            outcome = run_gate(baseline, candidate, policy, junit, candidate_out, base, display.evaluation)
    finally:
        display.stop()
    print(outcome.summary)
    if outcome.exit_code == 2:
        console.print(f"[bold red]error:[/] the gate could not decide: {outcome.decision.reason}", highlight=False)
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
    from harness.app.baseline import update_baseline

    print(f"baseline: {update_baseline(results_dir, name, note, root)}")


@gate_app.command()
@guarded
def power(
    results_dir: Annotated[Path, typer.Option("--results", help="A directory written by `ftbench run`.")],
    delta: Annotated[float, typer.Option(help="The change to detect, in the headline metric's own scale.")],
) -> None:
    """How many items each task needs to detect a change of DELTA with 80% power (paired test, 5% level)."""
    from harness.compare.power import power_table
    from harness.core.store import load_run_evals
    from reports.markdown import markdown_table

    rows = power_table(load_run_evals(results_dir), delta)
    header = ["task", "metric", "comparison", "n", "spread", "detectable now", f"items for Δ {delta:g}"]
    cells = [
        [r.task, r.metric, r.comparison, str(r.n), r.spread, f"{r.detectable_now:.3g}", str(r.items_needed)]
        for r in rows
    ]
    print("\n".join(markdown_table(header, cells)))
