"""Text from records (names, paths, reasons) made safe for markdown: one line, no raw HTML, no broken tables.

Every markdown file ftbench writes (``summary.md``, ``report.md``, the gate's summary) passes names through here:
a checkpoint or task name is data, never markup.
"""

from __future__ import annotations

import html


def inline(text: object) -> str:
    """A value safe inside one markdown line: no line breaks, no raw HTML."""
    return html.escape(" ".join(str(text).split()), quote=False)


def cell(text: object) -> str:
    """A value safe inside one table cell: ``inline`` with its pipes escaped."""
    return inline(text).replace("|", "\\|")


def code(text: object) -> str:
    """A value shown as inline code: ``inline``, without backticks (which would end the span). Escaped even inside
    the span, so that no markdown file holds a raw ``<`` from a record, whatever renders it."""
    return "`" + inline(text).replace("`", "'") + "`"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table, header and cells each on one line with their pipes escaped."""
    lines = ["| " + " | ".join(cell(name) for name in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
