"""Write a comparison report (markdown and HTML) from stored results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.store import write_atomic
from ftbench.reports.analysis import analyse
from ftbench.reports.curves import plots_by_task
from ftbench.reports.html import render_html
from ftbench.reports.markdown import render_markdown


class ReportFiles(NamedTuple):
    """The files a report wrote."""

    markdown: Path
    html: Path
    curves: tuple[Path, ...] = ()
    """Each training curve's plot as an SVG file (results of ``FtbenchCallback`` or ``ftbench watch``)."""


def write_report(results_dirs: list[Path], out: Path, baseline: str | None = None) -> ReportFiles:
    """Analyse the results and write ``report.md`` and ``report.html`` into ``out``."""
    analysis = analyse(results_dirs, baseline)
    markdown, html = render_markdown(analysis), render_html(analysis)
    files = ReportFiles(out / "report.md", out / "report.html")
    write_atomic(files.markdown, markdown)
    write_atomic(files.html, html)
    curves = []
    for (run, task), svg in plots_by_task(analysis).items():
        curves.append(out / re.sub(r"[^A-Za-z0-9_.-]", "_", f"curve-{run}-{task}.svg"))
        write_atomic(curves[-1], svg)
    return files._replace(curves=tuple(curves))
