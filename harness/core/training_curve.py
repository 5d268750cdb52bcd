"""A training run's checkpoints evaluated by step: ``training_curve.json`` beside a results directory's records.

``FtbenchCallback`` and ``ftbench watch`` write it after every evaluated checkpoint; ``ftbench report`` reads it
to draw each task's headline metric against the training step. Each step lists the keys of its evaluations
(stored in ``evals/`` like any run's) and, with a gate, its verdict against the baseline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error
from ftbench.harness.core.store import write_atomic

CURVE_FILE = "training_curve.json"
CURVE_VERSION = 1
Outcome = Literal["pass", "regression", "undecided"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Regression(_Record):
    """One gated metric that regressed against the baseline."""

    task: str
    metric: str
    precision: str
    delta: float
    p_value: float
    gained: int | None = None
    """0/1 metrics: items wrong at the baseline and right now."""
    lost: int | None = None
    """0/1 metrics: items right at the baseline and wrong now."""
    items: int | None = Field(default=None, exclude_if=lambda count: count is None)
    """A sequential evaluation: the items it took to call the regression (``p_value`` is then the level its
    anytime-valid sequence held, an upper bound); None for a fixed-n test."""

    def describe(self) -> str:
        """``arc_easy acc_norm@fp32: Δ -0.25, p = 0.004, flips +1 / -6``."""
        flips = f", flips +{self.gained} / -{self.lost}" if self.gained is not None else ""
        if self.items is not None:
            return f"{self.task} {self.metric}@{self.precision}: Δ {self.delta:+.4g} after {self.items} items, " \
                f"p ≤ {self.p_value:.3g} (sequential)"  # fmt: skip
        p_text = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3g}"
        return f"{self.task} {self.metric}@{self.precision}: Δ {self.delta:+.4g}, {p_text}{flips}"


class StepRecord(_Record):
    """One saved checkpoint, evaluated."""

    step: int = Field(ge=0)
    checkpoint: str
    name: str
    """The checkpoint's label in records and reports (its folder's name, ``checkpoint-N``)."""
    evaluations: list[str]
    eval_seconds: float
    outcome: Outcome | None = None
    """The gate's answer against the baseline (None: no gate, or the checkpoint could not be evaluated)."""
    reason: str | None = None
    regressions: list[Regression] = Field(default_factory=list)
    alpha: float | None = Field(default=None, exclude_if=lambda level: level is None)
    """The level the gate tested this checkpoint at: the policy's alpha spent over the run's looks (None: no
    gate)."""
    failed: str | None = Field(default=None, exclude_if=lambda reason: reason is None)
    """Why the checkpoint could not be evaluated (None: it was); such a step lists no evaluations."""


class TrainingCurve(_Record):
    """Every evaluated checkpoint of one training run, in step order, and what the gate found."""

    schema_version: int = CURVE_VERSION
    name: str
    suite: dict[str, object]
    """The suite's spec (checkpoints left out): what every step is evaluated on."""
    baseline: str | None = None
    """What the steps are gated against: ``initial``, a checkpoint or a stored baseline directory."""
    baseline_name: str | None = None
    """The baseline's label when it was evaluated into this directory (``initial``, a checkpoint's name)."""
    baseline_checkpoint: str | None = None
    """The path of that baseline checkpoint."""
    baseline_evaluations: list[str] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    first_regression: int | None = None
    """The step of the first checkpoint the gate found regressed."""
    last_good: str | None = None
    """The last checkpoint before the first regression (with a gate)."""
    stopped: bool = False
    """Whether training was asked to stop at the first regression."""
    started_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def step(self, number: int) -> StepRecord | None:
        """The evaluated step ``number``, if any."""
        return next((s for s in self.steps if s.step == number), None)

    def with_step(self, record: StepRecord) -> TrainingCurve:
        """This curve with ``record`` added (replacing an earlier record of its step), the gate's fields updated."""
        steps = sorted([s for s in self.steps if s.step != record.step] + [record], key=lambda s: s.step)
        regressed = [s for s in steps if s.outcome == "regression"]
        first = regressed[0].step if regressed else None
        gated = [s for s in steps if s.outcome is not None and (first is None or s.step < first)]
        last_good = gated[-1].checkpoint if gated else self.baseline_checkpoint
        return self.model_copy(update={"steps": steps, "first_regression": first, "last_good": last_good})

    def evaluation_keys(self) -> list[str]:
        """The keys of every evaluation stored with the curve: the baseline's (when evaluated here), then each
        step's."""
        keys = list(self.baseline_evaluations) if self.baseline_name else []
        keys += [key for s in self.steps for key in s.evaluations]
        return list(dict.fromkeys(keys))

    def parents(self) -> dict[str, str]:
        """Each step's checkpoint name → the previous one's (the first step's: the baseline evaluated here)."""
        names = ([self.baseline_name] if self.baseline_name else []) + [s.name for s in self.steps]
        return {later: earlier for earlier, later in pairwise(names)}


def save_curve(results_dir: Path, curve: TrainingCurve) -> Path:
    """Store the curve atomically and return its path."""
    path = results_dir / CURVE_FILE
    write_atomic(path, json.dumps(curve.model_dump(mode="json"), indent=1))
    return path


def load_curve(results_dir: Path) -> TrainingCurve | None:
    """The training curve of a results directory, or None when it has none.

    Raises:
        FtbenchError: the file exists but is not a training curve of this version.
    """
    path = results_dir / CURVE_FILE
    if not path.is_file():
        return None
    try:
        return TrainingCurve.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError) as exc:
        where = f": {first_error(exc).where}" if isinstance(exc, ValidationError) else ""
        raise FtbenchError(
            f"{path} is not a valid ftbench training curve{where}; delete it or give another --out"
        ) from exc
