"""The ``ftbench`` command line: parses, calls the library, prints. Bad input exits with code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harness.errors import FtbenchError

app = typer.Typer(
    help="Evaluation-first benchmark harness for fine-tuned small language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn an FtbenchError into one line on stderr and exit code 2."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except FtbenchError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


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
    from harness.base_model import bootstrap_base, bootstrap_pretrained

    if gguf is not None and model is not None:
        raise FtbenchError("give --gguf or --model, not both")
    existed = out.exists()
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
        list[str] | None, typer.Option(help="Precisions, comma-separated: fp32,bf16,int8,nf4,...")
    ] = None,
    task: Annotated[list[str] | None, typer.Option(help="Tasks, comma-separated.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate the first N items of each task.")] = None,
    out: Annotated[Path | None, typer.Option(help="Results directory.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random generator.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    max_gen_toks: Annotated[int | None, typer.Option(help="Longest generation, in tokens.")] = None,
    force: Annotated[bool, typer.Option(help="Re-evaluate even when results are cached.")] = False,
) -> None:
    """Evaluate checkpoints × precisions × tasks and store the results."""
    from harness.run import RunEvent, run_spec
    from harness.spec import load_spec, parse_spec
    from reports.summary import write_summary

    flags: dict[str, Any] = {
        "checkpoints": checkpoint or None,
        "checkpoints_dir": checkpoints_dir,
        "base": base,
        "precisions": _split(precision),
        "tasks": _split(task),
        "limit": limit,
        "out": out,
        "batch_size": batch_size,
        "seed": seed,
        "device": device,
    }
    if spec is not None:
        run_spec_ = load_spec(spec, flags)
    else:
        run_spec_ = parse_spec({k: v for k, v in flags.items() if v is not None}, "command line")
    if max_gen_toks is not None:  # like --limit, the flag wins over per-task values
        run_spec_.generation.max_gen_toks = max_gen_toks
        for task_spec in run_spec_.tasks:
            task_spec.generation.max_gen_toks = None
    if limit is not None:  # a --limit flag wins over the limits a spec file sets per task
        for task_spec in run_spec_.tasks:
            task_spec.limit = None

    progress = _progress()
    bar = progress.add_task("evaluations", total=None)

    def show(event: RunEvent) -> None:
        progress.start()  # only once the run is under way, so input errors print alone
        progress.update(
            bar,
            total=event.total,
            description=f"{event.checkpoint} {event.precision} {event.task}: {event.status}",
        )
        if event.status in ("done", "cached"):
            progress.advance(bar)

    try:
        outcome = run_spec(run_spec_, force=force, on_event=show)
    finally:
        progress.stop()
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
    from harness.table import format_table, tidy_table

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


def _quiet_libraries() -> None:
    """Keep the trainer's own progress bar; hide the per-dataset and weight-loading bars of the libraries."""
    import datasets
    from transformers.utils import logging

    datasets.disable_progress_bars()
    logging.disable_progress_bar()


def _train(method_name: str, config: Path | None, assignments: list[str] | None, force: bool) -> None:
    from trainers.config import load_settings
    from trainers.methods import get_method

    _quiet_libraries()

    method = get_method(method_name)
    settings = load_settings(method.defaults, config, assignments or [])
    result = method.train(settings, force)
    training = result.manifest.training
    print(f"{'reused up-to-date' if result.reused else 'wrote'} {method_name} stage {result.path}")
    loss = training.get("final_loss")
    print(
        f"steps {training.get('steps')}, final training loss {'n/a' if loss is None else f'{loss:.4f}'}, "
        f"{training.get('wall_seconds', 0.0):.1f} s"
    )
    if method_name == "reward":
        print(f"held-out pairwise accuracy (test_prefs chosen vs rejected): {result.heldout_accuracy:.3f}")


@train_app.command("sft")
@guarded
def train_sft_command(config: ConfigOption = None, assignments: SetOption = None, force: ForceOption = False) -> None:
    """Supervised fine-tuning on Countdown solver traces and UltraFeedback chosen responses."""
    _train("sft", config, assignments, force)


@train_app.command("dpo")
@guarded
def train_dpo_command(config: ConfigOption = None, assignments: SetOption = None, force: ForceOption = False) -> None:
    """DPO on on-policy Countdown pairs (ranked by the task's reward) and UltraFeedback pairs."""
    _train("dpo", config, assignments, force)


@train_app.command("rloo")
@guarded
def train_rloo_command(config: ConfigOption = None, assignments: SetOption = None, force: ForceOption = False) -> None:
    """RLOO on Countdown prompts, rewarded by the Countdown task's scoring function."""
    _train("rloo", config, assignments, force)


@train_app.command("reward")
@guarded
def train_reward_command(
    config: ConfigOption = None, assignments: SetOption = None, force: ForceOption = False
) -> None:
    """Train a reward model (the default win-rate judge) on UltraFeedback preference pairs."""
    _train("reward", config, assignments, force)


@app.command()
@guarded
def pipeline(
    config: Annotated[Path, typer.Option("--config", help="Pipeline YAML: base, stages, evaluation suite, final.")],
    force: Annotated[bool, typer.Option(help="Retrain every stage even when up to date.")] = False,
) -> None:
    """Train the stages in order, evaluating each as soon as it exists; point checkpoints/final at the chosen one."""
    from harness.pipeline import PipelineEvent, read_pipeline, run_pipeline
    from reports.summary import write_summary

    spec = read_pipeline(config)
    _quiet_libraries()
    progress = _progress()
    bar = progress.add_task("", total=None)

    def show(event: PipelineEvent) -> None:
        if event.run_event is None:
            progress.stop()
            if event.status == "evaluating":
                progress.reset(bar, total=None)  # the clock counts this round of evaluations only
            else:
                console.print(f"{event.stage}: {event.status}", highlight=False)
            return
        progress.start()
        run = event.run_event
        progress.update(
            bar,
            total=run.total,
            completed=run.position - (run.status not in ("done", "cached")),
            description=f"{run.checkpoint} {run.precision} {run.task}: {run.status}",
        )

    try:
        record, outcome = run_pipeline(spec, force, show, str(config))
    finally:
        progress.stop()
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
) -> None:
    """Fail (exit 1) when the candidate is significantly worse than the baseline beyond the policy's margins."""
    import os

    from harness.baseline import evaluate_like_baseline
    from harness.checkpoints import resolve_checkpoint
    from harness.gate import failed, gate_results, load_policy
    from harness.results import RUN_FILE, load_run
    from reports.gate import render_gate_markdown, render_junit

    rules = load_policy(policy)
    load_run(baseline)
    if not (candidate / RUN_FILE).is_file():
        resolve_checkpoint(candidate, base)
        console.print(f"evaluating {candidate} with the settings of {baseline}")
        candidate = evaluate_like_baseline(baseline, candidate, candidate_out, base).results_dir
    verdicts = gate_results(baseline, candidate, rules)
    summary = render_gate_markdown(verdicts, str(baseline), str(candidate))
    print(summary)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as handle:
            handle.write(summary)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(render_junit(verdicts), encoding="utf-8")
    if failed(verdicts):
        raise typer.Exit(1)


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
    from harness.baseline import update_baseline

    print(f"baseline: {update_baseline(results_dir, name, note, root)}")


@app.command("tasks")
def list_tasks() -> None:
    """List the tasks with their metrics and scales."""
    from tasks.registry import TASKS

    for name, info in TASKS.items():
        print(f"{name} (headline: {info.headline})")
        for metric, meta in info.metrics.items():
            print(f"  {metric}: {meta.scale}")
