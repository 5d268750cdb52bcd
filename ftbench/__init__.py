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
    "get_task": "ftbench.tasks.registry",
    "FtbenchCallback": "ftbench.harness.evaluation.callback",
}
"""Public name -> the module that defines it."""

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ftbench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
