"""What a sequential gate judges and where it stands: the baseline's gated metrics and their budgets, checked before
any work, and the judgements so far as the candidate's chunks arrive (``sequential_gate.py`` judges each metric)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ftbench.harness.compare.policy import GatePolicy, SequentialSettings
from ftbench.harness.compare.sequential_gate import (
    GatedMetric,
    SequentialJudgement,
    check_budget,
    gated_metric,
    judge_sequential,
)
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.tasks.base import TaskOf

Place = tuple[str, str]
"""(task, precision)."""


class SequentialPlan(NamedTuple):
    """What the gate judges: the gated metrics by task and precision, the budget of each, the chunk, the order."""

    gated: dict[Place, list[GatedMetric]]
    budgets: dict[Place, int]
    chunk: int
    seed: int
    alpha: float


def plan_sequential(records: Sequence[EvalRecord], policy: GatePolicy, settings: SequentialSettings, seed: int,
                    task_of: TaskOf, alpha: float | None = None) -> SequentialPlan:  # fmt: skip
    """The gated metrics of a baseline and their budgets, checked before any work (``task_of`` gives each record's
    task; ``alpha`` the level spent on this look, by default the policy's).

    Raises:
        FtbenchError: a baseline with repeats, a gated metric the sequential gate cannot cover, a budget beyond an
            evaluation's items, or a baseline too small for any verdict.
    """
    level = policy.alpha if alpha is None else alpha
    gated: dict[Place, list[GatedMetric]] = {}
    budgets: dict[Place, int] = {}
    for record in records:
        place = (record.task, str(record.variant.precision))
        if place in gated:
            raise FtbenchError(
                f"baseline has repeats of {record.task} at {place[1]}; the sequential gate compares single "
                "evaluations: use the fixed-n gate (leave out --sequential)"
            )
        task = task_of(record.request)
        found = [g for metric in task.metrics if metric in record.metrics
                 if (g := gated_metric(task, metric, record, policy)) is not None]  # fmt: skip
        items = len(record.samples)
        if settings.budget is not None and settings.budget > items:
            raise FtbenchError(
                f"budget {settings.budget} is larger than the {items} items the baseline evaluated for {record.task} "
                f"at {place[1]}; give a budget of at most {items}, or none (every item)"
            )
        budgets[place] = settings.budget or items
        check_budget(found, budgets[place], level)
        gated[place] = found
    if not any(gated.values()):
        raise FtbenchError("the policy gates no metric of the baseline; nothing to decide sequentially")
    return SequentialPlan(gated, budgets, settings.chunk, seed, level)


class SequentialState:
    """The judgements so far, per task and precision, as chunks of the candidate arrive."""

    def __init__(self, plan: SequentialPlan) -> None:
        self.plan = plan
        self.chunks: dict[Place, list[EvalRecord]] = {place: [] for place in plan.gated}
        self.judged: dict[Place, list[SequentialJudgement]] = {}

    def open(self, place: Place) -> bool:
        """Whether some gated metric of ``place`` still wants items."""
        judged = self.judged.get(place)
        return judged is None or any(j.status == "continue" for j in judged)

    def add(self, place: Place, record: EvalRecord) -> None:
        """A chunk's record arrived: judge every gated metric of its place again on all its items so far."""
        self.chunks[place].append(record)
        samples = [sample for chunk in self.chunks[place] for sample in chunk.samples]
        plan = self.plan
        self.judged[place] = [judge_sequential(g, samples, plan.budgets[place], plan.chunk, plan.alpha)
                              for g in plan.gated[place]]  # fmt: skip

    def judgements(self) -> list[SequentialJudgement]:
        """Every gated metric's judgement so far, by task and precision."""
        return [j for place in self.plan.gated for j in self.judged.get(place, [])]
