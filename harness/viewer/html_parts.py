"""The pieces every viewer page is made of: escaping, tables, the page frame with its content security policy,
the pages' two scripts and the history plot.

Everything from the store passes through ``esc`` (model output above all: a response is data, never markup). The
policy admits only the page's own scripts, by hash, and loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Callable, Iterable, Sequence

from ftbench.harness.compare.grid import MARKS, SHORT, Change, GridEntry, TaskGrid, change_title, colour_key, signed
from ftbench.harness.core.precision import Precision

FILTER_SCRIPT = """
for (const box of document.querySelectorAll("[data-filter]")) {
  const table = document.getElementById(box.dataset.filter);
  const pick = document.querySelector(`[data-pick="${box.dataset.filter}"]`);
  const apply = () => {
    const text = box.value.toLowerCase(), wanted = pick ? pick.value : "";
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const show = row.textContent.toLowerCase().includes(text) && (!wanted || row.dataset.kind === wanted);
      row.hidden = !show; shown += show ? 1 : 0;
    }
    document.getElementById(box.dataset.filter + "-count").textContent = shown;
  };
  box.addEventListener("input", apply);
  if (pick) pick.addEventListener("change", apply);
  apply();
}
"""
"""Search (text) and filter (a row's kind) over a table's rows, in the page itself (live or exported)."""
REFRESH_SCRIPT = """
const stamp = document.body.dataset.stamp;
setInterval(async () => {
  try {
    const now = await (await fetch("/api/stamp", {cache: "no-store"})).text();
    if (now !== stamp) location.reload();
  } catch (error) {}
}, 5000);
"""
"""Live pages reload when the store changes (a run is writing)."""
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{white-space:pre-wrap;word-break:break-word;margin:0;max-width:60ch;font-size:12px}
tr.gained td,tr.better td{background:#eefbea} tr.lost td,tr.worse td{background:#fdecec}
nav a{margin-right:1em} .muted{color:#777} svg{border:1px solid #ddd;background:#fff}
table.change-matrix caption{text-align:left;padding:.2em 0} table.change-matrix td.cell{min-width:10em}
.value{font-weight:600} .mark{font-weight:700}
.change{display:block;margin-top:.15em;padding:0 .35em;border-radius:3px;border:1px solid transparent;
white-space:nowrap;font-size:.9em;color:#222;text-decoration:none;--c:#f3f3f3;background:var(--c)}
.legend .change{display:inline-block;margin:.1em .2em} a.change{text-decoration:underline dotted}
.change.faded{background:color-mix(in srgb,var(--c) 40%,#fff);border:1px dashed #999}
.tone-better.level-1{--c:#d1e5f0} .tone-better.level-2{--c:#92c5de} .tone-better.level-3{--c:#4393c3}
.tone-worse.level-1{--c:#fddbc7} .tone-worse.level-2{--c:#f4a582} .tone-worse.level-3{--c:#e0735f}
"""


def esc(value: object) -> str:
    """Text (any value, as ``str``) safe in HTML content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def pre(text: str) -> str:
    """Text shown as it is, whitespace kept."""
    return f"<pre>{esc(text)}</pre>"


def number(value: float | None, like: float | None = None) -> str:
    """A metric value: two decimals at 10 and above, else three; a dash for none."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.2f}" if abs(like if like is not None else value) >= 10 else f"{value:.3f}"


def with_interval(value: float, low: float | None, high: float | None) -> str:
    """``value [low, high]``, or the value alone without an interval."""
    if low is None or high is None:
        return number(value)
    return f"{number(value)} [{number(low, value)}, {number(high, value)}]"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], table_id: str = "", kinds: Sequence[str] = ()) -> str:
    """A table of cells given as HTML (escape them first); ``kinds`` tag each row for styling and filtering."""
    head = "".join(f"<th>{esc(name)}</th>" for name in header)
    body = []
    for index, row in enumerate(rows):
        kind = kinds[index] if index < len(kinds) else ""
        tag = f' class="{esc(kind)}" data-kind="{esc(kind)}"' if kind else ""
        body.append(f"<tr{tag}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def search_box(table_id: str, kinds: Sequence[tuple[str, str]] = ()) -> str:
    """A search field (and a kind filter) over the table ``table_id``, with the count of rows shown."""
    pick = ""
    if kinds:
        options = "".join(f'<option value="{esc(value)}">{esc(label)}</option>' for value, label in kinds)
        pick = f' <select data-pick="{esc(table_id)}"><option value="">all</option>{options}</select>'
    box = f'<input type="search" placeholder="search" data-filter="{esc(table_id)}">'
    return f'<p>{box}{pick} <span id="{esc(table_id)}-count"></span> shown</p>'


def _script_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def content_policy(scripts: Sequence[str]) -> str:
    """The content security policy of a page running ``scripts``: nothing loaded from anywhere, only these scripts
    (by hash), inline style, forms and fetches to the page's own origin."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'self'; "
        f"connect-src 'self'; script-src {' '.join(_script_hash(s) for s in scripts)}"
    )


def live_policy() -> str:
    """The policy the live viewer sends as a header with every response: any of its pages' scripts, and no page
    may frame it (``frame-ancestors`` cannot be set by a page's own policy tag)."""
    return content_policy([FILTER_SCRIPT, REFRESH_SCRIPT]) + "; frame-ancestors 'none'"


def page(title: str, body: str, nav: str, live_stamp: str | None = None) -> str:
    """A whole page: escaped title, the policy, the style, the navigation, the body and the scripts (the refresh
    script only for a live page, whose store's state is ``live_stamp``)."""
    scripts = [FILTER_SCRIPT] + ([REFRESH_SCRIPT] if live_stamp is not None else [])
    policy = content_policy(scripts)
    stamp = f' data-stamp="{esc(live_stamp)}"' if live_stamp is not None else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body{stamp}><nav>{nav}</nav><h1>{esc(title)}</h1>{body}"
        + "".join(f"<script>{script}</script>" for script in scripts)
        + "</body></html>"
    )


COLOURS = ("#36c", "#d62", "#393", "#93c", "#c39", "#666")


def history_plot(labels: Sequence[str], values: Sequence[tuple[float, float | None, float | None]],
                 series: Sequence[str]) -> str:  # fmt: skip
    """An SVG of values in order with their interval bars, one line per series (precision) with a legend; each
    point's title is its (escaped) label."""
    width, height, pad = max(360, 40 * len(values) + 80), 260, 40
    finite = [v for point in values for v in point if v is not None and math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = (high - low) or 1.0

    def y(value: float) -> float:
        return height - pad - (value - low) / span * (height - 2 * pad)

    def x(index: int) -> float:
        return pad + index * (width - 2 * pad) / max(1, len(values) - 1)

    names = list(dict.fromkeys(series))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for number_, name in enumerate(names):
        colour = COLOURS[number_ % len(COLOURS)]
        mine = [i for i, s in enumerate(series) if s == name]
        line = " ".join(f"{x(i):.1f},{y(values[i][0]):.1f}" for i in mine)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
        parts.append(f'<text x="{pad + 90 * number_}" y="14" font-size="11" fill="{colour}">{esc(name)}</text>')
        for i in mine:
            value, bottom, top = values[i]
            if bottom is not None and top is not None:
                bar = f'x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(bottom):.1f}" y2="{y(top):.1f}"'
                parts.append(f'<line {bar} stroke="{colour}" stroke-opacity="0.45"/>')
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="{colour}"><title>'
                         f"{esc(labels[i])}: {number(value)}</title></circle>")  # fmt: skip
    for value in (low, high):
        parts.append(f'<text x="2" y="{y(value) + 4:.1f}" font-size="10">{number(value)}</text>')
    return "".join(parts) + "</svg>"


Href = Callable[[GridEntry], str | None]
"""Where a matrix cell links: an entry's evaluation page."""
ChangeHref = Callable[[Change, GridEntry], str | None]
"""Where a change links: the comparison of its reference and the entry."""


def _change_html(change: Change, entry: GridEntry, href: ChangeHref) -> str:
    faded = " faded" if change.mark not in ("better", "worse") else ""
    title = esc(change_title(change, entry))
    delta = f" {esc(signed(change.delta))}" if change.delta is not None else ""
    text = f'{esc(SHORT[change.kind])} <span class="mark">{esc(MARKS[change.mark].symbol)}</span>{delta}'
    tag, link = ("a", f' href="{esc(target)}"') if (target := href(change, entry)) else ("span", "")
    return (f'<{tag}{link} class="change tone-{change.tone} level-{change.level}{faded}" data-kind="{change.kind}" '
            f'data-mark="{change.mark}" title="{title}" aria-label="{title}">{text}</{tag}>')  # fmt: skip


def _matrix_cell(
    grid: TaskGrid, checkpoint: str, precision: Precision, evaluation: Href, comparison: ChangeHref
) -> str:
    place = f'data-checkpoint="{esc(checkpoint)}" data-precision="{esc(precision)}"'
    cell = grid.cell(checkpoint, precision)
    if cell is None:
        return f'<td class="cell missing muted" {place} title="not evaluated">–</td>'
    entry = cell.entry
    low, high = entry.interval if entry.interval is not None else (None, None)
    value = f'<div class="value num">{_a_or_text(evaluation(entry), number(entry.value))}</div>'
    changes = "".join(_change_html(c, entry, comparison) for c in (cell.parent, cell.widest) if c is not None)
    title = esc(f"{checkpoint}@{precision}: {with_interval(entry.value, low, high)}")
    return f'<td class="cell" {place} title="{title}">{value}{changes}</td>'


def change_matrix(grid: TaskGrid, evaluation: Href, comparison: ChangeHref) -> str:
    """A task's matrix: each cell the variant's value (linked to its evaluation) and its marked changes
    against its parent stage and its widest precision (linked to their comparisons where there is one)."""
    direction = "higher is better" if grid.higher_is_better else "lower is better"
    caption = f'<caption><strong>{esc(grid.task)}: {esc(grid.metric)}</strong> <span class="muted">({direction})</span>'
    head = "".join(f'<th scope="col">{esc(p)}</th>' for p in grid.columns)
    rows = [
        f'<tr><th scope="row">{esc(checkpoint)} <span class="muted">({esc(stage)})</span></th>'
        + "".join(_matrix_cell(grid, checkpoint, p, evaluation, comparison) for p in grid.columns)
        + "</tr>"
        for checkpoint, stage in grid.rows
    ]
    return (
        f'<table class="change-matrix" data-task="{esc(grid.task)}">{caption}</caption><thead><tr>'
        f'<th scope="col">checkpoint (stage)</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _a_or_text(href: str | None, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>' if href else esc(text)


def colour_legend() -> str:
    """The colours' key: better and worse by size, and the faded look of a change that is not significant."""
    swatches = "".join(
        f'<span class="change tone-{s.tone} level-{s.level}{" faded" if s.faded else ""}">{esc(s.meaning)}</span>'
        for s in colour_key()
    )
    return f'<p class="legend">Colour: {swatches}</p>'
