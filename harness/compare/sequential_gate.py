"""The sequential gate's decision: which metrics it covers, each metric's verdict from the candidate's items in
their evaluated order, and the gate's answer, under the same policy as the fixed-n gate (``policy.py``).

A gated metric is covered when every item has a score in a known range: 0/1 metrics and bounded per-sample scores
(rewards, win rate, chrF-like sentence scores, exact match, F1). Corpus metrics (corpus BLEU, perplexity) and
unbounded scores are refused, naming the metric, for the fixed-n gate. ``gate`` mode calls a regression when the
confidence sequence lies wholly below −(allowed drop), a pass when it lies wholly above it; ``equivalence`` mode
calls a regression when it lies wholly below −margin and equivalence when it lies within ±margin. Each verdict is
anytime-valid (``sequential.py``): its error holds however often the gate looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from ftbench.harness.compare.policy import GateDecision, GatePolicy, MetricRule, allowed_drop
from ftbench.harness.compare.sequential import SequentialVerdict, confidence_sequence, fewest_items, sequential_verdict
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord, SampleRecord
from ftbench.tasks.base import Task

SequentialStatus = Literal["regression", "pass", "equivalent", "undecided", "continue"]


class GatedMetric(NamedTuple):
    """One metric the sequential gate judges: of which task and precision, under which rule, and the baseline's
    per-item scores by item (doc id, doc hash)."""

    task: Task
    metric: str
    precision: str
    mode: Literal["gate", "equivalence"]
    margin: float
    """The allowed drop (gate mode) or the equivalence margin, in the metric's scale."""
    bound: float
    """B: every paired difference lies in [−B, B]."""
    binary: bool
    higher_is_better: bool
    baseline: dict[tuple[int, str], float]

    @property
    def label(self) -> str:
        """``task metric@precision``."""
        return f"{self.task.name} {self.metric}@{self.precision}"


class SequentialJudgement(NamedTuple):
    """One metric's verdict so far, and the path of its confidence sequence (after each item)."""

    gated: GatedMetric
    status: SequentialStatus
    verdict: SequentialVerdict
    lower: list[float]
    upper: list[float]
    estimate: list[float]


def _rule_margin(rule: MetricRule, baseline_mean: float) -> float:
    if rule.mode == "equivalence":
        return float(rule.margin or 0.0)
    return allowed_drop(rule, baseline_mean) or 0.0


def gated_metric(task: Task, metric: str, record: EvalRecord, policy: GatePolicy) -> GatedMetric | None:
    """The sequential judgement of ``metric`` of a baseline evaluation, or None where the policy does not gate it.

    Raises:
        FtbenchError: a gated metric the sequential gate cannot cover (a corpus metric, an unbounded score, no
            per-sample scores), naming it and the fixed-n gate.
    """
    rule = policy.rule(task, metric)
    if rule.mode not in ("gate", "equivalence"):
        return None
    info = task.metrics[metric]
    bounds = info.score_bounds
    label = f"{task.name} {metric}@{record.variant.precision}"
    if bounds is None:
        what = "a corpus metric" if info.kind == "corpus" else "a score with no known range"
        raise FtbenchError(
            f"--sequential cannot gate {label}: it is {what}, whose per-item scores bound no mean; gate it with the "
            f"fixed-n gate (leave out --sequential), or set its rule to mode: warn"
        )
    key = info.sample_score or metric
    scores = {(s.doc_id, s.doc_hash): s.scores.get(key) for s in record.samples}
    if any(value is None for value in scores.values()):
        raise FtbenchError(f"--sequential cannot gate {label}: its samples carry no per-item {key!r} scores")
    baseline = {item: float(value) for item, value in scores.items() if value is not None}
    margin = _rule_margin(rule, float(np.mean(list(baseline.values()))))
    bound = float(bounds[1] - bounds[0])
    if margin >= bound:
        raise FtbenchError(f"the policy's margin {margin:g} for {label} is not below the score's range {bound:g}")
    mode: Literal["gate", "equivalence"] = "equivalence" if rule.mode == "equivalence" else "gate"
    precision = str(record.variant.precision)
    return GatedMetric(
        task, metric, precision, mode, margin, bound, info.kind == "binary", info.higher_is_better, baseline
    )


def check_budget(gated: Sequence[GatedMetric], budget: int, alpha: float) -> None:
    """Refuse a budget no verdict could ever be reached within.

    Raises:
        FtbenchError: naming the metric, the items it needs at least and the fix.
    """
    for metric in gated:
        fewest = fewest_items(metric.bound, margin=metric.margin, binary=metric.binary, alpha=alpha)
        least = min(n for n in (fewest.regression, fewest.passed) if n is not None) if any(fewest) else None
        if least is None or least > budget:
            raise FtbenchError(
                f"{metric.label} can reach no verdict within {budget} items (it needs at least {least or 'more'}); "
                "evaluate the baseline on more items, raise the budget, or use the fixed-n gate"
            )


def differences(gated: GatedMetric, samples: Sequence[SampleRecord]) -> np.ndarray:
    """The candidate's paired differences in evaluated order, oriented so that positive is better.

    Raises:
        FtbenchError: an item the baseline does not hold (by doc id and doc hash), or one without the score.
    """
    key = gated.task.metrics[gated.metric].sample_score or gated.metric
    found = []
    for sample in samples:
        base = gated.baseline.get((sample.doc_id, sample.doc_hash))
        value = sample.scores.get(key)
        if base is None or value is None:
            raise FtbenchError(
                f"{gated.label}: item {sample.doc_id} of the candidate is not an item of the baseline; evaluate the "
                "candidate with the baseline's settings"
            )
        found.append(value - base if gated.higher_is_better else base - value)
    return np.asarray(found, dtype=float)


def judge_sequential(
    gated: GatedMetric, samples: Sequence[SampleRecord], budget: int, chunk: int, alpha: float
) -> SequentialJudgement:
    """``gated``'s verdict after the candidate's ``samples`` (in evaluated order), looking every ``chunk`` items."""
    found = differences(gated, samples)
    path = confidence_sequence(found, gated.bound, binary=gated.binary, alpha=alpha)
    margin = gated.margin
    if gated.mode == "gate":
        verdict = sequential_verdict(found, gated.bound, budget=budget, margin=margin, binary=gated.binary,
                                     alpha=alpha, chunk=chunk)  # fmt: skip
        status: SequentialStatus = verdict.decision
    else:
        verdict, status = _equivalence(found, path.lower, path.upper, gated, budget, chunk)
    return SequentialJudgement(gated, status, verdict, path.lower.tolist(), path.upper.tolist(), path.estimate.tolist())


def _equivalence(
    found: np.ndarray, lower: np.ndarray, upper: np.ndarray, gated: GatedMetric, budget: int, chunk: int
) -> tuple[SequentialVerdict, SequentialStatus]:
    """Equivalence mode: at the first look where the sequence lies below −margin (a regression) or within ±margin
    (equivalent); else undecided at the budget, or continue."""
    looks = sorted({*range(chunk, len(found) + 1, chunk), *([budget] if len(found) == budget else [])})
    for look in looks:
        low, high = lower[look - 1], upper[look - 1]
        status: SequentialStatus | None = None
        if high < -gated.margin:
            status = "regression"
        elif -gated.margin < low and high < gated.margin:
            status = "equivalent"
        if status is not None:
            estimate = float(np.mean(found[:look]))
            return SequentialVerdict("pass", look, estimate, float(low), float(high), None), status
    state: SequentialStatus = "undecided" if len(found) >= budget else "continue"
    estimate = float(np.mean(found)) if len(found) else 0.0
    last_low = float(lower[-1]) if len(found) else -gated.bound
    last_high = float(upper[-1]) if len(found) else gated.bound
    return SequentialVerdict("undecided" if state == "undecided" else "continue", len(found), estimate, last_low,
                             last_high, None), state  # fmt: skip


def decide_sequential(judgements: Sequence[SequentialJudgement]) -> GateDecision:
    """The gate's answer: a regression if any gated metric regressed, a pass once every one passed (or is
    equivalent), undecided when the budget ran out first."""
    regressed = [j for j in judgements if j.status == "regression"]
    if regressed:
        return GateDecision("regression", f"{len(regressed)} gated metrics regressed (sequential, anytime-valid)")
    open_ = [j for j in judgements if j.status in ("undecided", "continue")]
    if open_:
        names = ", ".join(j.gated.label for j in open_[:3])
        return GateDecision("undecided", f"{len(open_)} gated metrics undecided at the budget: {names}")
    return GateDecision("pass", f"{len(judgements)} gated metrics decided with no regression (sequential)")


def finished(judgements: Sequence[SequentialJudgement]) -> bool:
    """Whether every gated metric has its verdict (the budget is spent for the undecided ones)."""
    return all(j.status != "continue" for j in judgements)
