"""The store's answers as text: a metric's history, a comparison of two evaluations and any query's rows, each
as markdown, CSV or JSON. Names pass through ``mdtext``; model output in markdown sits in fenced blocks whose
fence no response can close."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from ftbench.harness.compare.paired import MetricComparison
from ftbench.harness.core.names import terminal_lines, terminal_text
from ftbench.harness.index.comparison import ComparedItem, StoreComparison
from ftbench.harness.index.history import HistoryPoint
from ftbench.reports.mdtext import code, inline, table
from ftbench.reports.numbers import delta_text, fmt, fmt_p

TextFormat = Literal["md", "csv", "json"]
FORMATS: tuple[TextFormat, ...] = ("md", "csv", "json")
HISTORY_COLUMNS = list(HistoryPoint._fields)
COMPARISON_COLUMNS = ["metric", "n", "baseline", "candidate", "delta", "low", "high", "p_value", "test", "gained",
                      "lost", "note"]  # fmt: skip
CHANGE_TEXT = {"gained": "wrong → right", "lost": "right → wrong", "better": "better", "worse": "worse", "same": "same"}


def _plain(value: Any) -> Any:
    """A value JSON can hold: infinite and NaN floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _shown(value: Any) -> Any:
    """A CSV cell: text with its control characters written out (``terminal_text``), anything else as it is."""
    return terminal_text(value) if isinstance(value, str) else value


def rows_text(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt_: TextFormat) -> str:
    """Rows under their column names, as a markdown table, CSV or a JSON list of objects."""
    if fmt_ == "json":
        return json.dumps([{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows], indent=1)
    if fmt_ == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else _shown(v) for v in row] for row in rows)
        return buffer.getvalue().rstrip("\n")
    cells = [["–" if v is None else f"{v:.4g}" if isinstance(v, float) else terminal_text(v) for v in row]
             for row in rows]  # fmt: skip
    return "\n".join(table(list(columns), cells))


def history_text(points: list[HistoryPoint], fmt_: TextFormat) -> str:
    """A metric's history: one row per evaluation, with its 95% interval."""
    if fmt_ != "md":
        return rows_text(HISTORY_COLUMNS, points, fmt_)
    header = ["created", "checkpoint", "stage", "step", "precision", "value [95% CI]", "n", "key"]
    rows = [
        [p.created_at, p.checkpoint, p.stage, "–" if p.step is None else str(p.step), p.precision,
         f"{fmt(p.value)} [{fmt(p.low, p.value)}, {fmt(p.high, p.value)}]" if p.low is not None and p.high is not None
         else fmt(p.value), str(p.n), p.key]
        for p in points
    ]  # fmt: skip
    title = f"## {inline(points[0].task)} {inline(points[0].metric)}: {len(points)} evaluations" if points else ""
    return terminal_lines("\n".join([title, "", *table(header, rows)]))


def _metric_row(compared: MetricComparison) -> list[Any]:
    c = compared.comparison
    if c is None:
        return [compared.metric, *[None] * 10, compared.note]
    gained, lost = (len(c.flips.gained), len(c.flips.lost)) if c.flips is not None else (None, None)
    return [compared.metric, c.n, c.baseline, c.candidate, c.delta, _plain(c.interval.low), _plain(c.interval.high),
            c.p_value, c.test, gained, lost, compared.note]  # fmt: skip


def _fenced(text: str) -> list[str]:
    """``text`` as a fenced block that nothing inside it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def _item_lines(item: ComparedItem, labels: tuple[str, str]) -> list[str]:
    scores = f"{fmt(item.baseline_score)} → {fmt(item.candidate_score)}"
    lines = [f"### doc {item.doc_id}: {CHANGE_TEXT[item.change]} ({scores})", "", "prompt:", *_fenced(item.prompt)]
    lines += [f"baseline {code(labels[0])}:", *_fenced(item.baseline_response)]
    return [*lines, f"candidate {code(labels[1])}:", *_fenced(item.candidate_response), ""]


def _comparison_markdown(result: StoreComparison, limit: int) -> str:
    labels = (result.baseline[0].label, result.candidate[0].label)
    keys = (", ".join(i.key for i in result.baseline), ", ".join(i.key for i in result.candidate))
    lines = [f"## {inline(result.task)}: {code(labels[1])} ({keys[1]}) vs {code(labels[0])} ({keys[0]})", ""]
    header = ["metric", "n", "baseline", "candidate", "Δ", "95% CI of Δ", "p", "test", "flips"]
    rows = []
    for compared in result.metrics:
        c = compared.comparison
        if c is None:
            rows.append([compared.metric, *["–"] * 7, compared.note or ""])
            continue
        flips = f"+{len(c.flips.gained)} / −{len(c.flips.lost)}" if c.flips is not None else "–"
        ci = f"[{delta_text(c.interval.low)}, {delta_text(c.interval.high)}]"
        rows.append([compared.metric, str(c.n), fmt(c.baseline), fmt(c.candidate), delta_text(c.delta), ci,
                     fmt_p(c.p_value), c.test, flips])  # fmt: skip
    lines += [*table(header, rows), ""]
    lines += [*[f"- {inline(note)}" for note in result.notes], ""] if result.notes else []
    moved = [item for item in result.items if item.change != "same"]
    lines += [f"## Items that changed in {inline(result.metric)}: {len(moved)}", ""]
    shown = moved if limit <= 0 else moved[:limit]
    for item in shown:
        lines += _item_lines(item, labels)
    if len(shown) < len(moved):
        lines.append(f"… and {len(moved) - len(shown)} more (--items 0 shows all)")
    return "\n".join(lines).rstrip("\n")


def comparison_text(result: StoreComparison, fmt_: TextFormat, limit: int = 20) -> str:
    """A comparison: every metric's paired numbers, then the items that changed (the first ``limit``; 0: all)
    with both responses. CSV holds the metric rows only; JSON holds everything."""
    if fmt_ == "md":
        return terminal_lines(_comparison_markdown(result, limit))
    metric_rows = [_metric_row(compared) for compared in result.metrics]
    if fmt_ == "csv":
        return rows_text(COMPARISON_COLUMNS, metric_rows, "csv")
    moved = [item._asdict() for item in result.items if item.change != "same"]
    data = {
        "task": result.task,
        "baseline": [item._asdict() for item in result.baseline],
        "candidate": [item._asdict() for item in result.candidate],
        "metrics": [dict(zip(COMPARISON_COLUMNS, map(_plain, row), strict=True)) for row in metric_rows],
        "items_metric": result.metric,
        "changed_items": moved if limit <= 0 else moved[:limit],
        "notes": result.notes,
    }
    return json.dumps(data, indent=1, ensure_ascii=False)
