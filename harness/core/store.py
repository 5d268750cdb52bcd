"""Reading and writing stored results: atomic writes, and loads that verify every record against its name and
its content.

A record is trusted only when its file name, its ``key`` and the digest of its ``request`` agree, and when the
digest of its content matches both the one it carries and the one its run lists, so a copied, swapped or
hand-edited evaluation file is refused rather than read. With ``FTBENCH_RECORD_KEY`` set the content digest is
an HMAC under that key, so records written without the key (or with another) are refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error
from ftbench.harness.core.records import SCHEMA_VERSION, EvalRecord, RunRecord

RUN_FILE = "run.json"
EVALS_DIR = "evals"
RECORD_KEY_ENV = "FTBENCH_RECORD_KEY"
"""A secret that makes content digests HMACs, so a CI job can tell its own records from anyone's."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    Raises:
        FtbenchError: the folder cannot be made or written (a full disk, no permission), naming the path and the
            space the file needs; nothing is left behind.
    """
    write_together({path: text})


def write_together(files: Mapping[Path, str]) -> None:
    """Write every file or none: each to a temporary file beside it first, then all renamed into place.

    Raises:
        FtbenchError: a folder cannot be made or a file written (a full disk, no permission), naming the path and
            the space the file needs; no file is written or replaced then, and no folder made is left.
    """
    staged: list[tuple[str, Path]] = []
    made: list[Path] = []
    path = next(iter(files), Path())
    try:
        for path, text in files.items():
            made += _missing_folders(path.parent)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if isinstance(exc, OSError):
            size = f"{len(files[path].encode()) / 2**20:.1f} MiB"
            raise FtbenchError(
                f"cannot write {path} ({exc.strerror or type(exc).__name__}; it needs {size}); free space there, "
                "fix its permissions or choose another folder"
            ) from exc
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def eval_path(results_dir: Path, key: str) -> Path:
    """Where the evaluation with cache key ``key`` is stored."""
    return results_dir / EVALS_DIR / f"{key}.json"


def _signed(data: dict[str, object]) -> str:
    """The digest of ``data`` as canonical JSON: ``sha256:HEX``, or with ``FTBENCH_RECORD_KEY`` set
    ``hmac-sha256:HEX`` under that key."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    key = os.environ.get(RECORD_KEY_ENV)
    if key:
        return "hmac-sha256:" + hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def content_digest(record: EvalRecord) -> str:
    """The digest of every field of ``record`` but ``digest`` (canonical JSON): ``sha256:HEX``, or with
    ``FTBENCH_RECORD_KEY`` set ``hmac-sha256:HEX`` under that key."""
    return _signed(json.loads(record.model_dump_json(exclude={"digest"})))


def run_digest(run: RunRecord) -> str:
    """The digest of every field of a run record but ``digest``, as ``content_digest``."""
    return _signed(json.loads(run.model_dump_json(exclude={"digest"})))


def _check_digest(path: Path, record: EvalRecord) -> None:
    """Refuse a record whose content is not what its digest says (edited by hand, or signed otherwise)."""
    _check_signature(path, record.digest, content_digest(record))


def _check_signature(path: Path, stored: str | None, expected: str) -> None:
    """Refuse a file whose ``stored`` digest is not the ``expected`` one, saying what that means."""
    if stored is not None and hmac.compare_digest(stored, expected):
        return
    stored_kind = (stored or "none:").split(":")[0]
    if stored_kind == "hmac-sha256" and not expected.startswith("hmac-"):
        raise FtbenchError(f"{path} is signed with a key; set {RECORD_KEY_ENV} to the key that wrote it")
    if stored_kind != "hmac-sha256" and expected.startswith("hmac-"):
        raise FtbenchError(
            f"{path} is not signed with the key in {RECORD_KEY_ENV}; re-run `ftbench run` with that key to rewrite it"
        )
    if stored_kind == "hmac-sha256":
        raise FtbenchError(
            f"{path} does not verify under the key in {RECORD_KEY_ENV}: it was signed with another key, or changed "
            f"after ftbench wrote it; set {RECORD_KEY_ENV} to the key that wrote it, or re-run `ftbench run` to "
            "evaluate it again"
        )
    raise FtbenchError(
        f"{path} was changed after ftbench wrote it (its content does not match its digest); delete it and re-run "
        "`ftbench run` to evaluate again"
    )


def store_eval(results_dir: Path, record: EvalRecord) -> EvalRecord:
    """Store an evaluation atomically, with the digest of its content, and return it as stored (digest set)."""
    stored = record.model_copy(update={"digest": content_digest(record)})
    write_atomic(eval_path(results_dir, record.key), stored.model_dump_json(indent=1))
    return stored


def save_eval(results_dir: Path, record: EvalRecord) -> Path:
    """Store an evaluation atomically, with the digest of its content, and return its path."""
    store_eval(results_dir, record)
    return eval_path(results_dir, record.key)


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


def _parse_eval(path: Path) -> EvalRecord:
    """One evaluation record of this schema version, as stored."""
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
    return record


def _read_eval(path: Path) -> EvalRecord:
    """One evaluation record, checked against its file name and its schema (not yet against its digest)."""
    record = _parse_eval(path)
    if not record.samples:
        raise FtbenchError(f"{path} holds no samples, so nothing in it can be compared; re-run `ftbench run`")
    if record.key != path.stem or record.request.key() != record.key:
        raise FtbenchError(
            f"{path} holds the evaluation {record.key} ({record.task}, {record.variant.name}@"
            f"{record.variant.precision}), not the one its name says; delete it and re-run `ftbench run`"
        )
    return record


def load_eval(path: Path) -> EvalRecord:
    """Read one evaluation record and check that it is the evaluation its file name says, unedited.

    Raises:
        FtbenchError: unreadable, not a record of this schema version, its key does not match its file name or
            its request, or its content does not match its digest.
    """
    record = _read_eval(path)
    _check_digest(path, record)
    return record


def cached_eval(results_dir: Path, key: str) -> EvalRecord | None:
    """The stored evaluation with this key, or None when absent or unreadable (it is then redone).

    Raises:
        FtbenchError: the record is there but was edited after it was written (or signed otherwise): a results
            directory someone changed is refused, not silently evaluated again.
    """
    path = eval_path(results_dir, key)
    if not path.is_file():
        return None
    try:
        record = _read_eval(path)
    except FtbenchError:
        return None
    _check_digest(path, record)
    return record


def save_run(results_dir: Path, record: RunRecord, known: Mapping[str, str] | None = None) -> Path:
    """Store the run record atomically, listing the content digest of each of its evaluations, and return its path
    (``store_run`` returns the record as stored).

    Args:
        results_dir: the run's folder.
        record: the run.
        known: digests of evaluations this process stored or verified (``key -> digest``); the others are read
            from their files and verified.

    Raises:
        FtbenchError: a listed evaluation is missing or not trustworthy.
    """
    store_run(results_dir, record, known)
    return results_dir / RUN_FILE


def store_run(results_dir: Path, record: RunRecord, known: Mapping[str, str] | None = None) -> RunRecord:
    """``save_run``, returning the run record as stored (its digests set)."""
    given = known or {}
    digests = {key: given[key] if key in given else _listed_digest(results_dir, key) for key in record.evaluations}
    listed = record.model_copy(update={"digests": digests, "digest": None})
    stored = listed.model_copy(update={"digest": run_digest(listed)})
    write_atomic(results_dir / RUN_FILE, json.dumps(stored.model_dump(mode="json"), indent=1))
    return stored


def _listed_digest(results_dir: Path, key: str) -> str:
    """The verified content digest of a stored evaluation that a run is about to list."""
    path = eval_path(results_dir, key)
    if not path.is_file():
        raise FtbenchError(f"{path} is missing, so the run cannot list it; re-run `ftbench run` to restore it")
    record = _parse_eval(path)
    _check_digest(path, record)
    return str(record.digest)


def load_run(results_dir: Path) -> RunRecord:
    """Read the run record of a results directory.

    Raises:
        FtbenchError: no run record, or not a valid one.
    """
    path = results_dir / RUN_FILE
    if not path.is_file():
        raise FtbenchError(f"{results_dir} holds no {RUN_FILE}; give a directory written by `ftbench run`")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FtbenchError(f"cannot read run record {path}; re-run `ftbench run` to rewrite it") from exc
    _check_schema_version(path, text)
    try:
        run = RunRecord.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        where = f": {first_error(exc).where}" if isinstance(exc, ValidationError) else ""
        raise FtbenchError(f"{path} is not a valid ftbench run record{where}; re-run `ftbench run`") from exc
    if run.digest is not None or os.environ.get(RECORD_KEY_ENV):
        _check_signature(path, run.digest, run_digest(run))
    twice = next((key for index, key in enumerate(run.evaluations) if key in run.evaluations[:index]), None)
    if twice is not None:
        raise FtbenchError(f"{path} lists the evaluation {twice} twice; re-run `ftbench run` to rewrite it")
    return run


def load_run_evals(results_dir: Path) -> list[EvalRecord]:
    """The evaluation records of the run stored in ``results_dir``, in run order, each verified.

    Raises:
        FtbenchError: the run lists no evaluation, or one is missing, not trustworthy or not the content the run
            lists.
    """
    run = load_run(results_dir)
    if not run.evaluations:
        raise FtbenchError(f"{results_dir / RUN_FILE} lists no evaluation; re-run `ftbench run` with at least one task")
    records = []
    for key in run.evaluations:
        path = eval_path(results_dir, key)
        if not path.is_file():
            raise FtbenchError(f"{path} is missing, though {RUN_FILE} lists it; re-run `ftbench run` to restore it")
        record = load_eval(path)
        _check_in_spec(path, run, record)
        listed = run.digests.get(key)
        if listed is None or not hmac.compare_digest(listed, str(record.digest)):
            raise FtbenchError(
                f"{path} is not the evaluation {results_dir / RUN_FILE} lists (their content digests differ); "
                "re-run `ftbench run` to restore it"
            )
        records.append(record)
    return records


def _check_in_spec(path: Path, run: RunRecord, record: EvalRecord) -> None:
    """Refuse an evaluation of a task or precision that the run's spec does not ask for (listed by hand, or copied
    from another run)."""
    spec = run.spec
    tasks = spec.get("tasks")
    names = {task.get("name") for task in tasks if isinstance(task, dict)} if isinstance(tasks, list) else set()
    precisions = spec.get("precisions")
    wanted = {str(p) for p in precisions} if isinstance(precisions, list) else set()
    for what, value, allowed in (("task", record.task, names), ("precision", str(record.request.precision), wanted)):
        if allowed and value not in allowed:
            raise FtbenchError(
                f"{path} is an evaluation of {what} {value!r}, which the spec in its {RUN_FILE} does not ask for (it "
                f"belongs to another run); remove it from {RUN_FILE} or re-run `ftbench run`"
            )
