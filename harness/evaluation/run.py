"""``ftbench run``: plan every checkpoint × precision × task of a spec as requests, then evaluate them, reusing
what is stored.

Planning checks everything before any work: checkpoints, precisions against their engines, task options, judges
and reference variants. Evaluation loads each group of requests once (one variant, or for vLLM one base with
its adapters), stores each finished evaluation at once and atomically, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import NamedTuple

import torch

from harness.core.checkpoints import Checkpoint, CheckpointKind, content_hash, discover_checkpoints, resolve_checkpoint
from harness.core.checkpoints import weights_hash as checkpoint_weights_hash
from harness.core.errors import FtbenchError
from harness.core.precision import Precision
from harness.core.records import EvalRecord, RunRecord
from harness.core.request import Engine, EvalRequest
from harness.core.store import cached_eval, save_eval, save_run
from harness.engines import driver
from harness.evaluation.lock import results_lock
from harness.evaluation.outcome import Progress, evaluate_request
from harness.evaluation.provenance import collect_provenance
from harness.evaluation.spec import RunSpec, TaskSpec
from harness.evaluation.winrate import Judges, judged_dependencies, reference_variant
from tasks.registry import get_task
from tasks.ultrafeedback.task import WinRateOptions


@dataclass(frozen=True)
class PlannedEval:
    """One request of a run, with the checkpoint it names (for the record's lineage)."""

    request: EvalRequest
    checkpoint: Checkpoint
    reference_key: str | None = None
    """The key of the reference variant's request for the same task and repeat (win-rate tasks)."""

    @property
    def label(self) -> str:
        """``checkpoint@precision``."""
        return f"{self.checkpoint.name}@{self.request.precision}"


class RunEvent(NamedTuple):
    """Progress of a run, for the CLI to display."""

    position: int
    total: int
    variant: str
    task: str
    status: str
    """``loading``, ``evaluating``, ``progress``, ``cached`` or ``done``."""
    items: int = 0
    """Model requests finished so far in this evaluation (``progress``)."""
    tokens_per_second: float | None = None


class RunOutcome(NamedTuple):
    """Where a run's results went and what was computed versus reused."""

    results_dir: Path
    run: RunRecord
    evaluated: list[str]
    reused: list[str]


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
    precision runs dequantized on transformers).

    Raises:
        FtbenchError: a GGUF precision that does not fit the checkpoint.
    """
    if precision is Precision.GGUF and checkpoint.kind is not CheckpointKind.GGUF:
        raise FtbenchError(
            f"precision gguf evaluates a .gguf file at its own type, and {checkpoint.path} is a {checkpoint.kind} "
            "checkpoint; use gguf-f16, gguf-q8_0, gguf-q4_k_m, ... to export it"
        )
    if precision.is_gguf and precision is not Precision.GGUF and checkpoint.kind is CheckpointKind.GGUF:
        raise FtbenchError(
            f"{checkpoint.path} is already a GGUF file; evaluate it at precision gguf (its own type) or export a "
            "model directory"
        )
    if precision.is_gguf:
        return Engine.LLAMACPP
    if checkpoint.kind is CheckpointKind.GGUF:
        return Engine.HF
    return task.engine or spec.engine


def _data_hash(spec_task: TaskSpec) -> str | None:
    """The hash of the task's local data files, once its items are read and checked."""
    task = get_task(spec_task.name)
    options = task.parse_options(spec_task.options)
    task.check_items(options)
    paths = task.data_paths(options)
    if not paths:
        return None
    return hashlib.sha256("+".join(f"{p.name}:{content_hash(p)}" for p in paths).encode()).hexdigest()


def _dependencies(
    spec: RunSpec, task: TaskSpec, checkpoints: list[Checkpoint], weights: dict[Path, str]
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The judge and reference variant of a judged task, checked; nothing for other tasks."""
    if not get_task(task.name).judged:
        return {}, None
    options = WinRateOptions.model_validate(task.options)
    reference = reference_variant(options)
    if reference is None:
        return judged_dependencies(options, None), None
    name, precision = reference
    match = next((c for c in checkpoints if c.name == name), None)
    if match is None or precision not in spec.precisions:
        raise FtbenchError(
            f"reference variant {options.reference!r} of task {task.name} is not in this run; "
            "use CHECKPOINT@PRECISION of a checkpoint and precision of the run, or reference: dataset"
        )
    return judged_dependencies(options, f"{weights[match.path]}@{precision}"), reference


def _refuse_identical_weights(checkpoints: list[Checkpoint], weights: dict[Path, str]) -> None:
    seen: dict[str, Checkpoint] = {}
    for checkpoint in checkpoints:
        other = seen.setdefault(weights[checkpoint.path], checkpoint)
        if other is not checkpoint:
            raise FtbenchError(
                f"checkpoints {other.path} and {checkpoint.path} have identical weights; evaluate one of them "
                "(a stage that did not change its parent?)"
            )


def plan_run(spec: RunSpec) -> list[PlannedEval]:
    """Every evaluation of the run as a request; all input checks happen here, before any work.

    Variants that other variants' win-rate tasks use as reference come first; each variant's tasks follow in
    spec order, repeats after one another.

    Raises:
        FtbenchError: any bad input (checkpoint, precision for its engine, task option, judge, reference).
    """
    device = resolve_device(spec.device)
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
            info = get_task(task.name)
            definition, data = info.definition_hash(), _data_hash(task)
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
                    task_data_hash=data,
                    options=task.options,
                    generation=spec.task_generation(task) if info.generative else {},
                    chat_template=spec.task_chat_template(task),
                    limit=spec.task_limit(task),
                    seed=spec.seed,
                    batch_size=spec.batch_size,
                    repeat=repeat,
                    dependencies=dependencies[task.name],
                )
                driver(request.engine).check(request)
                plan.append(PlannedEval(request, checkpoint))
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
        if get_task(item.request.task).judged:
            reference = reference_variant(WinRateOptions.model_validate(item.request.options))
            if reference is not None:
                item = PlannedEval(
                    item.request, item.checkpoint, keys.get((*reference, item.request.task, item.request.repeat))
                )
        linked.append(item)
    return linked


def evaluate_group(
    group: list[PlannedEval],
    stored: Callable[[str], EvalRecord | None],
    judges: Judges,
    on_event: Callable[[PlannedEval, str, int, float | None], None],
) -> Iterator[EvalRecord]:
    """Load the group's engine once and evaluate each request in order, yielding each record as it finishes.

    Args:
        group: requests that one engine session serves.
        stored: the stored record of a key (references of win-rate tasks).
        judges: the run's judges.
        on_event: called with (item, status, items done, tokens per second).
    """
    on_event(group[0], "loading", 0, None)
    session = driver(group[0].request.engine).open([item.request for item in group])
    try:
        for item in group:
            on_event(item, "evaluating", 0, None)
            loaded = session.model_for(item.request)
            progress = Progress(loaded.count_tokens, partial(on_event, item, "progress"))
            record = evaluate_request(
                item.request, item.checkpoint, loaded, judges, stored, progress, item.reference_key
            )
            yield record
    finally:
        session.close()


def _groups(plan: list[PlannedEval]) -> list[list[PlannedEval]]:
    """Consecutive requests that share an engine session, in plan order."""
    groups: dict[object, list[PlannedEval]] = {}
    for item in plan:
        key = (item.request.engine, driver(item.request.engine).group(item.request))
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def run_spec(spec: RunSpec, force: bool = False, on_event: Callable[[RunEvent], None] | None = None) -> RunOutcome:
    """Evaluate a spec, storing each finished evaluation at once so that an interrupted run resumes.

    Args:
        spec: the run.
        force: re-evaluate even when a matching result is stored.
        on_event: called as evaluations start, progress, are found cached, or finish.

    Raises:
        FtbenchError: bad input (before any work), a results directory in use by another run, or an
            evaluation that failed.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    plan = plan_run(spec)
    out = spec.out
    notify = on_event or (lambda event: None)
    positions = {id(item): index for index, item in enumerate(plan, start=1)}

    def event(item: PlannedEval, status: str, items: int = 0, speed: float | None = None) -> None:
        notify(RunEvent(positions[id(item)], len(plan), item.label, item.request.task, status, items, speed))

    evaluated: list[str] = []
    reused: list[str] = []
    with results_lock(out):
        pending: list[PlannedEval] = []
        for item in plan:
            if not force and cached_eval(out, item.request.key()) is not None:
                reused.append(item.request.key())
                event(item, "cached")
            else:
                pending.append(item)
        judges = Judges(device=resolve_device(spec.device), cache_dir=out)
        for group in _groups(pending):
            for record in evaluate_group(group, lambda key: cached_eval(out, key), judges, event):
                save_eval(out, record)
                evaluated.append(record.key)
                event(next(item for item in group if item.request.key() == record.key), "done")
        run = RunRecord(
            name=spec.name,
            spec=spec.model_dump(mode="json"),
            provenance=collect_provenance(resolve_device(spec.device)),
            evaluations=[item.request.key() for item in plan],
            reused=reused,
            seed=spec.seed,
            started_at=started_at,
            wall_seconds=time.perf_counter() - started,
        )
        save_run(out, run)
    return RunOutcome(out, run, evaluated, reused)
