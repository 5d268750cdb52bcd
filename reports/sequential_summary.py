"""The sequential gate's outputs: a markdown summary (the decision, then every gated metric with its verdict, the
items it took against its budget, the confidence sequence at the stop and, where undecided, the smallest drop the
budget could still have detected) and JUnit XML, one test case per task × metric × precision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.etree import ElementTree

from ftbench.harness.compare.policy import GateDecision
from ftbench.harness.compare.sequential_gate import SequentialJudgement
from ftbench.reports.mdtext import inline, plain, table

HEADLINES = {
    "pass": "PASS: no regression",
    "regression": "FAIL: the candidate regressed",
    "undecided": "COULD NOT DECIDE",
}
ICONS = {"regression": "❌", "undecided": "⚠️", "continue": "⚠️", "pass": "✅", "equivalent": "✅"}


def verdict_reason(judgement: SequentialJudgement) -> str:
    """Why a metric got its verdict, in words: the sequence against the margin, or what the budget could detect."""
    g, v = judgement.gated, judgement.verdict
    where = f"sequence [{v.lower:.4g}, {v.upper:.4g}] after {v.items} items"
    if judgement.status == "regression":
        return f"worse beyond −{g.margin:.4g}: {where}"
    if judgement.status == "pass":
        return f"no worse than −{g.margin:.4g}: {where}"
    if judgement.status == "equivalent":
        return f"within ±{g.margin:.4g}: {where}"
    detects = f"; the budget detects drops ≥ {v.detectable_drop:.4g}" if v.detectable_drop is not None else ""
    return f"neither side of −{g.margin:.4g} by the budget: {where}{detects}"


def render_sequential_markdown(
    judgements: Sequence[SequentialJudgement],
    budgets: Mapping[tuple[str, str], int],
    baseline: str,
    candidate: str,
    decision: GateDecision,
    terminal: bool = False,
) -> str:
    """A summary for a CI job or a pull request: the decision first, then every gated metric.

    Args:
        judgements: each gated metric's judgement at the stop.
        budgets: each task × precision's budget of items.
        baseline: the baseline, as given.
        candidate: the candidate's results directory.
        decision: the gate's decision.
        terminal: for a terminal: nothing HTML-escaped, control characters written out.
    """
    text = plain if terminal else inline
    used = sum(max((j.verdict.items for j in judgements if j.gated.task.name == t and j.gated.precision == p),
                   default=0) for t, p in budgets)  # fmt: skip
    lines = [
        f"## ftbench gate (sequential): {HEADLINES[decision.outcome]}",
        "",
        f"{text(decision.reason)}.",
        "",
        f"Candidate `{text(candidate)}` against baseline `{text(baseline)}`, {used} of {sum(budgets.values())} items "
        "evaluated. Each gated metric's paired difference (candidate − baseline, better positive) has an "
        "anytime-valid confidence sequence: a regression once it lies wholly below −margin, a pass once wholly above "
        "it; each verdict's error holds however often the gate looks.",
        "",
    ]
    header = ["", "task", "metric", "precision", "items / budget", "Δ", "sequence at stop", "margin", "why"]
    rows = [
        [
            f"{ICONS[j.status]} {j.status}",
            j.gated.task.name,
            j.gated.metric,
            j.gated.precision,
            f"{j.verdict.items} / {budgets[(j.gated.task.name, j.gated.precision)]}",
            f"{j.verdict.estimate:+.4g}",
            f"[{j.verdict.lower:.4g}, {j.verdict.upper:.4g}]",
            f"{j.gated.margin:.4g}",
            verdict_reason(j),
        ]
        for j in sorted(judgements, key=lambda j: list(ICONS).index(j.status))
    ]
    return "\n".join([*lines, *table(header, rows, text)]) + "\n"


def render_sequential_junit(
    judgements: Sequence[SequentialJudgement], decision: GateDecision, suite: str = "ftbench gate"
) -> str:
    """JUnit XML: a failure per regression, an error per metric left undecided when the gate could not decide."""
    failures = sum(j.status == "regression" for j in judgements)
    undecided = [j for j in judgements if decision.outcome == "undecided" and j.status in ("undecided", "continue")]
    root = ElementTree.Element(
        "testsuite", name=suite, tests=str(len(judgements)), failures=str(failures), errors=str(len(undecided))
    )
    for j in judgements:
        g = j.gated
        case = ElementTree.SubElement(
            root, "testcase", classname=f"ftbench.{g.task.name}", name=f"{g.metric}@{g.precision}"
        )
        reason = verdict_reason(j)
        if j.status == "regression":
            ElementTree.SubElement(case, "failure", message=reason, type="regression").text = reason
        elif j in undecided:
            ElementTree.SubElement(case, "error", message=reason, type="undecided").text = reason
        else:
            ElementTree.SubElement(case, "system-out").text = f"{j.status}: {reason}"
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
