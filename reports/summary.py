"""The short markdown summary of one run: each task's metrics per checkpoint × precision, with costs."""

from __future__ import annotations

from pathlib import Path

from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import load_run, load_run_evals, write_atomic
from ftbench.reports.mdtext import code, inline, table
from ftbench.tasks.registry import recorded_task

SUMMARY_FILE = "summary.md"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f}"


def _cell(record: EvalRecord, metric: str) -> str:
    value = record.metrics.get(metric)
    if value is None:
        return "–"
    stderr = f" ± {value.stderr:.3f}" if value.stderr is not None else ""
    return f"{value.value:.3f}{stderr}"


def _header(run: RunRecord) -> list[str]:
    prov = run.provenance
    versions = ", ".join(f"{name} {version}" for name, version in prov.versions.items())
    return [
        f"# ftbench run {code(run.name)}",
        "",
        f"- device: {inline(prov.device)} ({inline(prov.device_name)}), torch threads {prov.torch_threads}",
        f"- versions: {inline(versions)}",
        f"- commit: {inline(prov.git_commit or 'unknown')}{' (uncommitted changes)' if prov.git_dirty else ''}",
        f"- seed {run.seed}; wall time {run.wall_seconds:.1f} s; "
        f"{len(run.evaluations) - len(run.reused)} evaluated, {len(run.reused)} reused from cache",
        "- values are mean ± standard error over the n samples; footprint is the loaded model's bytes",
    ]


def _task_section(task: str, records: list[EvalRecord]) -> list[str]:
    """One task's metrics (with their scales) and its table of checkpoint × precision rows."""
    rows = sorted((r for r in records if r.task == task), key=lambda r: stage_rank(r.variant.stage))
    info = recorded_task(rows[0].request)
    metrics = list(info.metrics)
    lines = ["", f"## {inline(task)}", ""]
    lines += [f"- {code(name)}: {inline(meta.scale)}" for name, meta in info.metrics.items()]
    header = ["checkpoint", "stage", "precision", *metrics, "n", "footprint MiB", "peak MiB", "tokens/s", "wall s"]
    cells = []
    for record in rows:
        perf = record.performance
        speed = f"{perf.tokens_per_second:.1f}" if perf.tokens_per_second is not None else "–"
        n = next(iter(record.metrics.values())).n if record.metrics else 0
        variant = record.variant
        costs = [str(n), _mib(variant.footprint_bytes), _mib(perf.peak_memory_bytes), speed, f"{perf.wall_seconds:.1f}"]
        cells.append([variant.name, variant.stage, variant.precision, *(_cell(record, m) for m in metrics), *costs])
    lines += ["", *table(header, cells)]
    notes = sorted({note for record in rows for note in record.variant.notes})
    return lines + [f"\nNote: {inline(note)}" for note in notes]


def render_summary(run: RunRecord, records: list[EvalRecord]) -> str:
    """Markdown: a header with provenance, then one table per task; every name from the records is escaped."""
    lines = _header(run)
    for task in dict.fromkeys(record.task for record in records):
        lines += _task_section(task, records)
    return "\n".join(lines) + "\n"


def write_summary(results_dir: Path) -> Path:
    """Write ``summary.md`` for the run stored in ``results_dir`` and return its path."""
    path = results_dir / SUMMARY_FILE
    write_atomic(path, render_summary(load_run(results_dir), load_run_evals(results_dir)))
    return path
