"""The regression gate: a candidate fails when a gated metric drops beyond its margin *and* the paired test
says the drop is real. Thresholds alone flag noise on small sets; significance alone lets large drops through
on tiny ones; the gate needs both, and explains every verdict.

What each verdict guarantees (measured in ``tests/test_calibration.py``): in ``gate`` mode a candidate with no
true change fails with probability at most alpha / 2 (the drop must be significant and on the worse side); a
true drop exactly at the margin is not protected (at large n it fails about half the time: use
``equivalence`` for a guarantee there). In ``equivalence`` mode a true difference exactly at the margin is
called equivalent, and a true drop exactly at the margin called a regression, each with probability at most
alpha. A comparison whose test cannot reach p < alpha at its n decides nothing, whatever ``min_samples`` says."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftbench.harness.compare.paired import compare_metric, compared_metrics
from ftbench.harness.compare.statistics import PairedComparison
from ftbench.harness.core.errors import FtbenchError, first_error
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.request import differing_settings
from ftbench.harness.core.yamlfile import read_yaml_mapping
from ftbench.tasks.base import Task, TaskOf

Mode = Literal["gate", "warn", "off", "equivalence"]
Status = Literal["pass", "regression", "warning", "improvement", "insufficient", "equivalent", "not_equivalent"]


class MetricRule(BaseModel):
    """How one metric is gated.

    ``gate`` (``warn``): a drop beyond every margin that is set, which the paired test also finds significant, is a
    regression (a warning). ``equivalence``: two one-sided tests at the policy's alpha; the metric passes only
    when the paired difference's 1 − 2·alpha interval (90% at alpha 0.05) lies inside ±``margin``, is a
    regression when the interval lies wholly on the worse side beyond it, and cannot be called equivalent
    otherwise.
    """

    model_config = ConfigDict(extra="forbid")

    max_drop: float | None = Field(default=None, ge=0)
    """Largest allowed drop, in the metric's own scale."""
    max_relative_drop: float | None = Field(default=0.05, ge=0)
    """Largest allowed drop as a share of the baseline value."""
    mode: Mode = "gate"
    margin: float | None = Field(default=None, gt=0)
    """Equivalence margin, in the metric's own scale (``mode: equivalence``)."""

    @field_validator("mode", mode="before")
    @classmethod
    def _off_in_yaml(cls, mode: object) -> object:
        return "off" if mode is False else mode  # YAML reads a bare `off` as false

    @model_validator(mode="after")
    def _margin_for_equivalence(self) -> MetricRule:
        if self.mode == "equivalence" and self.margin is None:
            raise ValueError("mode equivalence needs a margin (the largest difference that counts as equivalent)")
        return self


class SequentialSettings(BaseModel):
    """The sequential gate's settings (``sequential:`` in the policy, or ``ftbench gate --sequential``)."""

    model_config = ConfigDict(extra="forbid")

    budget: int | None = Field(default=None, ge=1)
    """The most items evaluated (None: every item of the baseline)."""
    chunk: int = Field(default=16, ge=1)
    """Items evaluated between looks (about the engine's batch)."""
    seed: int | None = None
    """The seed of the items' order (None: the baseline run's seed)."""


class GatePolicy(BaseModel):
    """The gate's policy: defaults for headline metrics, and rules per task and metric."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_samples: int = Field(default=20, ge=1)
    undecided: Literal["fail", "warn"] = "fail"
    """A gated comparison on fewer than ``min_samples`` items, or whose test cannot reach p < ``alpha`` at its n,
    cannot decide: ``fail`` stops the gate (exit 2, "could not decide"), ``warn`` lets it pass with a warning as
    long as another comparison decided."""
    headline: MetricRule = Field(default_factory=MetricRule)
    """The rule of each task's headline metric, unless ``tasks`` says otherwise."""
    others: MetricRule = Field(default_factory=lambda: MetricRule(mode="warn"))
    """The rule of every other metric, unless ``tasks`` says otherwise."""
    tasks: dict[str, dict[str, MetricRule]] = Field(default_factory=dict)
    leakage: Literal["off", "warn", "fail"] = "off"
    """Audit the candidate's evaluated items against its lineage's training rows (``ftbench leak``): ``warn`` names
    the items found, ``fail`` stops the gate with exit 2 naming them (never exit 1: a leak is not a regression)."""
    sequential: SequentialSettings | None = None
    """Decide with the fewest items: evaluate the candidate a chunk at a time in a seeded order and stop once every
    gated metric has an anytime-valid verdict (``ftbench gate --sequential`` turns it on with the defaults)."""

    def rule(self, task: Task, metric: str) -> MetricRule:
        """The rule that applies to ``metric`` of ``task``."""
        own = self.tasks.get(task.name, {}).get(metric)
        if own is not None:
            return own
        return self.headline if metric == task.headline else self.others

    def check_tasks(self, tasks: Mapping[str, Task], built_in: Mapping[str, Task]) -> None:
        """Refuse rules for a task that is neither built in nor among the gated evaluations' ``tasks``, or for a
        metric its task lacks (rules for a built-in task the evaluations lack never apply: one policy can serve
        several suites).

        Raises:
            FtbenchError: naming the task or metric and the valid names.
        """
        known = {**built_in, **tasks}
        for name, rules in self.tasks.items():
            task = known.get(name)
            if task is None:
                choices = ", ".join(sorted(known))
                raise FtbenchError(
                    f"gate policy: no task {name!r} is built in or in the baseline; choose from {choices}"
                )
            for metric in rules:
                if metric not in task.metrics:
                    raise FtbenchError(
                        f"gate policy: task {name} has no metric {metric!r}; choose from {', '.join(task.metrics)}"
                    )


def load_policy(path: Path | None) -> GatePolicy:
    """The policy in a YAML file, or the defaults.

    Raises:
        FtbenchError: a missing file or an invalid policy.
    """
    if path is None:
        return GatePolicy()
    data = read_yaml_mapping(path, "gate policy", "give a YAML file or leave --policy out")
    try:
        policy = GatePolicy.model_validate(data)
    except ValidationError as exc:
        spot = first_error(exc)
        raise FtbenchError(f"gate policy {path}: {spot.where}: {spot.message}") from exc
    return policy


class Verdict(NamedTuple):
    """The gate's verdict on one task × metric × precision."""

    task: str
    metric: str
    precision: str
    status: Status
    mode: Mode
    comparison: PairedComparison
    allowed_drop: float | None
    reason: str


def allowed_drop(rule: MetricRule, baseline: float) -> float | None:
    """The largest drop a rule allows from a baseline value: the largest of its margins (None: none set)."""
    margins = [
        m
        for m in (rule.max_drop, None if rule.max_relative_drop is None else rule.max_relative_drop * abs(baseline))
        if m is not None
    ]
    return max(margins) if margins else None


def cannot_decide_text(comparison: PairedComparison, alpha: float) -> str:
    """Why a comparison decides nothing: ``cannot decide at 4 items (smallest p 0.125 ≥ alpha 0.05)``."""
    return f"cannot decide at {comparison.n} items (smallest p {comparison.smallest_p:.3g} ≥ alpha {alpha:g})"


def power_text(comparison: PairedComparison, alpha: float | None = None) -> str:
    """What the comparison could have detected: ``with 16 items this comparison detects only changes ≥ 0.449
    (80% power at alpha 0.05)``, or that it cannot decide at all."""
    level = comparison.alpha if alpha is None else alpha
    if not comparison.decides(level):
        return cannot_decide_text(comparison, level)
    if comparison.mde is None:
        return ""
    return (
        f"with {comparison.n} items this comparison detects only changes ≥ {comparison.mde:.3g} "
        f"(80% power at alpha {comparison.alpha:g})"
    )


def _judge_equivalence(rule: MetricRule, comparison: PairedComparison, better: bool, stats: str) -> tuple[Status, str]:
    margin = rule.margin or 0.0
    low, high = comparison.equivalence_interval or comparison.interval
    level = f"{1 - 2 * comparison.alpha:.0%}" if comparison.equivalence_interval else "95%"
    where = f"{level} CI of Δ [{low:.4g}, {high:.4g}], margin ±{margin:.4g}, {stats}"
    if -margin < low and high < margin:
        return "equivalent", f"equivalent within the margin: {where}"
    worse_beyond = high < -margin if better else low > margin
    if worse_beyond:
        return "regression", f"worse beyond the equivalence margin: {where}"
    return "not_equivalent", f"cannot be called equivalent: {where}"


def judge_metric(task: Task, metric: str, precision: str, comparison: PairedComparison, policy: GatePolicy) -> Verdict:
    """Apply the policy to one paired comparison."""
    rule = policy.rule(task, metric)
    better = task.metrics[metric].higher_is_better
    drop = -comparison.delta if better else comparison.delta
    allowed = allowed_drop(rule, comparison.baseline)
    beyond = drop > (allowed or 0.0)
    significant = comparison.p_value < policy.alpha
    where = (
        f"Δ {comparison.delta:+.4g} (allowed drop {allowed:.4g})"
        if allowed is not None
        else f"Δ {comparison.delta:+.4g}"
    )
    p_text = "p < 0.001" if comparison.p_value < 0.001 else f"p = {comparison.p_value:.3g}"
    stats = (
        f"{p_text} by {comparison.test.replace('_', ' ')}, n = {comparison.n}; {power_text(comparison, policy.alpha)}"
    )
    if not comparison.decides(policy.alpha):
        status: Status = "insufficient"
        reason = f"{cannot_decide_text(comparison, policy.alpha)}: nothing is significant at this n; {where}, {stats}"
    elif comparison.n < policy.min_samples:
        status = "insufficient"
        reason = f"only {comparison.n} paired samples (policy needs {policy.min_samples}); {where}, {stats}"
    elif rule.mode == "equivalence":
        status, reason = _judge_equivalence(rule, comparison, better, stats)
    elif beyond and significant:
        status = "regression" if rule.mode == "gate" else "warning"
        reason = f"worse beyond the margin and significant: {where}, {stats}"
    elif drop < -(allowed or 0.0) and significant:
        status, reason = "improvement", f"better and significant: {where}, {stats}"
    elif beyond:
        status, reason = "pass", f"drop beyond the margin but not significant: {where}, {stats}"
    else:
        status, reason = "pass", f"within the margin: {where}, {stats}"
    return Verdict(task.name, metric, precision, status, rule.mode, comparison, allowed, reason)


def check_comparable(baseline: EvalRecord, candidate: EvalRecord) -> None:
    """Refuse a candidate evaluated with other settings or on other items than the baseline.

    Raises:
        FtbenchError: the first setting that differs, or differing item sets.
    """
    label = f"{baseline.task} at {baseline.variant.precision}"
    for name in differing_settings(baseline.request, candidate.request):
        raise FtbenchError(
            f"candidate differs from the baseline in {name} for {label} "
            f"({getattr(candidate.request, name)!r} vs {getattr(baseline.request, name)!r}); evaluate it with the "
            "baseline's settings (give the checkpoint as --candidate) or update the baseline"
        )
    if {(s.doc_id, s.doc_hash) for s in baseline.samples} != {(s.doc_id, s.doc_hash) for s in candidate.samples}:
        raise FtbenchError(f"candidate was evaluated on other items than the baseline for {label}; use the same items")


def gate_records(
    baseline: list[EvalRecord],
    candidate: list[EvalRecord],
    policy: GatePolicy,
    task_of: TaskOf,
    built_in: Mapping[str, Task],
    seed: int = 0,
) -> list[Verdict]:
    """Verdicts for every gated or warned metric of every baseline task × precision.

    Args:
        baseline: the baseline's records.
        candidate: the candidate's records.
        policy: the rules.
        task_of: the task of a stored request.
        built_in: the built-in tasks (a policy may name one the records lack).
        seed: the permutation tests' seed.

    Raises:
        FtbenchError: the candidate lacks a task × precision of the baseline, or is not comparable; the policy
            names a task or metric the baseline does not have.
    """
    candidates = _by_task_and_precision(candidate)
    groups = _by_task_and_precision(baseline)
    tasks = {name: task_of(base[0].request) for (name, _), base in groups.items()}
    policy.check_tasks(tasks, built_in)
    verdicts = []
    for (name, precision), base in groups.items():
        task = tasks[name]
        other = candidates.get((name, precision))
        if other is None:
            raise FtbenchError(
                f"candidate has no result for {name} at {precision}, which the baseline has; "
                "evaluate it on the baseline's tasks and precisions"
            )
        for first, second in zip(base, other, strict=False):
            check_comparable(first, second)
        for metric in compared_metrics(task, base, other):
            if policy.rule(task, metric).mode == "off":
                continue
            compared = compare_metric(task, base, other, metric, seed, policy.alpha)
            if compared.comparison is not None:
                verdicts.append(judge_metric(task, metric, precision, compared.comparison, policy))
    return verdicts


def _by_task_and_precision(records: list[EvalRecord]) -> dict[tuple[str, str], list[EvalRecord]]:
    """Records grouped by task and precision (a group holds the repeats of one variant), repeats in order."""
    groups: dict[tuple[str, str], list[EvalRecord]] = {}
    for record in sorted(records, key=lambda r: r.request.repeat):
        groups.setdefault((record.task, record.variant.precision.value), []).append(record)
    return groups


class GateDecision(NamedTuple):
    """The gate's answer: ``pass`` (exit 0), ``regression`` (exit 1) or ``undecided`` (exit 2), and why."""

    outcome: Literal["pass", "regression", "undecided"]
    reason: str


def decide(verdicts: list[Verdict], policy: GatePolicy) -> GateDecision:
    """The gate's answer from its verdicts: a gated regression fails; a gate that decided nothing, or (policy
    ``undecided: fail``) left a gated comparison undecided, is undecided; anything else passes."""
    regressions = [v for v in verdicts if v.status == "regression"]
    if regressions:
        return GateDecision("regression", f"{len(regressions)} gated metrics regressed")
    gated = [v for v in verdicts if v.mode in ("gate", "equivalence")]
    not_equivalent = [v for v in gated if v.status == "not_equivalent"]
    if not_equivalent:
        names = ", ".join(f"{v.task} {v.metric}@{v.precision}" for v in not_equivalent[:3])
        return GateDecision("undecided", f"{len(not_equivalent)} metrics cannot be called equivalent: {names}")
    undecided = [v for v in gated if v.status == "insufficient"]
    decided = [v for v in gated if v.status != "insufficient"]
    if not decided:
        return GateDecision(
            "undecided",
            f"no gated metric was compared on enough items to decide ({len(gated)} gated comparisons, policy "
            f"min_samples {policy.min_samples}, alpha {policy.alpha:g}); evaluate more items or lower min_samples",
        )
    if undecided and policy.undecided == "fail":
        names = ", ".join(f"{v.task} {v.metric}@{v.precision} (n={v.comparison.n})" for v in undecided[:3])
        return GateDecision(
            "undecided",
            f"{len(undecided)} gated comparisons cannot decide (fewer than {policy.min_samples} items, or too few "
            f"for p < {policy.alpha:g}): {names}; evaluate more items, lower min_samples, or set undecided: warn",
        )
    return GateDecision("pass", f"{len(decided)} gated comparisons decided, no regression")
