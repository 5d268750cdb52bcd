"""Text from records (names, paths, reasons) made safe for markdown: one line, no raw HTML, no broken tables.

Every markdown file ftbench writes (``summary.md``, ``report.md``, the gate's summary) passes names through here:
a checkpoint or task name is data, never markup. The same tables shown on a terminal use ``plain`` instead: no
HTML escapes (``<0.001`` reads as it is), control characters written out.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from ftbench.harness.core.names import terminal_text


def inline(text: object) -> str:
    """A value safe inside one markdown line: no line breaks, no raw HTML."""
    return html.escape(" ".join(str(text).split()), quote=False)


def plain(text: object) -> str:
    """A value for one line of a terminal: no line breaks, control characters written out, nothing HTML-escaped."""
    return terminal_text(" ".join(str(text).split()))


def cell(text: object) -> str:
    """A value safe inside one table cell: ``inline`` with its pipes escaped."""
    return inline(text).replace("|", "\\|")


def code(text: object) -> str:
    """A value shown as inline code: ``inline``, without backticks (which would end the span). Escaped even inside
    the span, so that no markdown file holds a raw ``<`` from a record, whatever renders it."""
    return "`" + inline(text).replace("`", "'") + "`"


def table(header: list[str], rows: list[list[str]], text: Callable[[object], str] = inline) -> list[str]:
    """A markdown table, header and cells each on one line (``text``: ``inline`` for a file, ``plain`` for a
    terminal) with their pipes escaped."""

    def one(value: object) -> str:
        return text(value).replace("|", "\\|")

    lines = ["| " + " | ".join(one(name) for name in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(one(value) for value in row) + " |" for row in rows]
