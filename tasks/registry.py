"""The registry of ftbench tasks: a plain dict from task name to the task each folder describes."""

from __future__ import annotations

import tasks.arc.task
import tasks.countdown.task
import tasks.perplexity.task
import tasks.rewrite.task
import tasks.ultrafeedback.task
from harness.core.errors import FtbenchError
from tasks.base import Task

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


def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        FtbenchError: no such task; the message lists the valid names.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise FtbenchError(f"unknown task {name!r}; choose from {', '.join(sorted(TASKS))}") from None
