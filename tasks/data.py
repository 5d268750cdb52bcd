"""Where task data lives, and reading it with errors that name the file, the row and the field."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import datasets

from harness.errors import FtbenchError

DATA_DIR_ENV = "FTBENCH_DATA_DIR"
"""Environment variable naming the offline data folder (layout: ``<dir>/countdown/...``, ``<dir>/arc/...``)."""


def default_data_dir() -> Path:
    """The offline data folder: ``$FTBENCH_DATA_DIR``, else ``../shared/data`` beside the project."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def local_file(relative: str, data_dir: str | Path | None = None) -> Path | None:
    """The path of ``relative`` inside the data folder, or None when it is not there."""
    path = Path(data_dir).expanduser() if data_dir else default_data_dir()
    candidate = path / relative
    return candidate if candidate.is_file() else None


def read_rows(path: Path, required: Iterable[str]) -> list[dict[str, Any]]:
    """Read a JSON array or JSON-lines file, checking that every row has the ``required`` fields.

    Raises:
        FtbenchError: the file is unreadable, a line is not JSON, or a row lacks a field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FtbenchError(f"cannot read data file {path}: {exc.strerror}; check {DATA_DIR_ENV}") from exc
    try:
        if path.suffix == ".json":
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise FtbenchError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    fields = list(required)
    for index, row in enumerate(rows):
        missing = [field for field in fields if not isinstance(row, dict) or field not in row]
        if missing:
            raise FtbenchError(
                f"{path} row {index} lacks the field {missing[0]!r}; every row needs {', '.join(fields)}"
            )
    return rows


def test_split(task: str, rows: list[dict[str, Any]]) -> dict[str, datasets.Dataset]:
    """Rows as the ``test`` split that lm-eval's ``custom_dataset`` hooks return.

    Raises:
        FtbenchError: the selection is empty.
    """
    if not rows:
        raise FtbenchError(f"task {task} selected no items; check its data options (source, data_dir, count)")
    return {"test": datasets.Dataset.from_list(rows)}


class SourceRows(NamedTuple):
    """Rows from the offline copy or the hub, and where they came from (for error messages)."""

    rows: list[dict[str, Any]]
    where: str


def source_rows(
    relative: str | None,
    hub: tuple[str, str | None, str],
    fields: Iterable[str],
    source: str = "auto",
    data_dir: str | None = None,
) -> SourceRows:
    """Rows of a dataset split: ``local`` reads the offline copy, ``hub`` downloads, ``auto`` prefers local.

    Args:
        relative: the file inside the data folder (None: no offline copy exists).
        hub: the hub dataset id, config name and split.
        fields: the fields every offline row must have.
        source: auto, local or hub.
        data_dir: the offline data folder; defaults to ``$FTBENCH_DATA_DIR`` or ``../shared/data``.

    Raises:
        FtbenchError: an unknown source, a missing offline file, or a row without a field.
    """
    if source not in ("auto", "local", "hub"):
        raise FtbenchError(f"unknown data source {source!r}; use auto, local or hub")
    path = local_file(relative, data_dir) if relative else None
    if source == "local" or (source == "auto" and path is not None):
        if path is None:
            raise FtbenchError(f"no offline copy {relative} in the data folder; set {DATA_DIR_ENV} or use source: hub")
        return SourceRows(read_rows(path, fields), str(path))
    hub_id, name, split = hub
    return SourceRows(list(datasets.load_dataset(hub_id, name, split=split)), f"{hub_id} {name or ''} {split}")
