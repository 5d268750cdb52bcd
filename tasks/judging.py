"""What a judged task declares: the judge that scores its responses, the reference each response is compared
with, and how the judge's outcomes become the task's metrics.

A judged task's lm-eval run only generates; ftbench's judge step (``harness.evaluation.winrate``) then asks the
task's judge for one outcome per item — 1 the candidate wins, 0.5 a tie, 0 the reference wins — and hands the
outcomes back to the task's ``score``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.core.records import SampleRecord

DATASET_REFERENCE = "dataset"
"""The reference that is the dataset's own response (each sample's target)."""

Verdict = Literal["A", "B"]


class JudgeSpec(BaseModel):
    """How responses are judged (a judged task's option ``judge``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["reward_model", "llm"] = "reward_model"
    path: Path = Path("checkpoints/reward")
    tie_margin: float = Field(default=0.0, ge=0.0)
    """Reward model: rewards within this margin tie."""
    swap: bool = True
    """LLM judge: ask twice with the order swapped; disagreement is a tie."""
    max_length: int = Field(default=512, ge=16)
    batch_size: int = Field(default=8, ge=1)


def reward_outcome(candidate: float, reference: float, tie_margin: float) -> float:
    """Reward-model outcome: a tie when the rewards differ by at most ``tie_margin``."""
    if abs(candidate - reference) <= tie_margin:
        return 0.5
    return 1.0 if candidate > reference else 0.0


def pairwise_outcome(candidate_first: Verdict | None, candidate_second: Verdict | None) -> float:
    """LLM-judge outcome from two verdicts, asked with the candidate as response A, then as response B.

    The candidate wins when both verdicts pick it, loses when both pick the reference; disagreement or an
    unreadable verdict is a tie.
    """
    if candidate_first == "A" and candidate_second == "B":
        return 1.0
    if candidate_first == "B" and candidate_second == "A":
        return 0.0
    return 0.5


class JudgedItems(NamedTuple):
    """What the judge step found for each item of one evaluation, in sample order."""

    samples: Sequence[SampleRecord]
    references: Sequence[str]
    outcomes: Sequence[float]
    margins: Sequence[float] | None
    """Candidate minus reference reward (reward-model judges only)."""


class JudgedScores(NamedTuple):
    """A judged task's metrics (value, standard error or None) and its samples with their per-item scores."""

    metrics: dict[str, tuple[float, float | None]]
    samples: list[SampleRecord]


@dataclass(frozen=True)
class Judging:
    """The judged capability of a task: where its options name the judge and the reference, and its scoring."""

    judge: Callable[[Any], JudgeSpec]
    """The judge the task's options name."""
    reference: Callable[[Any], str]
    """``DATASET_REFERENCE`` or ``CHECKPOINT@PRECISION``, a variant of the same run."""
    score: Callable[[JudgedItems], JudgedScores]
    """The task's metrics from the judge's outcomes (a corpus metric's standard error may be left None: the judge
    step bootstraps it from the task's declared corpus function)."""

    def reference_variant(self, options: Any) -> tuple[str, str] | None:
        """The (checkpoint name, precision) whose responses are the references; None for the dataset's."""
        reference = self.reference(options)
        if reference == DATASET_REFERENCE:
            return None
        name, _, precision = reference.partition("@")
        return name, precision
