"""The ``ftbench`` command line: parses, calls the library, prints. Bad input exits with code 2; the gate exits
with 1 for a regression and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ftbench.harness.app.cli_common import VerboseOption, guarded, split_flag
from ftbench.harness.app.cli_export import export_app
from ftbench.harness.app.cli_gate import baseline_app, gate_app
from ftbench.harness.app.cli_leak import leak_app
from ftbench.harness.app.cli_rescore import rescore_app
from ftbench.harness.app.cli_select import select_app
from ftbench.harness.app.cli_store import query_app, store_app
from ftbench.harness.app.cli_train import train_app
from ftbench.harness.app.cli_watch import watch_app
from ftbench.harness.app.display import LOG_FILE, Display, library_output
from ftbench.harness.core.checkpoints import check_gguf_header
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import load_run
from ftbench.harness.core.yamlfile import read_yaml_mapping

app = typer.Typer(
    help="Evaluation-first benchmark harness for fine-tuned small language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
    from ftbench.trainers.base_model import bootstrap_base, bootstrap_pretrained, kept_checkpoint

    if gguf is not None and model is not None:
        raise FtbenchError("give --gguf or --model, not both")
    if gguf is not None:  # checked here, before the libraries load (seconds)
        if not gguf.is_file():
            raise FtbenchError(f"GGUF file {gguf} does not exist; give an existing .gguf file")
        check_gguf_header(gguf)
    existed = kept_checkpoint(out, force)  # an incomplete one is refused before the libraries load
    with library_output(None, verbose=False):
        path = bootstrap_pretrained(out, model, force) if model else bootstrap_base(out, gguf, force)
    verb = "kept existing" if existed else "wrote"
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
    from ftbench.harness.app.baseline import refuse_baseline_out
    from ftbench.harness.evaluation.spec import RunFlags, refuse_other_run, resolve_spec

    flags = RunFlags(
        checkpoints=checkpoint or None,
        checkpoints_dir=checkpoints_dir,
        base=base,
        precisions=precision or None,
        tasks=split_flag(task),
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
    refuse_baseline_out(run_spec_.out)
    if not force:
        refuse_other_run(run_spec_)
    from ftbench.harness.app.runs import run_and_store  # torch, lm-eval: only once the spec is known to be good
    from ftbench.reports.summary import write_summary

    display = Display()
    try:
        with library_output(run_spec_.out / LOG_FILE, verbose):
            outcome = run_and_store(run_spec_, force=force, on_event=display.show)
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
    if format not in ("json", "csv", "md"):
        raise FtbenchError(f"unknown format {format!r}; use json, csv or md")
    load_run(results_dir)  # a wrong path is refused before the table's libraries load
    from ftbench.reports.tidy import format_table, tidy_table

    sys.stdout.write(format_table(tidy_table(results_dir), format) + "\n")  # type: ignore[arg-type]


@app.command()
@guarded
def pipeline(
    config: Annotated[Path, typer.Option("--config", help="Pipeline YAML: base, stages, evaluation suite, final.")],
    force: Annotated[bool, typer.Option(help="Retrain every stage even when up to date.")] = False,
    verbose: VerboseOption = False,
) -> None:
    """Train the stages in order, evaluating each as soon as it exists; point checkpoints/final at the chosen one."""
    read_yaml_mapping(config, "pipeline config", "give the path of a pipeline YAML file")  # before the heavy import
    from ftbench.harness.app.pipeline import read_pipeline, results_folder, run_pipeline
    from ftbench.reports.summary import write_summary

    spec = read_pipeline(config)
    display = Display()
    try:
        with library_output(results_folder(spec) / LOG_FILE, verbose):
            record, outcome = run_pipeline(spec, force, display.show, str(config))
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
    for results_dir in results_dirs:  # a wrong path is refused before the report's libraries load
        load_run(results_dir)
    from ftbench.reports.report import write_report

    files = write_report(results_dirs, out, baseline)
    print(f"report: {files.markdown}")
    print(f"report: {files.html}")


app.add_typer(train_app, name="train")
app.registered_commands += gate_app.registered_commands
app.add_typer(baseline_app, name="baseline")
app.add_typer(export_app, name="export")
app.registered_commands += watch_app.registered_commands
app.registered_commands += rescore_app.registered_commands
app.registered_commands += leak_app.registered_commands
app.registered_commands += select_app.registered_commands
app.add_typer(store_app, name="store")
app.registered_commands += query_app.registered_commands


@app.command("tasks")
@guarded
def list_tasks() -> None:
    """List the tasks with their metrics and scales."""
    from ftbench.tasks.registry import TASKS

    for name, info in TASKS.items():
        print(f"{name} (headline: {info.headline})")
        for metric, meta in info.metrics.items():
            direction = "" if meta.higher_is_better else ", lower is better"
            print(f"  {metric}: {meta.scale}{direction if 'lower is better' not in meta.scale else ''}")


if __name__ == "__main__":
    app()
