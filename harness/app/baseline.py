"""Baselines: a run's results stored under ``results/baselines/NAME`` after a deliberate decision, and the
evaluation of a candidate checkpoint with exactly a baseline's settings."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import Provenance, RunRecord
from ftbench.harness.core.store import RUN_FILE, eval_path, load_run, load_run_evals, write_atomic

if TYPE_CHECKING:
    from ftbench.harness.core.events import EventSink
    from ftbench.harness.evaluation.run import RunOutcome
    from ftbench.harness.evaluation.spec import RunSpec

BASELINES = Path("results/baselines")
BASELINE_FILE = "baseline.json"
BASELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""A plain folder name: what ``--name`` (or a run's name, by default) must be."""


class BaselineRecord(BaseModel):
    """Why and from what a baseline was stored."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    updated_at: str
    note: str | None
    provenance: Provenance


def check_baseline_name(name: str, root: Path = BASELINES, given: str = "--name") -> str:
    """A baseline name that is one plain folder name under ``root``: letters, digits, ``.``, ``_`` and ``-``,
    starting with a letter or digit (so never ``.``, ``..``, an absolute path or a path with separators).

    Raises:
        FtbenchError: any other name, naming where it came from.
    """
    if not BASELINE_NAME.fullmatch(name):
        raise FtbenchError(
            f"baseline name {name!r} ({given}) is not a plain name; use letters, digits, '.', '_' or '-' "
            f"(at most 100, starting with a letter or digit): it becomes one folder under {root}"
        )
    return name


def refuse_baseline_out(out: Path) -> None:
    """Refuse to write a run into a stored baseline (``baseline update`` alone writes there).

    Raises:
        FtbenchError: ``out`` holds a baseline record.
    """
    if (out / BASELINE_FILE).is_file():
        raise FtbenchError(
            f"results directory {out} is a stored baseline; give --out another folder (`ftbench baseline update` "
            "replaces baselines)"
        )


def _check_own(path: Path, root: Path, baseline: bool) -> None:
    """Refuse to replace ``path`` unless it is a real folder directly in ``root`` (never a link, never anything higher
    up) and, for a stored baseline, one that holds a baseline record: the only folders this module writes."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir() or path.parent.resolve() != root.resolve():
        raise FtbenchError(
            f"{path} is not a folder of {root} that ftbench wrote; remove it yourself or give another name"
        )
    if baseline and not (path / BASELINE_FILE).is_file():
        raise FtbenchError(
            f"{path} exists but holds no {BASELINE_FILE}, so it is not a baseline; give another --name or --root"
        )


def _remove_own(path: Path, root: Path, baseline: bool) -> None:
    """Remove a folder this module wrote, after ``_check_own``."""
    _check_own(path, root, baseline)
    if path.exists():
        shutil.rmtree(path)


def _stage(results_dir: Path, run: RunRecord, staging: Path, note: str | None, name: str) -> None:
    """Copy the run and its evaluations to ``staging`` with the record of the decision."""
    from ftbench.harness.evaluation.provenance import collect_provenance

    (staging / "evals").mkdir(parents=True)
    shutil.copy2(results_dir / RUN_FILE, staging / RUN_FILE)
    for key in run.evaluations:
        shutil.copy2(eval_path(results_dir, key), eval_path(staging, key))
    record = BaselineRecord(
        name=name,
        source=str(results_dir),
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        note=note,
        provenance=collect_provenance(run.provenance.device),
    )
    write_atomic(staging / BASELINE_FILE, record.model_dump_json(indent=1))


def update_baseline(
    results_dir: Path, name: str | None = None, note: str | None = None, root: Path = BASELINES
) -> Path:
    """Copy a run (its run record and evaluations) to ``root/NAME`` with a record of the decision.

    Only ``root/NAME`` (a previous baseline of that name) and this module's own ``root/.NAME.tmp`` (staging) and
    ``root/.NAME.previous`` (the baseline being replaced) are ever removed.

    Raises:
        FtbenchError: a name that is not a plain folder name, a target that is not a baseline, or a directory
            without a complete, verified run with at least one evaluation; each before any file is touched.
    """
    if name is not None:
        check_baseline_name(name, root)
    run = load_run(results_dir)
    load_run_evals(results_dir)  # every evaluation must be there, valid and unedited
    target = root / (name if name is not None else check_baseline_name(run.name, root, "the run's name; give --name"))
    staging = root / f".{target.name}.tmp"
    _check_own(target, root, baseline=True)
    _remove_own(staging, root, baseline=False)
    try:
        _stage(results_dir, run, staging, note, target.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # our own staging folder, checked above
        raise
    _swap_in(staging, target, root)
    return target


def _swap_in(staging: Path, target: Path, root: Path) -> None:
    """Put ``staging`` in place of ``target``, keeping the previous baseline until the new one is in place."""
    previous = root / f".{target.name}.previous"
    _remove_own(previous, root, baseline=True)
    if target.exists():
        target.rename(previous)
    try:
        staging.rename(target)
    except BaseException:
        if previous.exists():
            previous.rename(target)
        raise
    _remove_own(previous, root, baseline=True)


def candidate_spec(baseline_dir: Path, checkpoint: Path, out: Path, base: Path | None = None) -> RunSpec:
    """The run that evaluates ``checkpoint`` on exactly the baseline's tasks, items, precisions and generation
    settings, into ``out``.

    Raises:
        FtbenchError: the baseline's run names none of its records' tasks.
    """
    from ftbench.harness.evaluation.spec import RunSpec

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
    return candidate


def evaluate_like_baseline(
    baseline_dir: Path,
    checkpoint: Path,
    out: Path,
    base: Path | None = None,
    on_event: EventSink | None = None,
) -> RunOutcome:
    """Evaluate ``checkpoint`` on exactly the baseline's tasks, items, precisions and generation settings."""
    from ftbench.harness.app.runs import run_and_store

    return run_and_store(candidate_spec(baseline_dir, checkpoint, out, base), on_event=on_event)
