"""``ftbench watch``: evaluate a training run's checkpoints as another process writes them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbench.harness.app.cli_common import VerboseOption, guarded

if TYPE_CHECKING:
    from ftbench.harness.evaluation.steps import StepResult

watch_app = typer.Typer()


def step_line(result: StepResult) -> str:
    """``checkpoint-4 (step 4): arc_easy acc_norm 0.25; gate pass (...)``: a step's headline values and verdict."""
    from ftbench.harness.compare.paired import task_of

    several = len({r.request.precision for r in result.evaluations}) > 1
    values = []
    for record in result.evaluations:
        headline = task_of(record).headline
        where = f"@{record.request.precision}" if several else ""
        values.append(f"{record.task} {headline}{where} {record.metrics[headline].value:.4g}")
    step = result.step
    gate = f"; gate {step.outcome}: {step.reason}" if step.outcome is not None else ""
    what = "; ".join(r.describe() for r in step.regressions)
    return f"{step.name} (step {step.step}, {step.eval_seconds:.1f} s): {', '.join(values)}{gate}" + (
        f" [{what}]" if what else ""
    )


@watch_app.command()
@guarded
def watch(
    directory: Annotated[Path, typer.Argument(help="The trainer's output_dir, where checkpoint-N folders appear.")],
    spec: Annotated[Path, typer.Option("--spec", help="The suite: a YAML run spec without checkpoints.")],
    out: Annotated[Path, typer.Option(help="Results directory (resumed when it holds this suite's curve).")],
    baseline: Annotated[
        Path | None, typer.Option(help="Gate against a stored baseline directory, or a checkpoint (evaluated first).")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Gate policy YAML; defaults apply without it.")] = None,
    base: Annotated[Path | None, typer.Option(help="Base model of adapter checkpoints.")] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate the complete checkpoints there now, then exit.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between looks at DIRECTORY.", min=0.1)] = 10.0,
    stop_file: Annotated[
        Path | None, typer.Option(help="Write this file at the first regression (a training script can poll it).")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Evaluate each checkpoint-N under DIRECTORY once it is completely written, each once, in step order, until
    interrupted (or once, with --once); exit 1 when the gate found a regression."""
    from ftbench.harness.app.display import LOG_FILE, Display, library_output
    from ftbench.harness.app.watch import open_watch, watch_checkpoints

    evaluator = open_watch(directory, spec, out, baseline, policy, base)
    display = Display()

    def show(result: StepResult) -> None:
        display.reset()
        display.message(step_line(result))

    try:
        with library_output(out / LOG_FILE, verbose):
            curve = watch_checkpoints(
                directory,
                evaluator,
                once=once,
                interval=interval,
                stop_file=stop_file,
                on_step=show,
                on_event=display.evaluation,
            )
    except KeyboardInterrupt:
        curve = evaluator.curve
    finally:
        display.stop()
    print(f"evaluated checkpoints: {', '.join(s.name for s in curve.steps) or 'none yet'}")
    print(f"results: {out}")
    if curve.first_regression is not None:
        print(f"first regression: step {curve.first_regression}; last good checkpoint: {curve.last_good}")
        raise typer.Exit(1)
