"""The registry of ftbench tasks, and the one place where a task's name becomes a ``Task``.

Every task folder enters the same way: a folder holding a ``task.py`` that exports ``TASKS`` (tasks by their own
names) and, for kinds of tasks a spec defines under a name of its own, ``KINDS`` (kind -> builder from the name and
its options). The built-in folders are the ones beside this file; folders named in ``FTBENCH_TASK_PATH``
(``os.pathsep``-separated) enter after them, so a new task folder needs no edit here or anywhere else.

Names enter in two places: a spec's task entry (``resolve_task``) and a stored record's request
(``recorded_task``). A task a spec defines (``task: custom``) is built from its options each time; nothing is
registered globally, so reading a record never depends on what was parsed before.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.request import EvalRequest
from ftbench.tasks.base import Task

TASK_PATH_ENV = "FTBENCH_TASK_PATH"
"""Folders of task folders beyond the built-in ones (``os.pathsep``-separated)."""
BUILT_IN = Path(__file__).resolve().parent

TaskKind = Callable[[str, dict[str, Any]], Task]
"""Builds a task a spec defines: (its name, its options) -> the task."""


class Registry(NamedTuple):
    """Every task by name, and every kind of task a spec can define."""

    tasks: dict[str, Task]
    kinds: dict[str, TaskKind]


def _module(folder: Path) -> ModuleType:
    """A task folder's ``task.py``: a built-in one under its package name, another loaded from its file."""
    if folder.parent == BUILT_IN:
        return importlib.import_module(f"ftbench.tasks.{folder.name}.task")
    name = f"ftbench_task_{hashlib.sha256(str(folder).encode()).hexdigest()[:12]}_{folder.name}"
    spec = importlib.util.spec_from_file_location(name, folder / "task.py")
    if spec is None or spec.loader is None:
        raise FtbenchError(f"cannot load {folder / 'task.py'}; check the task folder")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_folders(roots: Sequence[Path]) -> list[Path]:
    """The task folders (each holding a ``task.py``) directly under ``roots``, by root and name."""
    return [folder for root in roots for folder in sorted(root.iterdir()) if (folder / "task.py").is_file()]


def discover(roots: Sequence[Path]) -> Registry:
    """Collect the tasks and kinds every task folder under ``roots`` exports, each task's declaration checked.

    Raises:
        FtbenchError: two folders export the same task or kind name, or a task declares its metrics otherwise
            than its lm-eval YAML lists them.
    """
    tasks: dict[str, Task] = {}
    kinds: dict[str, TaskKind] = {}
    for folder in task_folders(roots):
        module = _module(folder)
        exported: Sequence[Task] = getattr(module, "TASKS", ())
        defined: Mapping[str, TaskKind] = getattr(module, "KINDS", {})
        for name in [task.name for task in exported] + list(defined):
            if name in tasks or name in kinds:
                raise FtbenchError(f"task folder {folder} exports {name!r}, which another task folder has; rename one")
        for task in exported:
            task.check_declaration()
        tasks |= {task.name: task for task in exported}
        kinds |= dict(defined)
    return Registry(tasks, kinds)


def _roots() -> list[Path]:
    extra = [Path(part) for part in os.environ.get(TASK_PATH_ENV, "").split(os.pathsep) if part.strip()]
    missing = [str(path) for path in extra if not path.is_dir()]
    if missing:
        raise FtbenchError(f"{TASK_PATH_ENV} names {', '.join(missing)}, which is not a folder; fix the path")
    return [BUILT_IN, *extra]


REGISTRY = discover(_roots())
TASKS: dict[str, Task] = REGISTRY.tasks
"""Every task by name: the built-in ones, then those of ``FTBENCH_TASK_PATH``."""
KINDS: dict[str, TaskKind] = REGISTRY.kinds
"""Kinds of tasks a spec defines under names of its own: kind -> builder from (name, options)."""


@lru_cache(maxsize=256)
def _defined(name: str, kind: str, options_json: str) -> Task:
    return KINDS[kind](name, json.loads(options_json))


def resolve_task(name: str, kind: str | None = None, options: dict[str, Any] | None = None) -> Task:
    """The task a spec entry names: the task ``name``, or a task of ``kind`` defined by ``options``.

    Raises:
        FtbenchError: an unknown name or kind, a defined task named like a registered one, or invalid options
            (naming the option); the message lists the valid names.
    """
    if kind is None:
        task = TASKS.get(name)
        if task is None:
            known = ", ".join(sorted(TASKS))
            defined = " or ".join(f"task: {k}" for k in KINDS)
            raise FtbenchError(f"unknown task {name!r}; choose from {known}, or define one with {defined}")
        return task
    if kind not in KINDS:
        raise FtbenchError(f"unknown task kind {kind!r} for task {name}; choose from {', '.join(KINDS)}")
    if name in TASKS:
        raise FtbenchError(f"task name {name!r} is a built-in task; give your {kind} task another name")
    return _defined(name, kind, json.dumps(options or {}, sort_keys=True, default=str))


def recorded_task(request: EvalRequest) -> Task:
    """The task a stored request evaluated (a defined task is rebuilt from the options the request carries).

    Raises:
        FtbenchError: the request names a task this version does not have.
    """
    return resolve_task(request.task, request.task_kind, dict(request.options) if request.task_kind else None)
