"""Evaluating one task on one checkpoint the way a run does (spec, plan, engine), for tests that check numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.engines import driver
from ftbench.harness.evaluation.lmeval import TaskRun, evaluate_task
from ftbench.harness.evaluation.run import plan_run
from ftbench.harness.evaluation.spec import parse_spec


def evaluate(
    model: Path,
    task: str,
    *,
    precision: str = "fp32",
    options: dict[str, Any] | None = None,
    generation: dict[str, Any] | None = None,
    chat_template: bool | None = None,
    limit: int | None = None,
    seed: int = 1,
    batch_size: int = 8,
    kind: str | None = None,
) -> TaskRun:
    """``task`` evaluated on ``model`` at ``precision`` on the CPU, as ``ftbench run`` would, without storing it."""
    entry: dict[str, Any] = {"name": task, "options": options or {}, "generation": generation or {}}
    if kind is not None:
        entry["task"] = kind
    if chat_template is not None:
        entry["chat_template"] = chat_template
    spec = parse_spec(
        {
            "checkpoints": [str(model)],
            "precisions": [precision],
            "tasks": [entry],
            "limit": limit,
            "seed": seed,
            "batch_size": batch_size,
            "device": "cpu",
        },
        "test",
    )
    (item,) = plan_run(spec)
    session = driver(item.request.engine).open([item])
    try:
        return evaluate_task(session.model_for(item).lm, item.request, item.task, item.options)
    finally:
        session.close()


class Loaded(NamedTuple):
    """A variant loaded by the transformers engine, as a test inspects it."""

    model: Any
    tokenizer: Any
    footprint_bytes: int
    weights_hash: str
    notes: list[str]


def load(checkpoint: Path, precision: str, base: Path | None = None) -> Loaded:
    """``checkpoint`` at ``precision`` on the CPU, loaded by the engine a run would use.

    Raises:
        FtbenchError: the precision cannot run here, or the checkpoint cannot be loaded.
    """
    spec = parse_spec(
        {
            "checkpoints": [str(checkpoint)],
            "base": str(base) if base else None,
            "precisions": [precision],
            "tasks": ["arc_easy"],
            "device": "cpu",
        },
        "test",
    )
    (item,) = plan_run(spec)
    loaded = driver(item.request.engine).open([item]).model_for(item)
    lm: Any = loaded.lm
    return Loaded(lm.model, lm.tokenizer, loaded.footprint_bytes, item.request.weights_hash, loaded.notes)
