"""The registry of ftbench tasks: a plain dict of the built-in tasks, and the one place where a task's name
becomes a ``Task``.

Names enter in two places: a spec's task entry (``resolve_task``) and a stored record's request
(``recorded_task``). A task a spec defines under its own name (``task: custom``) is built from its options each
time; nothing is registered globally, so reading a record never depends on what was parsed before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import ftbench.tasks.arc.task
import ftbench.tasks.countdown.task
import ftbench.tasks.perplexity.task
import ftbench.tasks.rewrite.task
import ftbench.tasks.ultrafeedback.task
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.request import EvalRequest
from ftbench.tasks.base import Task
from ftbench.tasks.custom.task import CustomOptions, custom_task

TASKS: dict[str, Task] = {
    task.name: task
    for module in (
        ftbench.tasks.countdown.task,
        ftbench.tasks.arc.task,
        ftbench.tasks.rewrite.task,
        ftbench.tasks.ultrafeedback.task,
        ftbench.tasks.perplexity.task,
    )
    for task in module.TASKS
}
"""The built-in tasks by name."""


def _custom(name: str, options: dict[str, Any]) -> Task:
    return custom_task(name, CustomOptions.parse(name, options))


KINDS: dict[str, Callable[[str, dict[str, Any]], Task]] = {"custom": _custom}
"""Kinds of tasks a spec defines under names of its own: kind -> builder from (name, options)."""


@lru_cache(maxsize=256)
def _defined(name: str, kind: str, options_json: str) -> Task:
    return KINDS[kind](name, json.loads(options_json))


def resolve_task(name: str, kind: str | None = None, options: dict[str, Any] | None = None) -> Task:
    """The task a spec entry names: the built-in task ``name``, or a task of ``kind`` defined by ``options``.

    Raises:
        FtbenchError: an unknown name or kind, a defined task named like a built-in one, or invalid options
            (naming the option); the message lists the valid names.
    """
    if kind is None:
        task = TASKS.get(name)
        if task is None:
            known = ", ".join(sorted(TASKS))
            raise FtbenchError(f"unknown task {name!r}; choose from {known}, or define one with task: custom")
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
