"""Write a comparison report (markdown and HTML) from stored results."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.store import write_atomic
from ftbench.reports.analysis import analyse
from ftbench.reports.html import render_html
from ftbench.reports.markdown import render_markdown


class ReportFiles(NamedTuple):
    """The files a report wrote."""

    markdown: Path
    html: Path


def write_report(results_dirs: list[Path], out: Path, baseline: str | None = None) -> ReportFiles:
    """Analyse the results and write ``report.md`` and ``report.html`` into ``out``."""
    analysis = analyse(results_dirs, baseline)
    markdown, html = render_markdown(analysis), render_html(analysis)
    files = ReportFiles(out / "report.md", out / "report.html")
    write_atomic(files.markdown, markdown)
    write_atomic(files.html, html)
    return files
