"""The regression gate: a candidate fails when a gated metric drops beyond its margin *and* the paired test
says the drop is real. Thresholds alone flag noise on small sets; significance alone lets large drops through
on tiny ones; the gate needs both, and explains every verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import FtbenchError, first_error, read_yaml_mapping
from harness.results import EvalRecord, load_run_evals
from harness.statistics import PairedComparison, compare_paired, pair_samples
from tasks.registry import get_task

Mode = Literal["gate", "warn", "off"]
Status = Literal["pass", "regression", "warning", "improvement", "insufficient"]
SETTINGS_THAT_MUST_MATCH = (
    "limit",
    "task_options",
    "generation",
    "seed",
    "task_definition_hash",
    "task_data_hash",
    "dependencies",
)


class MetricRule(BaseModel):
    """How one metric is gated. A drop counts only when it exceeds every margin that is set."""

    model_config = ConfigDict(extra="forbid")

    max_drop: float | None = Field(default=None, ge=0)
    """Largest allowed drop, in the metric's own scale."""
    max_relative_drop: float | None = Field(default=0.05, ge=0)
    """Largest allowed drop as a share of the baseline value."""
    mode: Mode = "gate"


class GatePolicy(BaseModel):
    """The gate's policy: defaults for headline metrics, and rules per task and metric."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_samples: int = Field(default=20, ge=1)
    headline: MetricRule = Field(default_factory=MetricRule)
    """The rule of each task's headline metric, unless ``tasks`` says otherwise."""
    others: MetricRule = Field(default_factory=lambda: MetricRule(mode="warn"))
    """The rule of every other metric, unless ``tasks`` says otherwise."""
    tasks: dict[str, dict[str, MetricRule]] = Field(default_factory=dict)

    def rule(self, task: str, metric: str) -> MetricRule:
        """The rule that applies to ``metric`` of ``task``."""
        own = self.tasks.get(task, {}).get(metric)
        if own is not None:
            return own
        return self.headline if metric == get_task(task).headline else self.others


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
    for task in policy.tasks:
        get_task(task)
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


def _allowed_drop(rule: MetricRule, baseline: float) -> float | None:
    margins = [
        m
        for m in (rule.max_drop, None if rule.max_relative_drop is None else rule.max_relative_drop * abs(baseline))
        if m is not None
    ]
    return max(margins) if margins else None


def judge_metric(task: str, metric: str, precision: str, comparison: PairedComparison, policy: GatePolicy) -> Verdict:
    """Apply the policy to one paired comparison."""
    rule = policy.rule(task, metric)
    better = get_task(task).metrics[metric].higher_is_better
    drop = -comparison.delta if better else comparison.delta
    allowed = _allowed_drop(rule, comparison.baseline)
    beyond = drop > (allowed or 0.0)
    significant = comparison.p_value < policy.alpha
    where = (
        f"Δ {comparison.delta:+.4g} (allowed drop {allowed:.4g})"
        if allowed is not None
        else f"Δ {comparison.delta:+.4g}"
    )
    p_text = "p < 0.001" if comparison.p_value < 0.001 else f"p = {comparison.p_value:.3g}"
    stats = f"{p_text} by {comparison.test.replace('_', ' ')}, n = {comparison.n}"
    if comparison.n < policy.min_samples:
        status: Status = "insufficient"
        reason = f"only {comparison.n} paired samples (policy needs {policy.min_samples}); {where}, {stats}"
    elif beyond and significant:
        status = "regression" if rule.mode == "gate" else "warning"
        reason = f"worse beyond the margin and significant: {where}, {stats}"
    elif drop < -(allowed or 0.0) and significant:
        status, reason = "improvement", f"better and significant: {where}, {stats}"
    elif beyond:
        status, reason = "pass", f"drop beyond the margin but not significant: {where}, {stats}"
    else:
        status, reason = "pass", f"within the margin: {where}, {stats}"
    return Verdict(task, metric, precision, status, rule.mode, comparison, allowed, reason)


def check_comparable(baseline: EvalRecord, candidate: EvalRecord) -> None:
    """Refuse a candidate evaluated with other settings or on other items than the baseline.

    Raises:
        FtbenchError: the first setting that differs, or differing item sets.
    """
    label = f"{baseline.task} at {baseline.variant.precision}"
    for name in SETTINGS_THAT_MUST_MATCH:
        if baseline.key_fields.get(name) != candidate.key_fields.get(name):
            raise FtbenchError(
                f"candidate differs from the baseline in {name} for {label} "
                f"({candidate.key_fields.get(name)!r} vs {baseline.key_fields.get(name)!r}); evaluate it with the "
                "baseline's settings (give the checkpoint as --candidate) or update the baseline"
            )
    if {(s.doc_id, s.doc_hash) for s in baseline.samples} != {(s.doc_id, s.doc_hash) for s in candidate.samples}:
        raise FtbenchError(f"candidate was evaluated on other items than the baseline for {label}; use the same items")


def gate_records(
    baseline: list[EvalRecord], candidate: list[EvalRecord], policy: GatePolicy, seed: int = 0
) -> list[Verdict]:
    """Verdicts for every gated or warned metric of every baseline task × precision.

    Raises:
        FtbenchError: the candidate lacks a task × precision of the baseline, or is not comparable.
    """
    by_key = {(r.task, r.variant.precision): r for r in candidate}
    verdicts = []
    for base in baseline:
        other = by_key.get((base.task, base.variant.precision))
        if other is None:
            raise FtbenchError(
                f"candidate has no result for {base.task} at {base.variant.precision}, which the baseline has; "
                "evaluate it on the baseline's tasks and precisions"
            )
        check_comparable(base, other)
        info = get_task(base.task)
        pairs = pair_samples(base.samples, other.samples)
        for metric, meta in info.metrics.items():
            if policy.rule(base.task, metric).mode == "off" or metric not in base.metrics:
                continue
            corpus = info.corpus_metrics.get(metric)
            key = meta.sample_score or metric
            if corpus is None and any(key not in s.scores for pair in pairs for s in pair):
                continue
            iters = 500 if corpus is not None else 2000  # corpus metrics are recomputed per replicate
            comparison = compare_paired(key, meta.kind, pairs, corpus=corpus, iters=iters, seed=seed)
            verdicts.append(
                judge_metric(base.task, metric, base.variant.precision, comparison._replace(metric=metric), policy)
            )
    return verdicts


def gate_results(baseline_dir: Path, candidate_dir: Path, policy: GatePolicy) -> list[Verdict]:
    """Gate the run in ``candidate_dir`` against the run in ``baseline_dir``."""
    return gate_records(load_run_evals(baseline_dir), load_run_evals(candidate_dir), policy)


def failed(verdicts: list[Verdict]) -> bool:
    """Whether any gated metric regressed."""
    return any(v.status == "regression" for v in verdicts)
