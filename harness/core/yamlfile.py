"""Reading YAML settings files: one mapping per file, errors that keep the line and the cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import FtbenchError


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: cause`` of a YAML error, as far as the parser knows them."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def read_yaml_mapping(path: Path, what: str, fix: str) -> dict[str, Any]:
    """The mapping in a YAML file.

    Args:
        path: the file.
        what: how the message names the file, e.g. ``spec file``.
        fix: what to do when the file is missing.

    Raises:
        FtbenchError: the file is missing, is not YAML (with the line and the cause), or holds something other
            than a mapping.
    """
    if not path.is_file():
        raise FtbenchError(f"{what} {path} does not exist; {fix}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise FtbenchError(f"{what} {path} is not UTF-8 text; save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise FtbenchError(f"{what} {path} is not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise FtbenchError(f"{what} {path} must hold a mapping of keys, not {type(data).__name__}")
    return data
