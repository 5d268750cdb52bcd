"""The ``ftbench`` command line: parses, calls the library, prints. Bad input exits with code 2; the gate exits
with 1 for a regression and nothing else."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

from harness.app.display import LOG_FILE, Display, console, library_output
from harness.core.errors import FtbenchError
from harness.core.precision import Precision, parse_precisions

app = typer.Typer(
    help="Evaluation-first benchmark harness for fine-tuned small language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
P = ParamSpec("P")
R = TypeVar("R")
VerboseOption = Annotated[bool, typer.Option("--verbose", help="Show the libraries' own logs and progress bars too.")]


TRACEBACK_ENV = "FTBENCH_TRACEBACK"


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {' '.join(message.split())}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into one line on stderr and exit code 2, so that exit 1 means only a gate's regression.

    An FtbenchError names bad input or an evaluation that could not be trusted; anything else is unexpected and
    says so (set ``FTBENCH_TRACEBACK=1`` to see the traceback).
    """

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, KeyboardInterrupt):
            raise
        except FtbenchError as exc:
            _fail(str(exc))
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _fail(f"unexpected {type(exc).__name__}: {text} (set {TRACEBACK_ENV}=1 for the traceback)")

    return wrapper


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _precisions(values: list[str] | None) -> list[Precision] | None:
    if not values:
        return None
    try:
        return parse_precisions(",".join(values))
    except ValueError as exc:
        raise FtbenchError(f"--precision: {exc}") from None


@app.command()
@guarded
def base(
    out: Annotated[Path, typer.Option(help="Where to write the initial checkpoint.")] = Path("checkpoints/initial"),
    gguf: Annotated[Path | None, typer.Option(help="A GGUF file instead of the embedded SmolLM2.")] = None,
    model: Annotated[
        str | None, typer.Option(help="A hub id or model directory instead, e.g. Qwen/Qwen2.5-0.5B-Instruct.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rewrite an existing checkpoint.")] = False,
) -> None:
    """Write the base checkpoint (SmolLM2-135M-Instruct from the embedded GGUF) as safetensors."""
    from trainers.base_model import bootstrap_base, bootstrap_pretrained

    if gguf is not None and model is not None:
        raise FtbenchError("give --gguf or --model, not both")
    existed = out.exists()
    with library_output(None, verbose=False):
        path = bootstrap_pretrained(out, model, force) if model else bootstrap_base(out, gguf, force)
    verb = "kept existing" if existed and not force else "wrote"
    print(f"{verb} base checkpoint {path}")


@app.command()
@guarded
def run(
    spec: Annotated[Path | None, typer.Option(help="YAML run spec; flags override its simple values.")] = None,
    checkpoint: Annotated[list[Path] | None, typer.Option(help="Checkpoint path (repeatable).")] = None,
    checkpoints_dir: Annotated[Path | None, typer.Option(help="Evaluate every checkpoint in this folder.")] = None,
    base: Annotated[Path | None, typer.Option(help="Base model of LoRA adapters.")] = None,
    precision: Annotated[
        list[str] | None, typer.Option(help="Precisions, comma-separated: fp32,bf16,int8,nf4,gguf-q4_k_m,...")
    ] = None,
    task: Annotated[list[str] | None, typer.Option(help="Tasks, comma-separated.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N items of each task.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results directory.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random generator.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    max_gen_toks: Annotated[int | None, typer.Option(help="Longest generation, in tokens.")] = None,
    engine: Annotated[str | None, typer.Option(help="hf or vllm (gguf precisions always run on llama.cpp).")] = None,
    cluster: Annotated[str | None, typer.Option(help="Spread over Ray: auto, local or ray://HOST:PORT.")] = None,
    force: Annotated[bool, typer.Option(help="Re-evaluate even when results are cached.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Evaluate checkpoints × precisions × tasks and store the results."""
    from harness.evaluation.run import run_spec
    from harness.evaluation.spec import RunFlags, resolve_spec
    from reports.summary import write_summary

    flags = RunFlags(
        checkpoints=checkpoint or None,
        checkpoints_dir=checkpoints_dir,
        base=base,
        precisions=_precisions(precision),
        tasks=_split(task),
        limit=limit,
        out=out,
        batch_size=batch_size,
        seed=seed,
        device=device,
        max_gen_toks=max_gen_toks,
        engine=engine,
        cluster=cluster,
    )
    run_spec_ = resolve_spec(spec, flags)
    display = Display()
    try:
        with library_output(run_spec_.out / LOG_FILE, verbose):
            outcome = run_spec(run_spec_, force=force, on_event=display.evaluation)
    finally:
        display.stop()
    summary = write_summary(outcome.results_dir)
    print(
        f"evaluated {len(outcome.evaluated)}, reused {len(outcome.reused)} from cache "
        f"in {outcome.run.wall_seconds:.1f} s"
    )
    print(f"results: {outcome.results_dir}")
    print(f"summary: {summary}")


@app.command()
@guarded
def results(
    results_dir: Annotated[Path, typer.Argument(help="A directory written by `ftbench run`.")],
    format: Annotated[str, typer.Option("--format", help="json, csv or md.")] = "md",
) -> None:
    """Print the tidy results table: one row per checkpoint × stage × precision × task × metric."""
    from reports.tidy import format_table, tidy_table

    if format not in ("json", "csv", "md"):
        raise FtbenchError(f"unknown format {format!r}; use json, csv or md")
    sys.stdout.write(format_table(tidy_table(results_dir), format) + "\n")  # type: ignore[arg-type]


train_app = typer.Typer(
    help="Thin TRL + PEFT trainers that write checkpoints with lineage manifests.", no_args_is_help=True
)
app.add_typer(train_app, name="train")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML training config.")]
ForceOption = Annotated[bool, typer.Option(help="Train again even when the output is up to date.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE, e.g. trl.learning_rate=1e-4.")
]


def _train(method_name: str, config: Path | None, assignments: list[str] | None, force: bool, verbose: bool) -> None:
    from trainers.config import load_settings
    from trainers.methods import get_method
    from trainers.stage import run_stage

    method = get_method(method_name)
    settings = load_settings(method.defaults, config, assignments or [])
    display = Display()
    log = settings.output.parent / f"{settings.output.name}.log"
    try:
        with library_output(log, verbose):
            result = run_stage(
                method, settings, force, lambda step, total, logs: display.training(settings.stage, step, total, logs)
            )
    finally:
        display.stop()
    print(f"{'reused up-to-date' if result.reused else 'wrote'} {method_name} stage {result.path}")
    if result.manifest.training is not None:
        for line in result.manifest.training.summary():
            print(line)


@train_app.command("sft")
@guarded
def train_sft_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Supervised fine-tuning on Countdown solver traces and UltraFeedback chosen responses."""
    _train("sft", config, assignments, force, verbose)


@train_app.command("dpo")
@guarded
def train_dpo_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """DPO on on-policy Countdown pairs (ranked by the task's reward) and UltraFeedback pairs."""
    _train("dpo", config, assignments, force, verbose)


@train_app.command("rloo")
@guarded
def train_rloo_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """RLOO on Countdown prompts, rewarded by the Countdown task's scoring function."""
    _train("rloo", config, assignments, force, verbose)


@train_app.command("reward")
@guarded
def train_reward_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Train a reward model (the default win-rate judge) on UltraFeedback preference pairs."""
    _train("reward", config, assignments, force, verbose)


@app.command()
@guarded
def pipeline(
    config: Annotated[Path, typer.Option("--config", help="Pipeline YAML: base, stages, evaluation suite, final.")],
    force: Annotated[bool, typer.Option(help="Retrain every stage even when up to date.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Train the stages in order, evaluating each as soon as it exists; point checkpoints/final at the chosen one."""
    from harness.app.pipeline import PipelineEvent, read_pipeline, results_folder, run_pipeline
    from reports.summary import write_summary

    spec = read_pipeline(config)
    display = Display()

    def show(event: PipelineEvent) -> None:
        if event.run_event is not None:
            display.evaluation(event.run_event)
        elif event.step is not None:
            display.training(event.stage, *event.step)
        elif event.status == "evaluating":
            display.reset()
        elif event.status != "evaluated":
            display.message(f"{event.stage}: {event.status}")

    try:
        with library_output(results_folder(spec) / LOG_FILE, verbose):
            record, outcome = run_pipeline(spec, force, show, str(config))
    finally:
        display.stop()
    summary = write_summary(outcome.results_dir)
    print(f"{record.base} (base): evaluations {record.base_eval_seconds:.1f} s")
    for stage in record.stages:
        state = "reused" if stage.reused else f"trained in {stage.train_seconds:.1f} s"
        print(f"{stage.stage} ({stage.method}): {state}; evaluations {stage.eval_seconds:.1f} s")
    print(f"final: {record.final_link} -> {record.final}")
    print(f"results: {outcome.results_dir}")
    print(f"summary: {summary}")


@app.command()
@guarded
def report(
    results_dirs: Annotated[list[Path], typer.Argument(help="Directories written by `ftbench run`.")],
    out: Annotated[Path, typer.Option(help="Folder for report.md and report.html.")] = Path("reports/out/latest"),
    baseline: Annotated[
        str | None, typer.Option(help="CHECKPOINT[@PRECISION] or stage; default: first stage, widest precision.")
    ] = None,
) -> None:
    """Write a comparison report (markdown and a self-contained HTML page) from stored results."""
    from reports.report import write_report

    files = write_report(results_dirs, out, baseline)
    print(f"report: {files.markdown}")
    print(f"report: {files.html}")


@app.command()
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
app.add_typer(baseline_app, name="baseline")


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


@app.command()
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


@app.command("tasks")
def list_tasks() -> None:
    """List the tasks with their metrics and scales."""
    from tasks.registry import TASKS

    for name, info in TASKS.items():
        print(f"{name} (headline: {info.headline})")
        for metric, meta in info.metrics.items():
            direction = "" if meta.higher_is_better else ", lower is better"
            print(f"  {metric}: {meta.scale}{direction if 'lower is better' not in meta.scale else ''}")


if __name__ == "__main__":
    app()
