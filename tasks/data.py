"""Where task data lives, and reading it with errors that name the file, the row and the field."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error, first_line
from ftbench.tasks.base import TaskOptions

DATA_DIR_ENV = "FTBENCH_DATA_DIR"
"""Environment variable naming the offline data folder (layout: ``<dir>/countdown/...``, ``<dir>/arc/...``)."""

Source = Literal["auto", "local", "hub"]
RowT = TypeVar("RowT", bound=BaseModel)


class DataOptions(TaskOptions):
    """Where a task reads its items: ``auto`` prefers the offline copy, ``local`` requires it, ``hub`` downloads."""

    source: Source = "auto"
    data_dir: str | None = None
    """The offline data folder; default ``$FTBENCH_DATA_DIR``, else ``../shared/data`` beside the project."""


def default_data_dir() -> Path:
    """The offline data folder: ``$FTBENCH_DATA_DIR``, else ``../shared/data`` beside the project.

    Raises:
        FtbenchError: ``$FTBENCH_DATA_DIR`` names a folder that does not exist.
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise FtbenchError(
                f"{DATA_DIR_ENV}={configured} is not a folder; point it at the offline data folder or unset it"
            )
        return path
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def data_folder(data_dir: str | Path | None = None) -> Path:
    """The offline data folder a task reads (``data_dir`` when given).

    Raises:
        FtbenchError: ``data_dir`` or ``$FTBENCH_DATA_DIR`` names a folder that does not exist.
    """
    if data_dir is None:
        return default_data_dir()
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FtbenchError(f"data_dir {data_dir} is not a folder; give the offline data folder")
    return path


def local_file(relative: str, data_dir: str | Path | None = None) -> Path | None:
    """The path of ``relative`` inside the data folder, or None when it is not there."""
    candidate = data_folder(data_dir) / relative
    return candidate if candidate.is_file() else None


def local_paths(relatives: Sequence[str], options: DataOptions) -> list[Path]:
    """The offline files among ``relatives`` that an evaluation with ``options`` reads (none from the hub)."""
    if options.source == "hub":
        return []
    return [path for name in relatives if (path := local_file(name, options.data_dir)) is not None]


def _parse(path: Path, text: str) -> list[Any]:
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FtbenchError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from exc
        if not isinstance(rows, list):
            raise FtbenchError(f"{path} must hold a JSON array of rows, not {type(rows).__name__}")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise FtbenchError(f"{path} line {number} is not valid JSON: {exc.msg}") from exc
    return rows


def read_rows(path: Path, row: type[RowT]) -> list[RowT]:
    """Read a JSON array or JSON-lines file, validating each row as ``row`` (read once per file version).

    Raises:
        FtbenchError: the file is unreadable, a line is not JSON, or a row lacks a field or has a wrong type
            (the message names the file, the row and the field).
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise FtbenchError(f"cannot read data file {path}; check the path or {DATA_DIR_ENV}") from exc
    return list(_read_rows(path, stat.st_mtime_ns, stat.st_size, row))


@lru_cache(maxsize=32)
def _read_rows(path: Path, mtime_ns: int, size: int, row: type[RowT]) -> tuple[RowT, ...]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark some editors write is not part of the rows
    except (OSError, UnicodeDecodeError) as exc:
        raise FtbenchError(f"cannot read data file {path}; check the path or {DATA_DIR_ENV}") from exc
    return tuple(validate_rows(_parse(path, text), row, str(path)))


def validate_rows(raw_rows: Sequence[Any], row: type[RowT], where: str) -> list[RowT]:
    """Each of ``raw_rows`` validated as ``row``.

    Raises:
        FtbenchError: a row lacks a field or has a wrong type (the message names ``where``, the row and the field).
    """
    parsed = []
    for index, raw in enumerate(raw_rows):
        try:
            parsed.append(row.model_validate(raw))
        except ValidationError as exc:
            spot = first_error(exc)
            if spot.kind == "missing":
                raise FtbenchError(f"{where} row {index} lacks the field {spot.where!r}") from exc
            raise FtbenchError(f"{where} row {index} field {spot.where!r}: {spot.message}") from exc
    return parsed


def test_split(task: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows as the ``test`` split that lm-eval's ``custom_dataset`` hooks return.

    Raises:
        FtbenchError: the selection is empty.
    """
    import datasets

    if not rows:
        raise FtbenchError(f"task {task} selected no items; check its data options (source, data_dir, count)")
    return {"test": datasets.Dataset.from_list(rows)}


class SourceRows(NamedTuple):
    """Rows from the offline copy or the hub, and where they came from (for error messages)."""

    rows: list[dict[str, Any]]
    where: str


def source_rows(
    relative: str | None, hub: tuple[str, str | None, str], row: type[BaseModel], options: DataOptions
) -> SourceRows:
    """Rows of a dataset split: ``local`` reads the offline copy, ``hub`` downloads, ``auto`` prefers local.

    Args:
        relative: the file inside the data folder (None: no offline copy exists).
        hub: the hub dataset id, config name and split.
        row: the schema every row must have.
        options: the source and data folder.

    Raises:
        FtbenchError: a missing offline file, a bad row, or a failed download.
    """
    path = local_file(relative, options.data_dir) if relative else None
    if options.source == "local" or (options.source == "auto" and path is not None):
        if path is None:
            raise FtbenchError(
                f"no offline copy {relative} in {data_folder(options.data_dir)}; set {DATA_DIR_ENV} or use source: hub"
            )
        return SourceRows([item.model_dump() for item in read_rows(path, row)], str(path))
    hub_id, name, split = hub
    where = f"{hub_id} {name or ''} {split}"
    return SourceRows([item.model_dump() for item in validate_rows(_download(hub_id, name, split), row, where)], where)


def _download(hub_id: str, name: str | None, split: str) -> list[dict[str, Any]]:
    import datasets

    try:
        return list(datasets.load_dataset(hub_id, name, split=split))
    except Exception as exc:  # the hub client raises many kinds (connection, offline mode, missing config)
        raise FtbenchError(
            f"cannot download {hub_id} ({split}) from the hub: {first_line(exc)}; "
            f"offline, set {DATA_DIR_ENV} to the data folder"
        ) from exc
