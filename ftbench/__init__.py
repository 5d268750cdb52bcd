"""ftbench: evaluation-first benchmarking of the fine-tuning lifecycle.

The one installed namespace. The repository's folders are its sub-packages: ``ftbench.harness`` (core, engines,
evaluation, compare, index, app), ``ftbench.tasks``, ``ftbench.trainers`` and ``ftbench.reports``. The names below
are the public Python API. Each is imported on first use, so ``import ftbench`` stays light (no torch, no lm-eval);
the ``TYPE_CHECKING`` block gives every name its type for mypy and editors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftbench.harness.app.callback import FtbenchCallback
    from ftbench.harness.core.errors import FtbenchError
    from ftbench.harness.core.events import (
        CachedEvent,
        DoneEvent,
        EvaluatingEvent,
        Event,
        EventSink,
        LoadingEvent,
        ProgressEvent,
        StageEvent,
        TrainingEvent,
    )
    from ftbench.harness.core.precision import Precision
    from ftbench.harness.core.records import EvalRecord, SampleRecord
    from ftbench.harness.core.request import EvalRequest
    from ftbench.harness.evaluation.run import RunOutcome, run_spec
    from ftbench.harness.evaluation.spec import RunSpec, load_spec, parse_spec
    from ftbench.harness.index.frames import evaluations_df, metrics_df, samples_df
    from ftbench.tasks.base import Task
    from ftbench.tasks.registry import TASKS, resolve_task

_PUBLIC = {
    "FtbenchError": "ftbench.harness.core.errors",
    "EvalRequest": "ftbench.harness.core.request",
    "Precision": "ftbench.harness.core.precision",
    "EvalRecord": "ftbench.harness.core.records",
    "SampleRecord": "ftbench.harness.core.records",
    "Task": "ftbench.tasks.base",
    "resolve_task": "ftbench.tasks.registry",
    "TASKS": "ftbench.tasks.registry",
    "FtbenchCallback": "ftbench.harness.app.callback",
    "RunSpec": "ftbench.harness.evaluation.spec",
    "load_spec": "ftbench.harness.evaluation.spec",
    "parse_spec": "ftbench.harness.evaluation.spec",
    "run_spec": "ftbench.harness.evaluation.run",
    "RunOutcome": "ftbench.harness.evaluation.run",
    "Event": "ftbench.harness.core.events",
    "EventSink": "ftbench.harness.core.events",
    "LoadingEvent": "ftbench.harness.core.events",
    "EvaluatingEvent": "ftbench.harness.core.events",
    "ProgressEvent": "ftbench.harness.core.events",
    "CachedEvent": "ftbench.harness.core.events",
    "DoneEvent": "ftbench.harness.core.events",
    "TrainingEvent": "ftbench.harness.core.events",
    "StageEvent": "ftbench.harness.core.events",
    "evaluations_df": "ftbench.harness.index.frames",
    "metrics_df": "ftbench.harness.index.frames",
    "samples_df": "ftbench.harness.index.frames",
}
"""Public name -> the module that defines it (the same names as the ``TYPE_CHECKING`` imports above)."""

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ftbench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
