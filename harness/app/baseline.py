"""Baselines: a run's results stored under ``results/baselines/NAME`` after a deliberate decision, and the
evaluation of a candidate checkpoint with exactly a baseline's settings."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness.core.errors import FtbenchError
from harness.core.records import Provenance
from harness.core.store import RUN_FILE, eval_path, load_run, load_run_evals, write_atomic
from harness.evaluation.provenance import collect_provenance
from harness.evaluation.run import RunEvent, RunOutcome, run_spec
from harness.evaluation.spec import RunSpec

BASELINES = Path("results/baselines")
BASELINE_FILE = "baseline.json"


class BaselineRecord(BaseModel):
    """Why and from what a baseline was stored."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    updated_at: str
    note: str | None
    provenance: Provenance


def update_baseline(
    results_dir: Path, name: str | None = None, note: str | None = None, root: Path = BASELINES
) -> Path:
    """Copy a run (its run record and evaluations) to ``root/NAME`` with a record of the decision.

    Raises:
        FtbenchError: the directory holds no complete, verified run with at least one evaluation.
    """
    run = load_run(results_dir)
    load_run_evals(results_dir)  # every evaluation must be there and valid
    target = root / (name or run.name)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "evals").mkdir(parents=True)
    shutil.copy2(results_dir / RUN_FILE, staging / RUN_FILE)
    for key in run.evaluations:
        shutil.copy2(eval_path(results_dir, key), eval_path(staging, key))
    record = BaselineRecord(
        name=target.name,
        source=str(results_dir),
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        note=note,
        provenance=collect_provenance(run.provenance.device),
    )
    write_atomic(staging / BASELINE_FILE, record.model_dump_json(indent=1))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def evaluate_like_baseline(
    baseline_dir: Path,
    checkpoint: Path,
    out: Path,
    base: Path | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
) -> RunOutcome:
    """Evaluate ``checkpoint`` on exactly the baseline's tasks, items, precisions and generation settings."""
    run = load_run(baseline_dir)
    records = load_run_evals(baseline_dir)
    spec = RunSpec.model_validate(run.spec)
    tasks = {record.task for record in records}
    precisions = sorted({record.request.precision for record in records}, key=spec.precisions.index)
    candidate = spec.model_copy(
        update={
            "name": f"gate-{checkpoint.name}",
            "checkpoints": [checkpoint],
            "checkpoints_dir": None,
            "base": base,
            "precisions": precisions,
            "tasks": [task for task in spec.tasks if task.name in tasks],
            "out": out,
        }
    )
    if not candidate.tasks:
        raise FtbenchError(f"baseline {baseline_dir} names no task of its records; update the baseline")
    return run_spec(candidate, on_event=on_event)
