"""Reading YAML settings files: one mapping per file, errors that keep the line and the cause, and caps on size
and on aliases so that a hostile file cannot keep the parser (or what reads its values) busy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftbench.harness.core.errors import FtbenchError

MAX_YAML_BYTES = 1 << 20
"""Settings files are small: a spec, a policy or a config over 1 MiB is refused unread."""
MAX_YAML_ALIASES = 100
"""``*alias`` references allowed in one file (nested aliases can expand a few bytes into billions of values)."""


class _TooManyAliases(yaml.YAMLError):
    """Raised by the loader past ``MAX_YAML_ALIASES``."""


class _CappedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting aliases."""

    aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:  # type: ignore[override]
        """Count an alias before composing it."""
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _TooManyAliases(f"more than {MAX_YAML_ALIASES} aliases")
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


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
        FtbenchError: the file is missing, over ``MAX_YAML_BYTES`` or ``MAX_YAML_ALIASES``, is not YAML (with the
            line and the cause), or holds something other than a mapping.
    """
    if not path.is_file():
        raise FtbenchError(f"{what} {path} does not exist; {fix}")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise FtbenchError(
            f"{what} {path} is {size / 2**20:.1f} MiB, over the {MAX_YAML_BYTES >> 20} MiB a settings file may be; "
            "keep data in the files it names, not in the file itself"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CappedLoader) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise FtbenchError(f"{what} {path} cannot be read as UTF-8 text; check its permissions and encoding") from exc
    except _TooManyAliases as exc:
        raise FtbenchError(f"{what} {path} uses {exc}; write the values out instead") from exc
    except yaml.YAMLError as exc:
        raise FtbenchError(f"{what} {path} is not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise FtbenchError(f"{what} {path} must hold a mapping of keys, not {type(data).__name__}")
    return data
