"""``ftbench export gguf``: a checkpoint as GGUF files for llama.cpp, Ollama or LM Studio; ``ftbench export
lm-eval``: a run in lm-evaluation-harness's own output layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftbench.harness.app.cli_common import guarded, split_flag
from ftbench.harness.app.display import library_output
from ftbench.harness.core.errors import FtbenchError

export_app = typer.Typer(help="Export checkpoints and runs for other tools.", no_args_is_help=True)


@export_app.command("gguf")
@guarded
def export_gguf_command(
    checkpoint: Annotated[Path, typer.Argument(help="A model directory or LoRA adapter (merged onto its base).")],
    quant: Annotated[list[str], typer.Option(help="llama.cpp types, comma-separated: f16,q8_0,q4_k_m,...")],
    out: Annotated[Path | None, typer.Option(help="Folder for the files (default: beside the checkpoint).")] = None,
    base: Annotated[Path | None, typer.Option(help="Base model of a LoRA adapter.")] = None,
) -> None:
    """Convert with llama.cpp's own converter and quantizer; each file gets a manifest (`<file>.json`) with its
    parent checkpoint, its type, llama.cpp's version and its hash. An unchanged export is reused."""
    from ftbench.harness.core.checkpoints import resolve_checkpoint
    from ftbench.harness.engines.gguf import check_quant, default_cache_dir, export_gguf

    found = resolve_checkpoint(checkpoint, base)
    types = split_flag(quant) or []
    for name in types:
        check_quant(name)
    folder = out or default_cache_dir(found)
    with library_output(None, verbose=False):
        for name in types:
            exported = export_gguf(found, name, folder)
            manifest = exported.manifest
            size = f"{manifest.size_bytes / 2**20:.1f} MiB"
            if manifest.fallback_tensors:
                size += f", {manifest.fallback_tensors} of {manifest.tensor_count} tensors in another type"
            print(f"{'reused' if exported.reused else 'wrote'} {exported.path} ({size})")


@export_app.command("lm-eval")
@guarded
def export_lm_eval_command(
    run: Annotated[Path, typer.Argument(help="A results directory written by `ftbench run`.")],
    out: Annotated[Path | None, typer.Option(help="Folder for the model folders (default: RUN/lm-eval).")] = None,
) -> None:
    """Write a run in lm-eval's own output layout, for the tools that read lm-eval's output.

    The files are what `lm_eval --output_path OUT --log_samples` writes: one folder per variant, named
    `<checkpoint>@<precision>` as lm-eval sanitizes model names (other engines add `@<engine>`, repeats
    `@repeat<r>`), holding `results_<datetime>.json` (every task the variant was evaluated on, metrics keyed
    `metric,none`) and `samples_<task>_<datetime>.jsonl` per task. What ftbench does not store (the dataset rows,
    the texts of multiple-choice choices, greedy flags) is written as `{}` or null. `<datetime>` is the run's end,
    so exporting a run again replaces its own files."""
    from ftbench.reports.lm_eval_layout import export_lm_eval

    folder = out if out is not None else run / "lm-eval"
    inside = folder.resolve().is_relative_to(run.resolve())
    if inside and folder.resolve() != (run / "lm-eval").resolve():
        raise FtbenchError(
            f"--out {folder} lies inside the run {run}, among its records; give a folder outside it (or leave --out "
            f"out for {run / 'lm-eval'})"
        )
    for exported in export_lm_eval(run, folder):
        count = len(exported.samples)
        print(f"wrote {exported.folder} ({exported.results.name} and {count} samples file{'s' * (count != 1)})")
