"""The report's Leakage section: what was checked, every evaluated item found in training data with the row and the
evidence, and what the leak did to each stage's gain (flagged items against clean ones). The same text serves
``report.md``, ``report.html`` and ``ftbench leak``."""

from __future__ import annotations

from markupsafe import Markup, escape

from ftbench.harness.leakage.audit_models import AuditThresholds, Evidence
from ftbench.harness.leakage.findings import LeakageAudit
from ftbench.reports.analysis import Analysis
from ftbench.reports.leak_effect import LeakSplit, ReportLeakage
from ftbench.reports.mdtext import inline, table
from ftbench.reports.numbers import delta_text, fmt, fmt_p

TITLE = "Leakage: was the gain learned or leaked?"
FLAGGED_HEADER = ["task", "doc", "item", "evidence", "training row", "source"]
SPLIT_HEADER = ["comparison", "task", "metric", "Δ all items", "flagged n", "Δ flagged [95% CI]", "clean n"]
SPLIT_HEADER += ["Δ clean [95% CI]", "p clean"]
SPLIT_LEDE = (
    "Each stage against its parent on the items its lineage's training data holds (flagged) and on the others "
    "(clean), with the report's paired comparison on each part: a gain that holds on the clean items was learned."
)


def evidence_text(evidence: list[Evidence]) -> str:
    """``exact; 13-grams 5/17; substring ≥ 62 chars; Jaccard 0.62``."""
    parts = []
    for found in evidence:
        if found.kind == "exact":
            parts.append("exact (normalised)")
        elif found.kind == "ngram":
            parts.append(f"{found.n}-grams {found.shared}/{found.item_ngrams}")
        elif found.kind == "substring":
            parts.append(f"substring ≥ {found.lower_bound} chars")
        else:
            parts.append(f"Jaccard {found.jaccard:.2f}")
    return "; ".join(parts)


def thresholds_text(thresholds: AuditThresholds) -> str:
    """The rules an item was checked by, in one sentence."""
    return (
        f"exact copies after normalisation (case, punctuation, spacing), any shared word 13-gram "
        f"(8-grams for items under {thresholds.short_item_words} words, {thresholds.short_min_share:.0%} of them), "
        f"a common substring of {thresholds.substring_chars} characters ({thresholds.substring_rule}), "
        f"MinHash Jaccard ≥ {thresholds.jaccard}"
    )


def checked_text(audit: LeakageAudit) -> str:
    """What was checked against what."""
    tasks = ", ".join(f"{task.task} {task.items}" for task in audit.tasks)
    items = sum(task.items for task in audit.tasks)
    rows = sum(source.rows for source in audit.sources)
    sources = ", ".join(f"{source.label} {source.rows}" for source in audit.sources)
    return (
        f"Checked {items} evaluated items ({tasks}) against {rows} training texts ({sources}): "
        f"{thresholds_text(audit.thresholds)}."
    )


def verdict_text(audit: LeakageAudit) -> str:
    """Whether anything was found."""
    if not audit.sources:
        return (
            "No training data to check: no checkpoint here has fingerprints in its lineage (stages ftbench trains "
            "keep them; `ftbench leak --train-data FILE` checks any file)."
        )
    if audit.flagged == 0:
        return "Nothing found: no evaluated item is in the training data."
    by_task = ", ".join(f"{task.task} {len(task.flagged)} of {task.items}" for task in audit.tasks if task.flagged)
    return f"Found {audit.flagged} evaluated items in the training data ({by_task})."


def flagged_rows(audit: LeakageAudit) -> list[list[str]]:
    """One row per flagged item: its strongest match."""
    labels = {source.key: source.label for source in audit.sources}
    rows = []
    for task in audit.tasks:
        for item in task.flagged:
            match = item.matches[0]
            more = f" (+{item.matched_rows - 1} more)" if item.matched_rows > 1 else ""
            rows.append(
                [task.task, str(item.doc_id), item.item_id or "–", evidence_text(match.evidence), match.row + more,
                 labels.get(match.source, match.source)]
            )  # fmt: skip
    return rows


def _with_interval(split: LeakSplit, part: str) -> str:
    found = getattr(split, part)
    if found is None:
        return "–"
    return (
        f"{delta_text(found.delta)} [{fmt(found.interval.low, found.delta)}, {fmt(found.interval.high, found.delta)}]"
    )


def split_rows(splits: list[LeakSplit]) -> list[list[str]]:
    """One row per stage comparison with flagged items."""
    return [
        [split.pair, split.task, split.metric, delta_text(split.overall.delta) if split.overall else "–",
         str(split.flagged_items), _with_interval(split, "flagged"), str(split.clean_items),
         _with_interval(split, "clean"), fmt_p(split.clean.p_value) if split.clean else "–"]
        for split in splits
    ]  # fmt: skip


def section_lines(leakage: ReportLeakage) -> list[str]:
    """The section as markdown lines (without its title)."""
    if leakage.audit is None:
        return [f"The lineage could not be audited: {inline(leakage.problem)}", ""]
    audit = leakage.audit
    lines = [inline(verdict_text(audit)), ""]
    if audit.sources:
        lines += [inline(checked_text(audit)), ""]
    if audit.flagged:
        lines += [*table(FLAGGED_HEADER, flagged_rows(audit)), ""]
    if leakage.splits:
        lines += [SPLIT_LEDE, "", *table(SPLIT_HEADER, split_rows(leakage.splits)), ""]
    return lines + [f"- note: {inline(note)}" for note in audit.notes] + ([""] if audit.notes else [])


def leakage_markdown(analysis: Analysis) -> list[str]:
    """The report's Leakage section in markdown."""
    if analysis.leakage is None:
        return []
    return [f"## {TITLE}", "", *section_lines(analysis.leakage)]


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(value)}</td>" for value in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def leakage_html(analysis: Analysis) -> Markup:
    """The report's Leakage section in HTML, every string escaped."""
    leakage = analysis.leakage
    if leakage is None:
        return Markup("")
    parts = [f'<h2 id="leakage">{escape(TITLE)}</h2>']
    if leakage.audit is None:
        return Markup("".join([*parts, f"<p>The lineage could not be audited: {escape(leakage.problem)}</p>"]))
    audit = leakage.audit
    parts.append(f"<p>{escape(verdict_text(audit))}</p>")
    if audit.sources:
        parts.append(f'<p class="muted">{escape(checked_text(audit))}</p>')
    if audit.flagged:
        parts.append(_html_table(FLAGGED_HEADER, flagged_rows(audit)))
    if leakage.splits:
        parts += [f"<p>{escape(SPLIT_LEDE)}</p>", _html_table(SPLIT_HEADER, split_rows(leakage.splits))]
    parts += [f'<p class="muted">{escape(note)}</p>' for note in audit.notes]
    return Markup("".join(parts))
