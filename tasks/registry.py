"""The registry of ftbench tasks: a plain dict from task name to the task each folder describes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import tasks.arc.task
import tasks.countdown.task
import tasks.perplexity.task
import tasks.rewrite.task
import tasks.ultrafeedback.task
from harness.core.errors import FtbenchError
from harness.core.records import EvalRecord
from tasks.base import Task
from tasks.custom.task import CustomOptions, custom_task

TASKS: dict[str, Task] = {
    task.name: task
    for module in (
        tasks.countdown.task,
        tasks.arc.task,
        tasks.rewrite.task,
        tasks.ultrafeedback.task,
        tasks.perplexity.task,
    )
    for task in module.TASKS
}


KINDS = ("custom",)
"""Kinds of tasks a spec defines under its own names."""
_DEFINED: dict[str, Task] = {}
"""Tasks defined in specs (or read back from their records) in this process, by name."""


def get_task(name: str) -> Task:
    """The task called ``name``: a built-in task, or one a spec defined.

    Raises:
        FtbenchError: no such task; the message lists the valid names.
    """
    task = TASKS.get(name) or _DEFINED.get(name)
    if task is None:
        known = ", ".join(sorted(TASKS))
        raise FtbenchError(f"unknown task {name!r}; choose from {known}, or define one with task: custom")
    return task


def define_task(name: str, kind: str, options: dict[str, Any]) -> Task:
    """Define (or redefine) the task ``name`` of ``kind`` from its options.

    Raises:
        FtbenchError: an unknown kind, a name of a built-in task, or invalid options (naming the option).
    """
    if kind not in KINDS:
        raise FtbenchError(f"unknown task kind {kind!r} for task {name}; choose from {', '.join(KINDS)}")
    if name in TASKS:
        raise FtbenchError(f"task name {name!r} is a built-in task; give your {kind} task another name")
    task = custom_task(name, CustomOptions.parse(name, options))
    _DEFINED[name] = task
    return task


def define_recorded(records: Iterable[EvalRecord]) -> list[EvalRecord]:
    """Define the tasks that stored records name, so their results can be read back; returns the records."""
    records = list(records)
    for record in records:
        if record.request.task_kind is not None:
            define_task(record.task, record.request.task_kind, record.request.options)
    return records
