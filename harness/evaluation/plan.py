"""Planning a run: every checkpoint × precision × task of a spec as a checked request, before any work.

Planning checks everything: checkpoints, precisions against their engines, task options and data, judges and
reference variants. It also knows how many items each request evaluates, so schedulers can put the largest work
first.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch

from ftbench.harness.core.checkpoints import (
    Checkpoint,
    CheckpointKind,
    content_hash,
    discover_checkpoints,
    resolve_checkpoint,
)
from ftbench.harness.core.checkpoints import weights_hash as checkpoint_weights_hash
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.request import Engine, EvalRequest
from ftbench.harness.engines import driver
from ftbench.harness.engines.session import PlannedEval
from ftbench.harness.evaluation.spec import RunSpec, TaskSpec
from ftbench.harness.evaluation.winrate import judged_dependencies


def resolve_device(requested: str) -> str:
    """The device of a run: ``auto`` picks CUDA when available.

    Raises:
        FtbenchError: CUDA asked for but not available.
    """
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise FtbenchError("device cuda asked for but no GPU is available; use --device cpu or auto")
    return requested


def spec_checkpoints(spec: RunSpec) -> list[Checkpoint]:
    """The checkpoints a spec names, explicit ones first, then those found in ``checkpoints_dir``."""
    found = [resolve_checkpoint(path, spec.base) for path in spec.checkpoints]
    if spec.checkpoints_dir is not None:
        found += discover_checkpoints(spec.checkpoints_dir)
    return list({checkpoint.path.resolve(): checkpoint for checkpoint in found}.values())


def choose_engine(spec: RunSpec, task: TaskSpec, checkpoint: Checkpoint, precision: Precision) -> Engine:
    """llama.cpp for GGUF precisions; otherwise the task's engine, else the run's (a GGUF file at a float
    precision runs dequantized on transformers). Whether the engine can run it is the engine's ``check``."""
    if precision.is_gguf:
        return Engine.LLAMACPP
    if checkpoint.kind is CheckpointKind.GGUF:
        return Engine.HF
    return task.engine or spec.engine


class TaskData(NamedTuple):
    """A task's selected items, read and checked: their count and the hash of the files they come from."""

    items: int
    data_hash: str | None


def task_data(spec_task: TaskSpec) -> TaskData:
    """Read and check the task's items; hash its local data files."""
    task, options = spec_task.definition, spec_task.parsed_options
    items = task.check_items(options)
    paths = task.data_paths(options)
    if not paths:
        return TaskData(items, None)
    digest = hashlib.sha256("+".join(f"{p.name}:{content_hash(p)}" for p in paths).encode()).hexdigest()
    return TaskData(items, digest)


def _dependencies(
    spec: RunSpec, task: TaskSpec, checkpoints: list[Checkpoint], weights: dict[Path, str]
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The judge and reference variant of a judged task, checked; nothing for other tasks."""
    judging = task.definition.judging
    if judging is None:
        return {}, None
    judge = judging.judge(task.parsed_options)
    reference = judging.reference_variant(task.parsed_options)
    if reference is None:
        return judged_dependencies(judge, None), None
    name, precision = reference
    match = next((c for c in checkpoints if c.name == name), None)
    if match is None or precision not in spec.precisions:
        raise FtbenchError(
            f"reference variant {judging.reference(task.parsed_options)!r} of task {task.name} is not in this run; "
            "use CHECKPOINT@PRECISION of a checkpoint and precision of the run, or reference: dataset"
        )
    return judged_dependencies(judge, f"{weights[match.path]}@{precision}"), reference


def _planned(request: EvalRequest, checkpoint: Checkpoint, task: TaskSpec, data: TaskData) -> PlannedEval:
    """The planned evaluation of a request: how many items it evaluates and, for an ordered one, which.

    Raises:
        FtbenchError: an order that starts beyond the selected items.
    """
    selected = min(data.items, request.limit or data.items)
    doc_ids = tuple(request.order.positions(selected)) if request.order is not None else None
    if doc_ids == ():
        raise FtbenchError(f"task {task.name} selects {selected} items, none in the order's slice; give one within")
    count = len(doc_ids) if doc_ids is not None else selected
    return PlannedEval(request, checkpoint, task.definition, task.parsed_options, items=count, doc_ids=doc_ids)


def _refuse_identical_weights(checkpoints: list[Checkpoint], weights: dict[Path, str]) -> None:
    seen: dict[str, Checkpoint] = {}
    for checkpoint in checkpoints:
        other = seen.setdefault(weights[checkpoint.path], checkpoint)
        if other is not checkpoint:
            raise FtbenchError(
                f"checkpoints {other.path} and {checkpoint.path} have identical weights; evaluate one of them "
                "(a stage that did not change its parent?)"
            )


def plan_run(spec: RunSpec, device: str | None = None) -> list[PlannedEval]:
    """Every evaluation of the run as a request; all input checks happen here, before any work.

    Variants that other variants' win-rate tasks use as reference come first; each variant's tasks follow in
    spec order, repeats after one another.

    Args:
        spec: the run.
        device: the device that evaluates (a cluster's, resolved from its resources); None resolves the spec's
            device on this machine.

    Raises:
        FtbenchError: any bad input (checkpoint, precision for its engine, task option, judge, reference).
    """
    device = device or resolve_device(spec.device)
    checkpoints = spec_checkpoints(spec)
    weights = {checkpoint.path: checkpoint_weights_hash(checkpoint) for checkpoint in checkpoints}
    _refuse_identical_weights(checkpoints, weights)
    dependencies: dict[str, dict[str, str]] = {}
    references: set[tuple[str, str]] = set()
    for task in spec.tasks:
        dependencies[task.name], reference = _dependencies(spec, task, checkpoints, weights)
        references |= {reference} if reference else set()
    variants = [(checkpoint, precision) for checkpoint in checkpoints for precision in spec.precisions]
    variants.sort(key=lambda v: (v[0].name, v[1].value) not in references)
    plan = []
    for checkpoint, precision in variants:
        for task in spec.tasks:
            if task.precisions is not None and precision not in task.precisions:
                continue
            info = task.definition
            definition, data = info.definition_hash(), task_data(task)
            for repeat in range(spec.task_repeats(task)):
                request = EvalRequest(
                    checkpoint=str(checkpoint.path),
                    base=str(checkpoint.base) if checkpoint.base else None,
                    weights_hash=weights[checkpoint.path],
                    precision=precision,
                    engine=choose_engine(spec, task, checkpoint, precision),
                    device=device,
                    task=task.name,
                    task_kind=task.task,
                    task_definition_hash=definition,
                    task_data_hash=data.data_hash,
                    options=task.options,
                    generation=spec.task_generation(task) if info.generative else {},
                    chat_template=spec.task_chat_template(task),
                    limit=spec.task_limit(task),
                    seed=spec.seed,
                    batch_size=spec.batch_size,
                    repeat=repeat,
                    dependencies=dependencies[task.name],
                    order=spec.order,
                )
                planned = _planned(request, checkpoint, task, data)
                driver(request.engine).check(planned)
                plan.append(planned)
    return _with_reference_keys(plan, references)


def _with_reference_keys(plan: list[PlannedEval], references: set[tuple[str, str]]) -> list[PlannedEval]:
    """Each win-rate request with the key of its reference variant's request (same task and repeat)."""
    if not references:
        return plan
    keys = {
        (item.checkpoint.name, item.request.precision.value, item.request.task, item.request.repeat): item.request.key()
        for item in plan
    }
    linked = []
    for item in plan:
        if item.task.judging is not None:
            reference = item.task.judging.reference_variant(item.options)
            if reference is not None:
                key = keys.get((*reference, item.request.task, item.request.repeat))
                item = replace(item, reference_key=key)
        linked.append(item)
    return linked
