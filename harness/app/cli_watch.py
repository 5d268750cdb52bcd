"""``ftbench watch``: evaluate a training run's checkpoints as another process writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftbench.harness.app.cli_common import VerboseOption, guarded
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.names import terminal_text

watch_app = typer.Typer()


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
    link_best: Annotated[
        Path | None, typer.Option(help="Keep a link here to the best checkpoint so far (ftbench select's choice).")
    ] = None,
    copy_best: Annotated[
        bool, typer.Option("--copy-best", help="Keep a copy rather than a link (the trainer deletes old checkpoints).")
    ] = False,
    train_data: Annotated[
        Path | None, typer.Option(help="The trainer's training file (JSON lines): audited against the suite's items.")
    ] = None,
    fields: Annotated[str | None, typer.Option(help="The training file's fields to read (default: TRL's).")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Evaluate each checkpoint-N under DIRECTORY once it is completely written, each once, in step order, until
    interrupted (or once, with --once); exit 1 when the gate found a regression."""
    from ftbench.harness.app.display import LOG_FILE, Display, library_output
    from ftbench.harness.app.watch import open_watch, watch_checkpoints

    if copy_best and link_best is None:
        raise FtbenchError("--copy-best copies the best checkpoint to --link-best PATH; give --link-best too")
    named = [part.strip() for part in fields.split(",") if part.strip()] if fields else None
    run = open_watch(directory, spec, out, baseline, policy, base, link_best, copy_best, train_data, named)
    display = Display()
    try:
        with library_output(out / LOG_FILE, verbose):
            curve = watch_checkpoints(
                directory, run, once=once, interval=interval, stop_file=stop_file, on_event=display.show
            )
    except KeyboardInterrupt:
        curve = run.evaluator.curve
    finally:
        display.stop()
    evaluated = [step.name for step in curve.steps if step.failed is None]
    failed = [step.name for step in curve.steps if step.failed is not None]
    print(terminal_text(f"evaluated checkpoints: {', '.join(evaluated) or 'none yet'}"))
    if failed:
        print(terminal_text(f"could not evaluate: {', '.join(failed)} (reasons in {out / 'training_curve.json'})"))
    print(terminal_text(f"results: {out}"))
    if curve.first_regression is not None:
        last = f"first regression: step {curve.first_regression}; last good checkpoint: {curve.last_good}"
        print(terminal_text(last))
        raise typer.Exit(1)
