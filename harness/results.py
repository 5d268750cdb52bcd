"""Stored results: typed, versioned records written atomically, and the tidy table read from them.

Layout of a results directory::

    run.json                 RunRecord: spec, provenance, the evaluations that make up the run
    evals/<key>.json         EvalRecord: one variant × task, keyed by everything that decides its result
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import FtbenchError

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
EVALS_DIR = "evals"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provenance(_Record):
    """Where and with what a run was made."""

    git_commit: str | None
    git_dirty: bool | None
    versions: dict[str, str]
    python: str
    platform: str
    device: str
    device_name: str
    torch_threads: int


class VariantInfo(_Record):
    """The evaluated variant: checkpoint, lineage and precision."""

    checkpoint: str
    name: str
    stage: str
    kind: str
    precision: str
    device: str
    weights_hash: str
    base: str | None = None
    footprint_bytes: int
    notes: list[str] = Field(default_factory=list)
    manifest: dict[str, Any] | None = None


class MetricValue(_Record):
    """One aggregate metric with its standard error (lm-eval's) and sample count."""

    value: float
    stderr: float | None
    n: int
    scale: str
    kind: str


class Performance(_Record):
    """Cost of one evaluation."""

    wall_seconds: float
    generated_tokens: int
    tokens_per_second: float | None
    """Generated tokens (responses re-tokenized) per wall-clock second; None for tasks that do not generate."""
    peak_memory_bytes: int
    memory_measure: str
    """``cuda_max_allocated`` on GPU, ``rss_peak`` (process resident memory, sampled) on CPU."""


class SampleRecord(_Record):
    """One scored sample."""

    doc_id: int
    doc_hash: str
    prompt: str
    response: str
    target: str
    scores: dict[str, float]


class EvalRecord(_Record):
    """The result of one variant × task."""

    schema_version: int = SCHEMA_VERSION
    key: str
    key_fields: dict[str, Any]
    variant: VariantInfo
    task: str
    metrics: dict[str, MetricValue]
    performance: Performance
    samples: list[SampleRecord]
    created_at: str = Field(default_factory=_now)


class RunRecord(_Record):
    """One invocation of ``ftbench run``: what was asked, where it ran, which evaluations it holds."""

    schema_version: int = SCHEMA_VERSION
    name: str
    spec: dict[str, Any]
    provenance: Provenance
    evaluations: list[str]
    reused: list[str] = Field(default_factory=list)
    seed: int
    started_at: str
    finished_at: str = Field(default_factory=_now)
    wall_seconds: float


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def eval_path(results_dir: Path, key: str) -> Path:
    """Where the evaluation with cache key ``key`` is stored."""
    return results_dir / EVALS_DIR / f"{key}.json"


def save_eval(results_dir: Path, record: EvalRecord) -> Path:
    """Store an evaluation atomically and return its path."""
    path = eval_path(results_dir, record.key)
    write_atomic(path, record.model_dump_json(indent=1))
    return path


def load_eval(path: Path) -> EvalRecord:
    """Read one evaluation record.

    Raises:
        FtbenchError: the file is not a valid record of this schema version.
    """
    try:
        record = EvalRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        raise FtbenchError(f"{path} is not a valid ftbench evaluation record; re-run `ftbench run`") from exc
    if record.schema_version != SCHEMA_VERSION:
        raise FtbenchError(f"{path} has schema version {record.schema_version}, expected {SCHEMA_VERSION}")
    return record


def cached_eval(results_dir: Path, key: str) -> EvalRecord | None:
    """The stored evaluation with this key, or None when absent or unreadable (it is then redone)."""
    path = eval_path(results_dir, key)
    if not path.is_file():
        return None
    try:
        record = load_eval(path)
    except FtbenchError:
        return None
    return record if record.key == key else None


def save_run(results_dir: Path, record: RunRecord) -> Path:
    """Store the run record atomically and return its path."""
    path = results_dir / RUN_FILE
    write_atomic(path, json.dumps(record.model_dump(mode="json"), indent=1))
    return path


def load_run(results_dir: Path) -> RunRecord:
    """Read the run record of a results directory.

    Raises:
        FtbenchError: no run record, or not a valid one.
    """
    path = results_dir / RUN_FILE
    if not path.is_file():
        raise FtbenchError(f"{results_dir} holds no {RUN_FILE}; give a directory written by `ftbench run`")
    try:
        return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise FtbenchError(f"{path} is not a valid ftbench run record") from exc


def load_run_evals(results_dir: Path) -> list[EvalRecord]:
    """The evaluation records of the run stored in ``results_dir``, in run order."""
    run = load_run(results_dir)
    return [load_eval(eval_path(results_dir, key)) for key in run.evaluations]
