"""Reading and writing stored results: atomic writes, and loads that verify every record against its name.

A record is trusted only when its file name, its ``key`` and the digest of its ``request`` agree, so a copied,
swapped or hand-edited evaluation file is refused rather than read as another evaluation.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from harness.core.errors import FtbenchError, first_error
from harness.core.records import SCHEMA_VERSION, EvalRecord, RunRecord

RUN_FILE = "run.json"
EVALS_DIR = "evals"


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


def _check_schema_version(path: Path, text: str) -> None:
    """Refuse a record written by another ftbench version (a record that is not JSON is refused later)."""
    try:
        data = json.loads(text)
    except ValueError:
        return
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version != SCHEMA_VERSION:
        raise FtbenchError(
            f"{path} was written by another ftbench version (schema {version}, this one reads {SCHEMA_VERSION}); "
            "re-run `ftbench run` with the same spec to rewrite it"
        )


def load_eval(path: Path) -> EvalRecord:
    """Read one evaluation record and check that it is the evaluation its file name says.

    Raises:
        FtbenchError: unreadable, not a record of this schema version, or its key does not match its file name
            or its request.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FtbenchError(f"cannot read evaluation record {path}; re-run `ftbench run` to rewrite it") from exc
    _check_schema_version(path, text)
    try:
        record = EvalRecord.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        raise FtbenchError(
            f"{path} is not a valid ftbench evaluation record; re-run `ftbench run` to rewrite it"
        ) from exc
    if not record.samples:
        raise FtbenchError(f"{path} holds no samples, so nothing in it can be compared; re-run `ftbench run`")
    if record.key != path.stem or record.request.key() != record.key:
        raise FtbenchError(
            f"{path} holds the evaluation {record.key} ({record.task}, {record.variant.name}@"
            f"{record.variant.precision}), not the one its name says; delete it and re-run `ftbench run`"
        )
    return record


def cached_eval(results_dir: Path, key: str) -> EvalRecord | None:
    """The stored evaluation with this key, or None when absent or not trustworthy (it is then redone)."""
    path = eval_path(results_dir, key)
    if not path.is_file():
        return None
    try:
        return load_eval(path)
    except FtbenchError:
        return None


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
    text = path.read_text(encoding="utf-8")
    _check_schema_version(path, text)
    try:
        return RunRecord.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        where = f": {first_error(exc).where}" if isinstance(exc, ValidationError) else ""
        raise FtbenchError(f"{path} is not a valid ftbench run record{where}; re-run `ftbench run`") from exc


def load_run_evals(results_dir: Path) -> list[EvalRecord]:
    """The evaluation records of the run stored in ``results_dir``, in run order, each verified.

    Raises:
        FtbenchError: the run lists no evaluation, or one is missing or not trustworthy.
    """
    run = load_run(results_dir)
    if not run.evaluations:
        raise FtbenchError(f"{results_dir / RUN_FILE} lists no evaluation; re-run `ftbench run` with at least one task")
    records = []
    for key in run.evaluations:
        path = eval_path(results_dir, key)
        if not path.is_file():
            raise FtbenchError(f"{path} is missing, though {RUN_FILE} lists it; re-run `ftbench run` to restore it")
        records.append(load_eval(path))
    return records
