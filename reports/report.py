"""Write a comparison report (markdown and HTML) from stored results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.store import write_together
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
    """Analyse the results and write ``report.md`` and ``report.html`` (and each training curve's plot) into
    ``out``: every file or, when one cannot be written, none."""
    analysis = analyse(results_dirs, baseline)
    markdown, html = render_markdown(analysis), render_html(analysis)
    files = ReportFiles(out / "report.md", out / "report.html")
    texts = {files.markdown: markdown, files.html: html}
    for (run, task), svg in plots_by_task(analysis).items():
        texts[out / re.sub(r"[^A-Za-z0-9_.-]", "_", f"curve-{run}-{task}.svg")] = svg
    write_together(texts)  # every file or none
    return files._replace(curves=tuple(list(texts)[2:]))
