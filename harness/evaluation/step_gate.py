"""The gate of a training run: each evaluated checkpoint against a baseline under a policy, judged as
``ftbench gate`` judges (paired tests, margins, ``min_samples``), with every regression named.

A training run looks at its baseline again at every checkpoint, so the policy's alpha is spent over the run: the
k-th judged checkpoint is tested at alpha·6/(π²k²) (``compare.spending``), and the chance of any false regression
over the whole run, however many checkpoints are saved, is at most alpha (measured in ``calibration_spending``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from ftbench.harness.compare.policy import GatePolicy, Verdict, decide, gate_records, load_policy
from ftbench.harness.compare.sequential_gate import decide_sequential
from ftbench.harness.compare.sequential_plan import SequentialPlan, SequentialState, plan_sequential
from ftbench.harness.compare.spending import checkpoint_alpha
from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import RUN_FILE, load_run_evals
from ftbench.harness.core.training_curve import Outcome, Regression
from ftbench.harness.evaluation.spec import RunSpec
from ftbench.tasks.registry import TASKS, recorded_task

INITIAL = "initial"
"""The baseline that is the model as it was before the first training step (``FtbenchCallback`` only)."""


class Baseline(NamedTuple):
    """What a training run is gated against: the model before step 0, a checkpoint, or a stored baseline."""

    kind: Literal["initial", "checkpoint", "stored"]
    path: Path | None
    label: str


def resolve_baseline(baseline: str | Path, base: Path | None = None, initial: bool = True) -> Baseline:
    """Tell what ``baseline`` names: ``initial`` (when allowed), a results directory, or a checkpoint.

    Raises:
        FtbenchError: it is none of these, or a checkpoint that cannot be resolved.
    """
    if initial and str(baseline) == INITIAL:
        return Baseline("initial", None, INITIAL)
    path = Path(baseline)
    if (path / RUN_FILE).is_file():
        return Baseline("stored", path, str(path))
    if path.exists():
        checkpoint = resolve_checkpoint(path, base)
        return Baseline("checkpoint", checkpoint.path, str(path))
    also = ", or initial (the model before the first step)" if initial else ""
    raise FtbenchError(
        f"baseline {path} does not exist; give a stored baseline (a directory written by `ftbench run` or "
        f"`ftbench baseline update`), a checkpoint{also}"
    )


def check_suite_fits(suite: RunSpec, records: list[EvalRecord], origin: str) -> None:
    """Refuse a suite whose evaluations could not be compared with a stored baseline's: every task × precision of
    the baseline must be in the suite, with the same options, items, seed, prompts and generation settings.

    Raises:
        FtbenchError: the first task, precision or setting that does not fit.
    """
    tasks = {task.name: task for task in suite.tasks}
    for record in records:
        label = f"{record.task} at {record.request.precision}"
        task = tasks.get(record.task)
        if task is None or record.request.precision not in (task.precisions or suite.precisions):
            raise FtbenchError(
                f"the suite has no {label}, which baseline {origin} has; evaluate the baseline's tasks and precisions"
            )
        info = task.definition
        expected = {
            "options": task.options,
            "limit": suite.task_limit(task),
            "seed": suite.seed,
            "chat_template": suite.task_chat_template(task),
            "generation": suite.task_generation(task) if info.generative else {},
            "task_definition_hash": info.definition_hash(),
        }
        for name, value in expected.items():
            if getattr(record.request, name) != value:
                raise FtbenchError(
                    f"the suite differs from baseline {origin} in {name} for {label} ({value!r} vs "
                    f"{getattr(record.request, name)!r}); use the baseline's settings or another baseline"
                )


class Judgement(NamedTuple):
    """The gate's answer on one checkpoint, why, and what regressed."""

    outcome: Outcome
    reason: str
    regressions: list[Regression]
    alpha: float
    """The level this look was tested at (the policy's alpha spent over the run's looks)."""


def _regression(verdict: Verdict) -> Regression:
    comparison, flips = verdict.comparison, verdict.comparison.flips
    return Regression(
        task=verdict.task,
        metric=verdict.metric,
        precision=verdict.precision,
        delta=comparison.delta,
        p_value=comparison.p_value,
        gained=len(flips.gained) if flips is not None else None,
        lost=len(flips.lost) if flips is not None else None,
    )


@dataclass
class StepGate:
    """A policy and the baseline's records (empty until a baseline evaluated in the run is done)."""

    policy: GatePolicy
    baseline: Baseline
    records: list[EvalRecord] = field(default_factory=list)

    def sequential_plan(self, look: int, seed: int) -> SequentialPlan | None:
        """The sequential evaluation of the ``look``-th checkpoint at the level spent on it, when the policy asks
        for one (``sequential:``) and the baseline's items can still reach a verdict at that level; else None (the
        checkpoint is evaluated on every item and judged by the fixed-n tests)."""
        settings = self.policy.sequential
        if settings is None or not self.records:
            return None
        alpha = checkpoint_alpha(look, self.policy.alpha)
        try:
            return plan_sequential(self.records, self.policy, settings, seed, recorded_task, alpha)
        except FtbenchError:
            return None

    def judge_sequential(self, state: SequentialState, look: int) -> Judgement:
        """The gate's answer on a checkpoint evaluated sequentially (``sequential_plan``) at its ``look``."""
        alpha = state.plan.alpha
        decision = decide_sequential(state.judgements())
        regressions = [
            Regression(task=j.gated.task.name, metric=j.gated.metric, precision=j.gated.precision,
                       delta=j.verdict.estimate, p_value=alpha, items=j.verdict.items)
            for j in state.judgements() if j.status == "regression"
        ]  # fmt: skip
        used = sum(len(j.lower) for j in state.judgements())
        reason = f"{decision.reason} (look {look}, alpha {alpha:.3g}, {used} items)"
        return Judgement(decision.outcome, reason, regressions, alpha)

    def judge(self, candidate: list[EvalRecord], look: int) -> Judgement:
        """The gate's answer on a checkpoint's records at the run's ``look``-th judged checkpoint (1-based), at the
        level spent on that look; a checkpoint that cannot be compared is undecided."""
        alpha = checkpoint_alpha(look, self.policy.alpha)
        policy = self.policy.model_copy(update={"alpha": alpha})
        try:
            verdicts = gate_records(self.records, candidate, policy, recorded_task, TASKS)
        except FtbenchError as exc:
            return Judgement("undecided", f"not comparable with the baseline: {exc}", [], alpha)
        decision = decide(verdicts, policy)
        regressions = [_regression(v) for v in verdicts if v.status == "regression"]
        return Judgement(decision.outcome, f"{decision.reason} (look {look}, alpha {alpha:.3g})", regressions, alpha)


def _check_sequential(policy: GatePolicy, suite: RunSpec) -> None:
    """Refuse, before training, a sequential policy that gates a metric the sequential gate cannot cover.

    Raises:
        FtbenchError: naming the metric and the fixed-n gate.
    """
    for entry in suite.tasks:
        task = entry.definition
        for name, metric in task.metrics.items():
            if policy.rule(task, name).mode in ("gate", "equivalence") and metric.score_bounds is None:
                raise FtbenchError(
                    f"the policy's sequential: cannot gate {task.name} {name} (a corpus metric or a score with no "
                    "known range); drop sequential: for the fixed-n gate, or set its rule to mode: warn"
                )


def load_gate(
    baseline: str | Path | None, policy: Path | None, suite: RunSpec, base: Path | None = None, initial: bool = True
) -> StepGate | None:
    """The gate a training run asked for, checked before any training step (None: no baseline, no gate).

    Raises:
        FtbenchError: a missing or unreadable baseline, a policy file that does not parse or names a task the
            suite lacks, a policy without a baseline, or a suite that a stored baseline cannot be compared with.
    """
    if baseline is None:
        if policy is not None:
            raise FtbenchError(f"policy {policy} needs a baseline to gate against; give a baseline too")
        return None
    rules = load_policy(policy)
    rules.check_tasks({task.name: task.definition for task in suite.tasks}, TASKS)
    if rules.sequential is not None:
        _check_sequential(rules, suite)
    found = resolve_baseline(baseline, base, initial)
    gate = StepGate(rules, found)
    if found.kind == "stored" and found.path is not None:
        gate.records = load_run_evals(found.path)
        check_suite_fits(suite, gate.records, found.label)
    return gate
