"""``ftbench run``: evaluate every checkpoint × precision × task of a spec, reusing what is cached."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import NamedTuple

import torch

from harness.cache import EvalKey, make_key
from harness.checkpoints import Checkpoint, discover_checkpoints, resolve_checkpoint
from harness.errors import FtbenchError
from harness.judges import JudgeSpec, LLMJudge, RewardModelJudge, judge_identity, load_judge
from harness.lmeval import EvalModel, TaskRun, evaluate_task, make_lm
from harness.measure import PeakMemory, release_memory
from harness.provenance import collect_provenance
from harness.results import (
    EvalRecord,
    MetricValue,
    Performance,
    RunRecord,
    SampleRecord,
    VariantInfo,
    cached_eval,
    save_eval,
    save_run,
)
from harness.spec import RunSpec, TaskSpec
from harness.statistics import bootstrap_stderr
from harness.variants import LoadedVariant, check_variant, default_device, load_variant, variant_weights_hash
from harness.winrate import DATASET_REFERENCE, judge_samples, parse_winrate_options
from tasks.registry import get_task


@dataclass(frozen=True)
class PlannedEval:
    """One variant × task of a run, with its cache key."""

    checkpoint: Checkpoint
    precision: str
    task: TaskSpec
    key: EvalKey


class RunEvent(NamedTuple):
    """Progress of a run, for the CLI to display."""

    position: int
    total: int
    checkpoint: str
    precision: str
    task: str
    status: str
    """``loading``, ``evaluating``, ``cached`` or ``done``."""


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
        return default_device()
    if requested == "cuda" and not torch.cuda.is_available():
        raise FtbenchError("device cuda asked for but no GPU is available; use --device cpu or auto")
    return requested


def spec_checkpoints(spec: RunSpec) -> list[Checkpoint]:
    """The checkpoints a spec names, explicit ones first, then those found in ``checkpoints_dir``."""
    found = [resolve_checkpoint(path, spec.base) for path in spec.checkpoints]
    if spec.checkpoints_dir is not None:
        found += discover_checkpoints(spec.checkpoints_dir)
    return list({checkpoint.path.resolve(): checkpoint for checkpoint in found}.values())


def _judged_dependencies(
    spec: RunSpec, task: TaskSpec, checkpoints: list[Checkpoint], weights: dict[Path, str]
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """The judge's identity and the reference variant (name, precision) of a win-rate task, checked."""
    options = parse_winrate_options(task.name, task.options)
    dependencies = {"judge": judge_identity(options.judge), "judge_kind": options.judge.kind}
    if options.reference == DATASET_REFERENCE:
        return dependencies | {"reference": DATASET_REFERENCE}, None
    name, _, precision = options.reference.partition("@")
    match = next((c for c in checkpoints if c.name == name), None)
    if match is None or precision not in spec.precisions:
        raise FtbenchError(
            f"reference variant {options.reference!r} of task {task.name} is not in this run; "
            f"use CHECKPOINT@PRECISION of a checkpoint and precision of the run, or reference: dataset"
        )
    return dependencies | {"reference": f"{weights[match.path]}@{precision}"}, (name, precision)


def plan_run(spec: RunSpec, device: str) -> list[PlannedEval]:
    """Every evaluation of the run with its key; all input checks happen here, before any work.

    Variants that other variants' win-rate tasks use as reference come first.
    """
    checkpoints = spec_checkpoints(spec)
    for checkpoint in checkpoints:
        for precision in spec.precisions:
            check_variant(checkpoint, precision, device)
    weights = {checkpoint.path: variant_weights_hash(checkpoint) for checkpoint in checkpoints}
    dependencies: dict[str, dict[str, str]] = {}
    references: set[tuple[str, str]] = set()
    for task in spec.tasks:
        if get_task(task.name).judged:
            dependencies[task.name], reference = _judged_dependencies(spec, task, checkpoints, weights)
            references |= {reference} if reference else set()
    variants = [(checkpoint, precision) for checkpoint in checkpoints for precision in spec.precisions]
    variants.sort(key=lambda v: (v[0].name, v[1]) not in references)
    plan = []
    for checkpoint, precision in variants:
        for task in spec.tasks:
            if task.precisions is not None and precision not in task.precisions:
                continue
            generation = spec.task_generation(task) if get_task(task.name).generative else {}
            key = make_key(
                weights_hash=weights[checkpoint.path],
                precision=precision,
                device=device,
                task=task.name,
                task_options=task.options,
                generation={**generation, "apply_chat_template": spec.apply_chat_template},
                limit=spec.task_limit(task),
                seed=spec.seed,
                batch_size=spec.batch_size,
                dependencies=dependencies.get(task.name),
            )
            plan.append(PlannedEval(checkpoint, precision, task, key))
    return plan


def run_spec(spec: RunSpec, force: bool = False, on_event: Callable[[RunEvent], None] | None = None) -> RunOutcome:
    """Evaluate a spec, storing each finished evaluation at once so that an interrupted run resumes.

    Args:
        spec: the run.
        force: re-evaluate even when a matching result is stored.
        on_event: called as each evaluation starts, is found cached, or finishes.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    device = resolve_device(spec.device)
    plan = plan_run(spec, device)
    out = spec.out
    context = _Context(spec, device, {(p.checkpoint.name, p.precision, p.task.name): p.key.digest() for p in plan})
    notify = on_event or (lambda event: None)
    evaluated: list[str] = []
    reused: list[str] = []
    position = 0
    for (_, precision), group in groupby(plan, key=lambda p: (p.checkpoint.path, p.precision)):
        items = list(group)
        pending = []
        for item in items:
            position += 1
            digest = item.key.digest()
            if not force and cached_eval(out, digest) is not None:
                reused.append(digest)
                notify(_event(position, len(plan), item, "cached"))
            else:
                pending.append((position, item))
        if not pending:
            continue
        notify(_event(pending[0][0], len(plan), pending[0][1], "loading"))
        variant = load_variant(items[0].checkpoint, precision, device)
        lm = make_lm(variant, spec.batch_size)
        for index, item in pending:
            notify(_event(index, len(plan), item, "evaluating"))
            record = _evaluate(context, variant, lm, item)
            save_eval(out, record)
            evaluated.append(record.key)
            notify(_event(index, len(plan), item, "done"))
        del lm, variant
        release_memory()
    context.judges.clear()
    run = RunRecord(
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        provenance=collect_provenance(device),
        evaluations=[item.key.digest() for item in plan],
        reused=reused,
        seed=spec.seed,
        started_at=started_at,
        wall_seconds=time.perf_counter() - started,
    )
    save_run(out, run)
    return RunOutcome(out, run, evaluated, reused)


def _event(index: int, total: int, item: PlannedEval, status: str) -> RunEvent:
    return RunEvent(index, total, item.checkpoint.name, item.precision, item.task.name, status)


@dataclass
class _Context:
    """What evaluations of one run share: the spec, the device, every planned key, loaded judges."""

    spec: RunSpec
    device: str
    keys: dict[tuple[str, str, str], str]
    judges: dict[str, RewardModelJudge | LLMJudge] = field(default_factory=dict)

    def judge(self, spec: JudgeSpec) -> RewardModelJudge | LLMJudge:
        """The judge a spec names, loaded once per run."""
        identity = judge_identity(spec)
        if identity not in self.judges:
            self.judges[identity] = load_judge(spec, self.device)
        return self.judges[identity]


def _references(context: _Context, item: PlannedEval, result: TaskRun, reference: str) -> list[str]:
    """The reference response of each sample: the dataset's, or the reference variant's for the same item."""
    if reference == DATASET_REFERENCE:
        return [sample.target for sample in result.samples]
    name, _, precision = reference.partition("@")
    digest = context.keys[(name, precision, item.task.name)]
    if digest == item.key.digest():
        return [sample.response for sample in result.samples]
    stored = cached_eval(context.spec.out, digest)
    if stored is None:
        raise FtbenchError(f"the results of reference variant {reference} are missing from {context.spec.out}")
    by_doc = {sample.doc_hash: sample.response for sample in stored.samples}
    missing = [s.doc_id for s in result.samples if s.doc_hash not in by_doc]
    if missing:
        raise FtbenchError(
            f"reference variant {reference} did not answer items {missing[:5]}; give both the same limit"
        )
    return [by_doc[sample.doc_hash] for sample in result.samples]


def _judge(context: _Context, item: PlannedEval, result: TaskRun) -> tuple[dict[str, MetricValue], list[SampleRecord]]:
    options = parse_winrate_options(item.task.name, item.task.options)
    references = _references(context, item, result, options.reference)
    prompts = [str(doc["prompt"]) for doc in result.docs]
    return judge_samples(
        result.samples, prompts, references, context.judge(options.judge), context.spec.out, context.spec.seed
    )


def _evaluate(context: _Context, variant: LoadedVariant, lm: EvalModel, item: PlannedEval) -> EvalRecord:
    spec = context.spec
    info = get_task(item.task.name)
    with PeakMemory(variant.device) as memory:
        result: TaskRun = evaluate_task(
            lm,
            item.task.name,
            options=item.task.options,
            generation=spec.task_generation(item.task) if info.generative else {},
            apply_chat_template=spec.apply_chat_template,
            limit=item.key.limit,
            seed=spec.seed,
        )
    tokens = (
        sum(len(variant.tokenizer(s.response, add_special_tokens=False)["input_ids"]) for s in result.samples)
        if info.generative
        else 0
    )
    metrics = {}
    for name, (value, stderr) in result.metrics.items():
        meta = info.metrics.get(name)
        if stderr is None and name in info.corpus_metrics:
            stderr = bootstrap_stderr(info.corpus_metrics[name], result.samples, seed=spec.seed)
        metrics[name] = MetricValue(
            value=value,
            stderr=stderr,
            n=result.n,
            scale=meta.scale if meta else "unspecified",
            kind=meta.kind if meta else "continuous",
        )
    samples = result.samples
    if info.judged:
        judged, samples = _judge(context, item, result)
        metrics |= judged
    return EvalRecord(
        key=item.key.digest(),
        key_fields=item.key.model_dump(mode="json"),
        variant=_variant_info(variant),
        task=item.task.name,
        metrics=metrics,
        performance=Performance(
            wall_seconds=memory.wall_seconds,
            generated_tokens=tokens,
            tokens_per_second=tokens / memory.wall_seconds if info.generative and memory.wall_seconds else None,
            peak_memory_bytes=memory.peak_bytes,
            memory_measure=memory.measure,
        ),
        samples=samples,
    )


def _variant_info(variant: LoadedVariant) -> VariantInfo:
    checkpoint = variant.checkpoint
    return VariantInfo(
        checkpoint=str(checkpoint.path),
        name=checkpoint.name,
        stage=checkpoint.stage,
        kind=checkpoint.kind.value,
        precision=variant.precision,
        device=variant.device,
        weights_hash=variant.weights_hash,
        base=str(checkpoint.base) if checkpoint.base else None,
        footprint_bytes=variant.footprint_bytes,
        notes=variant.notes,
        manifest=checkpoint.manifest.model_dump(mode="json") if checkpoint.manifest else None,
    )
