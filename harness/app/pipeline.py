"""``ftbench pipeline``: train the lifecycle's stages in order and evaluate each as soon as it exists.

Every stage's settings, the evaluation spec and the base checkpoint are checked before any training. A
language-model stage trains from the previous one unless its settings name a ``parent``; before it trains,
every checkpoint made so far is evaluated (stored results are reused), and at the end the last stage is.
Stages whose inputs have not changed are reused, and so are their evaluations.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.app.runs import run_and_store
from ftbench.harness.core.checkpoints import CheckpointKind, resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError, validated
from ftbench.harness.core.events import EvaluationEvent, Event, EventSink, StageEvent
from ftbench.harness.core.store import write_atomic
from ftbench.harness.core.yamlfile import read_yaml_mapping
from ftbench.harness.evaluation.run import RunOutcome
from ftbench.harness.evaluation.spec import RunSpec, parse_spec
from ftbench.trainers.config import TrainSettings, check_trl_keys, load_settings
from ftbench.trainers.methods import get_method
from ftbench.trainers.stage import Method, check_lora_targets, run_stage, skeleton

PIPELINE_FILE = "pipeline.json"


class StageSpec(BaseModel):
    """One stage: a method, an optional training config file, and settings over it."""

    model_config = ConfigDict(extra="forbid")

    method: str
    config: Path | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class PipelineSpec(BaseModel):
    """A pipeline: the base checkpoint, the stages in order, the evaluation suite and the final choice."""

    model_config = ConfigDict(extra="forbid")

    name: str = "pipeline"
    base: Path = Path("checkpoints/initial")
    stages: list[StageSpec] = Field(min_length=1)
    evaluate: Path | dict[str, Any]
    """A run spec (a YAML file or a mapping) without checkpoints: the pipeline supplies them."""
    final: str = "last"
    """The stage ``checkpoints/final`` points at: ``last`` (the last language-model stage) or a stage name."""
    final_link: Path = Path("checkpoints/final")


class PlannedStage(NamedTuple):
    """A stage with its method and fully resolved settings."""

    method_name: str
    method: Method
    settings: TrainSettings


class StageRecord(BaseModel):
    """What happened to one stage in one pipeline run (seconds of this run; 0 when reused)."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    method: str
    path: str
    parent: str
    reused: bool
    train_seconds: float
    eval_seconds: float = 0.0


class PipelineRecord(BaseModel):
    """A pipeline run, written as ``pipeline.json`` beside the evaluation results."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    name: str
    base: str
    stages: list[StageRecord]
    base_eval_seconds: float
    final: str
    final_link: str
    wall_seconds: float


class PipelineOutcome(NamedTuple):
    """A pipeline run's record and the outcome of its last evaluation run (which lists every stage)."""

    record: PipelineRecord
    run: RunOutcome


def read_pipeline(path: Path) -> PipelineSpec:
    """Read and validate a pipeline YAML file (relative paths stay relative to the working directory).

    Raises:
        FtbenchError: the file is missing, not YAML, or does not validate.
    """
    data = read_yaml_mapping(path, "pipeline config", "give the path of a pipeline YAML file")
    return validated(PipelineSpec, data, str(path))


def evaluation_spec(spec: PipelineSpec, checkpoints: list[Path]) -> RunSpec:
    """The pipeline's run spec with its checkpoints filled in.

    Raises:
        FtbenchError: the evaluation spec is invalid or names checkpoints itself.
    """
    origin = "pipeline evaluate"
    if isinstance(spec.evaluate, Path):
        data, origin = (
            read_yaml_mapping(spec.evaluate, "spec file", "give the path of a YAML run spec"),
            str(spec.evaluate),
        )
    else:
        data = dict(spec.evaluate)
    if data.get("checkpoints") or data.get("checkpoints_dir"):
        raise FtbenchError(f"{origin}: the pipeline supplies the checkpoints; remove checkpoints/checkpoints_dir")
    return parse_spec({**data, "checkpoints": [str(path) for path in checkpoints]}, origin)


def results_folder(spec: PipelineSpec) -> Path:
    """Where the pipeline's evaluations go (its evaluation spec's ``out``)."""
    return evaluation_spec(spec, [spec.base]).out


def plan_pipeline(spec: PipelineSpec, origin: str = "pipeline") -> list[PlannedStage]:
    """Resolve every stage's settings and check all input before any work.

    Raises:
        FtbenchError: a missing base, an unknown method, an invalid setting or TRL key, a LoRA target that
            matches no module, two stages writing to one place, or an unknown final stage.
    """
    base = resolve_checkpoint(spec.base)
    if base.kind is not CheckpointKind.FULL:
        raise FtbenchError(f"pipeline base {spec.base} is a {base.kind.value} checkpoint; give a model directory")
    modules = skeleton(base.path)
    planned: list[PlannedStage] = []
    parent = spec.base
    for index, stage in enumerate(spec.stages):
        method = get_method(stage.method)
        defaults = {**method.defaults, "parent": str(parent)}
        settings = load_settings(defaults, stage.config, [], stage.settings, f"{origin}: stages.{index}.settings")
        check_trl_keys(method.trl_config, settings)
        check_lora_targets(settings, modules)
        planned.append(PlannedStage(stage.method, method, settings))
        if method.language_model:
            parent = settings.output
    outputs = [stage.settings.output.resolve() for stage in planned]
    repeated = next((path for i, path in enumerate(outputs) if path in outputs[:i]), None)
    if repeated is not None:
        raise FtbenchError(f"{origin}: two stages write to {repeated}; give each stage its own settings.output")
    names = [stage.settings.stage for stage in planned if stage.method.language_model]
    if spec.final != "last" and spec.final not in names:
        raise FtbenchError(f"{origin}: final {spec.final!r} is not a stage; use last or one of {', '.join(names)}")
    if not names and spec.final == "last":
        raise FtbenchError(f"{origin}: no stage makes a language model; add an sft, dpo or rloo stage")
    evaluation_spec(spec, [spec.base])
    return planned


def run_pipeline(
    spec: PipelineSpec,
    force: bool = False,
    on_event: EventSink | None = None,
    origin: str = "pipeline",
) -> PipelineOutcome:
    """Train and evaluate every stage of ``spec`` in order; point ``final_link`` at the chosen stage.

    Args:
        spec: the pipeline.
        force: retrain every stage even when its output is up to date (stored evaluations still count).
        on_event: called as stages train and evaluations run.
        origin: how error messages name the pipeline.
    """
    started = time.perf_counter()
    notify = on_event or (lambda event: None)
    planned = plan_pipeline(spec, origin)
    made: list[Path] = [spec.base]
    records: list[StageRecord] = []
    base_eval = 0.0
    outcome: RunOutcome | None = None

    def evaluate(label: str) -> float:
        nonlocal outcome
        clock = time.perf_counter()
        notify(StageEvent(label, "evaluating"))
        outcome = run_and_store(evaluation_spec(spec, made), on_event=partial(_for_stage, notify, label))
        notify(StageEvent(label, "evaluated"))
        return time.perf_counter() - clock

    for stage in planned:
        if stage.method.language_model and outcome is None:  # evaluation first: the base before any training
            base_eval = evaluate(resolve_checkpoint(spec.base).stage)
        record, adapter = _train(stage, force, notify)
        if stage.method.language_model:
            made += [stage.settings.output, *([adapter] if adapter else [])]
            record.eval_seconds = evaluate(record.stage)
        records.append(record)
    final = _point_final(spec, planned)
    assert outcome is not None  # plan_pipeline guarantees a language-model stage
    pipeline = PipelineRecord(
        name=spec.name,
        base=str(spec.base),
        stages=records,
        base_eval_seconds=base_eval,
        final=final,
        final_link=str(spec.final_link),
        wall_seconds=time.perf_counter() - started,
    )
    write_atomic(outcome.results_dir / PIPELINE_FILE, pipeline.model_dump_json(indent=2) + "\n")
    return PipelineOutcome(pipeline, outcome)


def _train(stage: PlannedStage, force: bool, notify: EventSink) -> tuple[StageRecord, Path | None]:
    """Train one stage (or reuse it), reporting its steps; also return where ``save: both`` put the adapter."""
    name = stage.settings.stage
    notify(StageEvent(name, "training"))
    clock = time.perf_counter()
    result = run_stage(stage.method, stage.settings, force, notify)
    notify(StageEvent(name, "reused" if result.reused else "trained"))
    record = StageRecord(
        stage=name,
        method=stage.method_name,
        path=str(stage.settings.output),
        parent=str(stage.settings.parent),
        reused=result.reused,
        train_seconds=0.0 if result.reused else time.perf_counter() - clock,
    )
    return record, result.adapter


def _for_stage(notify: EventSink, stage: str, event: Event) -> None:
    """An evaluation's event, marked with the pipeline stage it was run for."""
    notify(dataclasses.replace(event, stage=stage) if isinstance(event, EvaluationEvent) else event)


def _point_final(spec: PipelineSpec, planned: list[PlannedStage]) -> str:
    """Make ``final_link`` a relative symbolic link to the chosen stage; return the stage's name."""
    stages = [stage.settings for stage in planned if stage.method.language_model]
    chosen = stages[-1] if spec.final == "last" else next(s for s in stages if s.stage == spec.final)
    link = spec.final_link
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        raise FtbenchError(f"{link} exists and is not a link; move it away so the pipeline can point it at a stage")
    link.parent.mkdir(parents=True, exist_ok=True)
    target = Path(chosen.output).resolve()
    try:
        link.symlink_to(target.relative_to(link.parent.resolve()), target_is_directory=True)
    except ValueError:
        link.symlink_to(target, target_is_directory=True)
    return chosen.stage
