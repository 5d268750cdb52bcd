"""The gate's outputs: a markdown summary and JUnit XML (one test case per task × metric × precision)."""

from __future__ import annotations

from xml.etree import ElementTree

from ftbench.harness.compare.policy import GateDecision, Verdict
from ftbench.reports.mdtext import inline, plain, table
from ftbench.reports.numbers import detects_text
from ftbench.reports.rows import fmt_p

ICONS = {
    "regression": "❌",
    "warning": "⚠️",
    "insufficient": "⚠️",
    "not_equivalent": "⚠️",
    "improvement": "✅",
    "equivalent": "✅",
    "pass": "✅",
}
ORDER = list(ICONS)
HEADLINES = {
    "pass": "PASS: no regression",
    "regression": "FAIL: the candidate regressed",
    "undecided": "COULD NOT DECIDE",
}


def render_gate_markdown(
    verdicts: list[Verdict], baseline: str, candidate: str, decision: GateDecision, terminal: bool = False
) -> str:
    """A summary for a CI job or a pull request: the decision first, then every metric.

    Args:
        verdicts: the gate's verdicts.
        baseline: the baseline, as given.
        candidate: the candidate's results directory.
        decision: the gate's decision.
        terminal: for a terminal rather than a markdown file: nothing HTML-escaped (``<0.001``), control
            characters written out.
    """
    text = plain if terminal else inline

    def code(value: object) -> str:
        return "`" + text(value).replace("`", "'") + "`"

    regressions = [v for v in verdicts if v.status == "regression"]
    warnings = [v for v in verdicts if v.status in ("warning", "insufficient", "not_equivalent")]
    improvements = [v for v in verdicts if v.status == "improvement"]
    lines = [
        f"## ftbench gate: {HEADLINES[decision.outcome]}",
        "",
        f"{text(decision.reason)}.",
        "",
        f"Candidate {code(candidate)} against baseline {code(baseline)}: {len(regressions)} regressions, "
        f"{len(warnings)} warnings, {len(improvements)} improvements in {len(verdicts)} checks. A regression is a "
        "drop beyond the policy's margin that the paired test also finds significant. Flips: items wrong → right / "
        "right → wrong; detects ≥: the smallest change the paired test finds with 80% power at this n and the "
        "policy's alpha ('cannot decide': no change can be significant at this n).",
        "",
    ]
    header = ["", "task", "metric", "precision", "baseline", "candidate", "Δ", "95% CI of Δ", "p", "n", "detects ≥"]
    return "\n".join([*lines, *table([*header, "flips", "mode", "why"], _rows(verdicts), text)]) + "\n"


def _rows(verdicts: list[Verdict]) -> list[list[str]]:
    """One table row per verdict, regressions first."""
    rows = []
    for v in sorted(verdicts, key=lambda v: ORDER.index(v.status)):
        c = v.comparison
        interval = f"[{c.interval.low:.4g}, {c.interval.high:.4g}]"
        flips = f"+{len(c.flips.gained)} / −{len(c.flips.lost)}" if c.flips is not None else "–"
        numbers = [f"{c.baseline:.4g}", f"{c.candidate:.4g}", f"{c.delta:+.4g}", interval, fmt_p(c.p_value), str(c.n)]
        why = [detects_text(c), flips, v.mode, v.reason]
        rows.append([f"{ICONS[v.status]} {v.status}", v.task, v.metric, v.precision, *numbers, *why])
    return rows


def render_junit(verdicts: list[Verdict], decision: GateDecision, suite: str = "ftbench gate") -> str:
    """JUnit XML: a failure per regression, an error per gated comparison that could not decide when the gate
    could not decide; everything else passes with its reason in system-out."""
    failures = sum(v.status == "regression" for v in verdicts)
    undecided = decision.outcome == "undecided"
    errors = [v for v in verdicts if undecided and v.status in ("insufficient", "not_equivalent") and v.mode != "warn"]
    root = ElementTree.Element(
        "testsuite", name=suite, tests=str(len(verdicts)), failures=str(failures), errors=str(len(errors))
    )
    for v in verdicts:
        case = ElementTree.SubElement(root, "testcase", classname=f"ftbench.{v.task}", name=f"{v.metric}@{v.precision}")
        if v.status == "regression":
            ElementTree.SubElement(case, "failure", message=v.reason, type="regression").text = v.reason
        elif v in errors:
            ElementTree.SubElement(case, "error", message=v.reason, type="undecided").text = v.reason
        else:
            ElementTree.SubElement(case, "system-out").text = f"{v.status}: {v.reason}"
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
