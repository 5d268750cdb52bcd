"""``ftbench gate``, ``ftbench baseline`` and ``ftbench power``: deciding on a candidate against a baseline."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.markup import escape

from ftbench.harness.app.cli_common import VerboseOption, guarded, print_error
from ftbench.harness.app.display import LOG_FILE, Display, console, library_output
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.names import terminal_text
from ftbench.harness.core.store import write_atomic

if TYPE_CHECKING:
    from ftbench.harness.core.events import EventSink

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
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Stop as soon as every gated metric is decided (anytime-valid).")
    ] = False,
    budget: Annotated[
        int | None, typer.Option(help="Sequential: the most items per evaluation (default: all).")
    ] = None,
    chunk: Annotated[int | None, typer.Option(help="Sequential: items evaluated between looks (default 16).")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every gated comparison's verdict, items and interval here.")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Exit 0 when the candidate passes, 1 when it is significantly worse than the baseline beyond the policy's
    margins, 2 when the gate could not decide or the input is bad. With --sequential (or `sequential:` in the
    policy) the candidate is evaluated a chunk at a time and the gate stops once every gated metric is decided."""
    from ftbench.harness.app.gate import check_gate_paths, is_results_dir
    from ftbench.harness.core.checkpoints import resolve_checkpoint
    from ftbench.harness.core.store import load_run

    check_gate_paths(baseline, candidate, policy, junit, candidate_out, base)  # before a log could be written
    for flag, value in (("--budget", budget), ("--chunk", chunk)):
        if value is not None and value < 1:
            raise FtbenchError(f"{flag} {value} must be 1 or more (items)")
    load_run(baseline)  # a wrong path is refused before any library loads
    run = _gate_runner(policy, sequential, budget, chunk, json_out)
    if is_results_dir(candidate):  # nothing to evaluate: no model libraries, no log, no progress line
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numerical warnings of the tests; the verdicts say what counts
            outcome = run(baseline, candidate, junit, candidate_out, base, None)
    else:
        resolve_checkpoint(candidate, base)
        display = Display()
        try:
            with library_output(candidate_out / LOG_FILE, verbose):
                outcome = run(baseline, candidate, junit, candidate_out, base, display.show)
        finally:
            display.stop()
    print(outcome.terminal_summary)
    for warning in outcome.warnings:
        console.print(f"[yellow]warning:[/] {escape(terminal_text(warning))}", highlight=False, soft_wrap=True)
    if outcome.exit_code == 2:
        print_error(f"the gate could not decide: {outcome.reason}")
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _gate_runner(
    policy: Path | None, sequential: bool, budget: int | None, chunk: int | None, json_out: Path | None
) -> Callable[..., GateResult]:
    """The gate the flags and the policy ask for: fixed-n, or sequential (``--sequential`` or ``sequential:`` in the
    policy; ``--budget`` and ``--chunk`` over the policy's values), as one call with the gate's common arguments.

    Raises:
        FtbenchError: a policy that does not parse.
    """
    from ftbench.harness.app.gate import run_gate
    from ftbench.harness.app.gate_sequential import run_sequential_gate
    from ftbench.harness.compare.policy import SequentialSettings, load_policy

    chosen = load_policy(policy).sequential
    if not sequential and chosen is None:
        if budget is not None or chunk is not None:
            raise FtbenchError("--budget and --chunk are the sequential gate's; add --sequential")
        return partial(_fixed, run_gate, policy, json_out)
    settings = (chosen or SequentialSettings()).model_copy(
        update={k: v for k, v in (("budget", budget), ("chunk", chunk)) if v is not None}
    )

    def run(baseline: Path, candidate: Path, junit: Path | None, out: Path, base: Path | None,
            on_event: EventSink | None) -> GateResult:  # fmt: skip
        outcome = run_sequential_gate(baseline, candidate, policy, settings, junit, json_out, out, base, on_event)
        from ftbench.reports.sequential_summary import render_sequential_markdown

        text = render_sequential_markdown(outcome.judgements, outcome.plan.budgets, str(baseline),
                                          str(outcome.candidate), outcome.decision, True)  # fmt: skip
        return GateResult(outcome.exit_code, outcome.decision.reason, text, outcome.warnings)

    return run


def _fixed(run_gate: Callable[..., Any], policy: Path | None, json_out: Path | None, baseline: Path, candidate: Path,
           junit: Path | None, out: Path, base: Path | None, on_event: EventSink | None) -> GateResult:  # fmt: skip
    """The fixed-n gate, its verdicts also written as JSON when asked."""
    from ftbench.reports.gate_json import fixed_gate_json
    from ftbench.reports.gate_summary import render_gate_markdown

    outcome = run_gate(baseline, candidate, policy, junit, out, base, on_event)
    if json_out is not None:
        write_atomic(json_out, fixed_gate_json(outcome.verdicts, outcome.decision))
    text = render_gate_markdown(outcome.verdicts, str(baseline), str(outcome.candidate), outcome.decision, True)
    return GateResult(outcome.exit_code, outcome.decision.reason, text, outcome.warnings)


class GateResult(NamedTuple):
    """What the command prints and exits with, whichever gate decided."""

    exit_code: int
    reason: str
    terminal_summary: str
    warnings: tuple[str, ...]


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
    from ftbench.reports.mdtext import plain, table
    from ftbench.tasks.registry import recorded_task

    rows = power_table(load_run_evals(results_dir), recorded_task, delta, alpha)
    header = ["task", "metric", "comparison", "n", "spread", "detectable now", f"items for Δ {delta:g}"]
    cells = [[r.task, r.metric, r.comparison, str(r.n), r.spread, r.detectable_text, r.needed_text] for r in rows]
    print("\n".join(table(header, cells, plain)))
