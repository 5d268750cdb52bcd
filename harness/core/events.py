"""One event type for long work: what an engine, a cluster node, a pipeline or a training callback reports, and
what a display (or a log) receives.

An evaluation's events carry its request key, variant (``checkpoint@precision``) and task; the run adds its place
in the plan. A training stage's events carry the stage, the step and the trainer's logged values.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple


class EventKind(StrEnum):
    """What happened."""

    LOADING = "loading"
    """An engine is loading the variant."""
    EVALUATING = "evaluating"
    """An evaluation started."""
    PROGRESS = "progress"
    """Model requests finished within an evaluation."""
    CACHED = "cached"
    """An evaluation was found stored and is reused."""
    DONE = "done"
    """An evaluation finished and was stored."""
    TRAINING = "training"
    """A training stage logged a step."""
    STAGE = "stage"
    """A pipeline stage changed phase (``detail``: training, trained, reused, evaluating, evaluated)."""


class Event(NamedTuple):
    """One report of progress."""

    kind: EventKind
    key: str = ""
    """The evaluation's request key (evaluation events)."""
    variant: str = ""
    """``checkpoint@precision`` of an evaluation."""
    task: str = ""
    position: int = 0
    """The evaluation's place in its run's plan (1-based; 0 before the run assigns it)."""
    total: int = 0
    """Evaluations in the run; a training stage's steps."""
    items: int = 0
    """Model requests finished so far in this evaluation; a training event's step."""
    tokens_per_second: float | None = None
    node: str | None = None
    """The cluster node doing the work (None: this process)."""
    stage: str | None = None
    """The training stage of a training or stage event; the pipeline stage an evaluation was run for."""
    detail: str = ""
    """A stage event's phase."""
    logs: tuple[tuple[str, float], ...] = ()
    """A training event's logged values (loss, reward, ...), as pairs."""

    @property
    def finished(self) -> bool:
        """Whether the evaluation is complete (stored now or before)."""
        return self.kind in (EventKind.DONE, EventKind.CACHED)


EventSink = Callable[[Event], None]
"""Receives events as they happen."""


def ignore(event: Event) -> None:
    """An ``EventSink`` that drops every event."""
