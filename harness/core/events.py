"""One event type for long work: what an engine, a cluster node, a pipeline, a training run or a watch reports, and
what a display (or a log) receives.

``Event`` is a union of small frozen types, each with only the fields it means. An evaluation's events carry its
request key, variant (``checkpoint@precision``) and task; the run adds its place in the plan, a cluster node its
name, a pipeline the stage it evaluates. A training step carries the step and the trainer's logged values; a
pipeline stage its phase; a training run's evaluated checkpoint its step and the gate's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal


class EventKind(StrEnum):
    """What happened: each event type's ``kind``."""

    LOADING = "loading"
    EVALUATING = "evaluating"
    PROGRESS = "progress"
    CACHED = "cached"
    DONE = "done"
    TRAINING = "training"
    STAGE = "stage"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class EvaluationEvent:
    """What every event of one evaluation says: which evaluation, where it stands in its run, who does it."""

    kind: ClassVar[EventKind]
    key: str
    """The evaluation's request key."""
    variant: str
    """``checkpoint@precision``."""
    task: str
    position: int = 0
    """The evaluation's place in its run's plan (1-based; 0 before the run assigns it)."""
    total: int = 0
    """Evaluations in the run (0 before the run assigns it)."""
    node: str | None = None
    """The cluster node doing the work (None: this process)."""
    stage: str | None = None
    """The pipeline stage the evaluation was run for (None outside a pipeline)."""

    @property
    def finished(self) -> bool:
        """Whether the evaluation is complete (stored now or before)."""
        return self.kind in (EventKind.DONE, EventKind.CACHED)


@dataclass(frozen=True)
class LoadingEvent(EvaluationEvent):
    """An engine is loading the variant of this evaluation (and of the others of its group)."""

    kind: ClassVar[EventKind] = EventKind.LOADING


@dataclass(frozen=True)
class EvaluatingEvent(EvaluationEvent):
    """An evaluation started."""

    kind: ClassVar[EventKind] = EventKind.EVALUATING


@dataclass(frozen=True)
class ProgressEvent(EvaluationEvent):
    """Model requests finished within an evaluation."""

    kind: ClassVar[EventKind] = EventKind.PROGRESS
    requests: int = 0
    """Model requests finished so far."""
    tokens_per_second: float | None = None
    """Generated tokens per second so far (None for tasks that do not generate)."""


@dataclass(frozen=True)
class CachedEvent(EvaluationEvent):
    """An evaluation was found stored and is reused."""

    kind: ClassVar[EventKind] = EventKind.CACHED


@dataclass(frozen=True)
class DoneEvent(EvaluationEvent):
    """An evaluation finished."""

    kind: ClassVar[EventKind] = EventKind.DONE


@dataclass(frozen=True)
class TrainingEvent:
    """A training stage logged a step."""

    kind: ClassVar[EventKind] = EventKind.TRAINING
    stage: str
    step: int
    total_steps: int
    """The stage's planned steps (0: unknown)."""
    logs: tuple[tuple[str, float], ...] = ()
    """The trainer's logged values (loss, reward, ...), as pairs."""


StagePhase = Literal["training", "trained", "reused", "evaluating", "evaluated"]


@dataclass(frozen=True)
class StageEvent:
    """A pipeline stage changed phase."""

    kind: ClassVar[EventKind] = EventKind.STAGE
    stage: str
    phase: StagePhase


@dataclass(frozen=True)
class CheckpointEvent:
    """A training run's checkpoint was evaluated (and judged, with a gate)."""

    kind: ClassVar[EventKind] = EventKind.CHECKPOINT
    step: int
    name: str
    headlines: tuple[tuple[str, str, float], ...] = ()
    """Each evaluation's (task, ``metric`` or ``metric@precision``, value) of its headline metric."""
    seconds: float = 0.0
    """The checkpoint's evaluation time."""
    outcome: str | None = None
    """The gate's verdict (``pass``, ``regression``, ``undecided``); None without a gate."""
    reason: str | None = None
    regressions: tuple[str, ...] = ()
    """Each regressed metric, described."""
    failed: str | None = None
    """Why the checkpoint could not be evaluated (None: it was)."""


Event = (
    LoadingEvent
    | EvaluatingEvent
    | ProgressEvent
    | CachedEvent
    | DoneEvent
    | TrainingEvent
    | StageEvent
    | CheckpointEvent
)
"""Every event: a union of the types above, told apart by type or by ``kind``."""

EventSink = Callable[[Event], None]
"""Receives events as they happen."""


def ignore(event: Event) -> None:
    """An ``EventSink`` that drops every event."""
