"""ftbench: evaluation-first benchmarking of the fine-tuning lifecycle.

The one installed namespace. The repository's folders are its sub-packages: ``ftbench.harness`` (core, engines,
evaluation, compare, app), ``ftbench.tasks``, ``ftbench.trainers`` and ``ftbench.reports``. The names below are the
public Python API; each is imported on first use, so ``import ftbench`` stays light (no torch, no lm-eval).
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "FtbenchError": "ftbench.harness.core.errors",
    "EvalRequest": "ftbench.harness.core.request",
    "Precision": "ftbench.harness.core.precision",
    "EvalRecord": "ftbench.harness.core.records",
    "SampleRecord": "ftbench.harness.core.records",
    "Task": "ftbench.tasks.base",
    "resolve_task": "ftbench.tasks.registry",
    "TASKS": "ftbench.tasks.registry",
    "FtbenchCallback": "ftbench.harness.evaluation.callback",
    "RunSpec": "ftbench.harness.evaluation.spec",
    "load_spec": "ftbench.harness.evaluation.spec",
    "parse_spec": "ftbench.harness.evaluation.spec",
    "run_spec": "ftbench.harness.evaluation.run",
    "Event": "ftbench.harness.core.events",
    "EventKind": "ftbench.harness.core.events",
}
"""Public name -> the module that defines it."""

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ftbench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
