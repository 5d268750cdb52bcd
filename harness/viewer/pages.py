"""The viewer's pages, rendered from the store: the home page (runs, evaluations with their metrics, a comparison
picker), one evaluation's samples, two evaluations compared item by item, and a metric's history.

Pages link through a ``Links`` value, so the same pages serve live (query URLs) and exported (file names).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Protocol

from ftbench.harness.compare.grid import legend_text
from ftbench.harness.compare.paired import MetricComparison
from ftbench.harness.core.answers import answer_for
from ftbench.harness.index.comparison import ComparedItem, compare_stored
from ftbench.harness.index.connection import Store
from ftbench.harness.index.history import metric_history
from ftbench.harness.index.lookup import Indexed, find_evaluations, list_evaluations, load_records
from ftbench.harness.index.store_matrix import store_grids
from ftbench.harness.viewer.html_parts import (
    change_matrix,
    colour_legend,
    esc,
    history_plot,
    number,
    page,
    pre,
    search_box,
    table,
    with_interval,
)
from ftbench.harness.viewer.leak_marks import leak_marks
from ftbench.harness.viewer.sequence_svg import gated_paths, sequence_svg
from ftbench.tasks.registry import recorded_task

CHANGES = [("gained", "wrong → right"), ("lost", "right → wrong"), ("better", "better"), ("worse", "worse"),
           ("same", "unchanged")]  # fmt: skip


class Links(Protocol):
    """Where the pages link to."""

    def home(self) -> str:
        """The home page."""
        ...

    def evaluation(self, key: str) -> str:
        """One evaluation's samples."""
        ...

    def comparison(self, first: str, second: str) -> str | None:
        """Two evaluations compared (None: not available, e.g. not exported)."""
        ...

    def history(self, task: str, metric: str) -> str | None:
        """A metric's history."""
        ...


def _a(href: str | None, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>' if href else esc(text)


def _nav(links: Links) -> str:
    return _a(links.home(), "ftbench store")


def _metrics_by_eval(store: Store) -> dict[int, list[tuple[str, float, float | None, float | None]]]:
    found: dict[int, list[tuple[str, float, float | None, float | None]]] = defaultdict(list)
    for eval_id, metric, value, low, high in store.execute(
        "SELECT eval_id, metric, value, low, high FROM metrics ORDER BY eval_id, metric"
    ):
        found[eval_id].append((metric, value, low, high))
    return found


def _runs_table(store: Store) -> str:
    rows = store.execute(
        "SELECT r.path, r.name, r.finished_at, count(l.eval_id) FROM runs r LEFT JOIN run_evaluations l "
        "ON l.run_id = r.run_id GROUP BY r.run_id, r.path, r.name, r.finished_at ORDER BY r.finished_at DESC"
    )
    return table(["run", "name", "finished", "evaluations"], [[esc(c) for c in row] for row in rows])


def _evaluations_table(store: Store, evaluations: list[Indexed], links: Links) -> str:
    metrics = _metrics_by_eval(store)
    rows = []
    for item in evaluations:
        shown = "<br>".join(
            f"{_a(links.history(item.task, name), name)} {esc(with_interval(value, low, high))}"
            for name, value, low, high in metrics[item.eval_id]
        )
        rows.append([esc(item.created_at), esc(item.task), esc(item.checkpoint), esc(item.stage), esc(item.precision),
                     shown, esc(item.n_samples), _a(links.evaluation(item.key), item.key)])  # fmt: skip
    header = ["created", "task", "checkpoint", "stage", "precision", "metrics [95% CI]", "n", "key"]
    return search_box("evaluations") + table(header, rows, "evaluations")


def _picker(evaluations: list[Indexed]) -> str:
    def options(chosen: int) -> str:
        return "".join(
            f'<option value="{esc(i.key)}"{" selected" if n == chosen else ""}>{esc(i.task)} · {esc(i.label)} · '
            f"{esc(i.created_at)} · {esc(i.key[:10])}</option>"
            for n, i in enumerate(evaluations)
        )

    selects = "".join(f'<label>{label} <select name="{name}">{options(chosen)}</select></label> '
                      for name, label, chosen in (("a", "baseline", 1), ("b", "candidate", 0)))  # fmt: skip
    form = f'<form action="/compare" method="get">{selects}<button>compare</button></form>'
    return f"<h2>Compare two evaluations</h2>{form}"


def _matrices(store: Store, links: Links) -> str:
    """Each task's matrix (the report's first screen) over the newest evaluation of every variant."""
    grids = store_grids(store, recorded_task)
    if not grids:
        return ""
    tables = "".join(
        change_matrix(grid, lambda entry: links.evaluation(entry.key),
                      lambda change, entry: links.comparison(change.reference.key, entry.key))
        for grid in grids
    )  # fmt: skip
    return f"<h2>At a glance</h2>{tables}<p class='legend'>{esc(legend_text())}</p>{colour_legend()}"


def home_page(store: Store, links: Links, live_stamp: str | None, compared: list[tuple[str, str]]) -> str:
    """The home page: each task's matrix, a comparison picker (live) or the exported comparisons, the
    evaluations, the runs."""
    evaluations = list_evaluations(store)
    by_key = {item.key: item for item in evaluations}
    if live_stamp is not None:
        top = _picker(evaluations)
    else:
        listed = "".join(
            f"<li>{_a(links.comparison(a, b), f'{by_key[b].task}: {by_key[b].label} vs {by_key[a].label}')}</li>"
            for a, b in compared
        )
        top = f"<h2>Comparisons</h2><ul>{listed}</ul>"
    body = _matrices(store, links) + top
    body += f"<h2>Evaluations ({len(evaluations)})</h2>{_evaluations_table(store, evaluations, links)}"
    body += f"<h2>Runs</h2>{_runs_table(store)}"
    return page(f"Results store: {store.location.label}", body, _nav(links), live_stamp)


def _choices(values: list[float] | None) -> str:
    return "–" if values is None else ", ".join(f"{v:.3f}" for v in values)


def _sequential(run: str | None, task: str, precision: str) -> str:
    """A sequential gate's confidence sequences, where this evaluation is its candidate's."""
    paths = gated_paths(run, task, precision)
    if not paths:
        return ""
    return "<h2>Sequential gate</h2>" + "".join(sequence_svg(metric) for metric in paths)


def evaluation_page(store: Store, key: str, links: Links, live_stamp: str | None = None) -> str:
    """One evaluation: its metrics, then every sample (prompt, response, target, scores, choices'
    log-likelihoods), searchable and filterable by whether the headline score is right."""
    found = find_evaluations(store, key)
    record = load_records(store, found)[0]
    info = recorded_task(record.request)
    headline = info.metrics[info.headline].sample_score or info.headline if info.headline in info.metrics else ""
    stored = _metrics_by_eval(store)[found[0].eval_id]
    metrics = [[esc(name), esc(with_interval(value, low, high))] for name, value, low, high in stored]
    rows, kinds, marks = [], [], leak_marks(record)
    for sample in record.samples:
        score = sample.scores.get(headline)
        kinds.append("" if score is None else "right" if score >= 0.5 else "wrong")
        rows.append([esc(sample.doc_id) + marks.badge(sample.doc_id), pre(sample.prompt),
                     pre(answer_for(sample, headline)), pre(sample.target),
                     esc(json.dumps(sample.scores)), esc(_choices(sample.choice_loglikelihoods))])  # fmt: skip
    body = (
        f"<p>{esc(record.task)} · {esc(found[0].label)} · stage {esc(record.variant.stage)} · created "
        f"{esc(record.created_at)} · key {esc(record.key)} · run {esc(found[0].run)}</p>"
        + table(["metric", "value [95% CI]"], metrics)
        + _sequential(found[0].run, record.task, str(record.variant.precision))
        + f"<h2>Samples ({len(record.samples)})</h2>"
        + marks.summary
        + search_box("samples", [("right", f"{headline} right"), ("wrong", f"{headline} wrong")])
        + table(["doc", "prompt", "response", "target", "scores", "choice log-likelihoods"], rows, "samples", kinds)
    )
    return page(f"{record.task}: {found[0].label}", body, _nav(links), live_stamp)


def _metric_table(metrics: list[MetricComparison]) -> str:
    rows = []
    for compared in metrics:
        c = compared.comparison
        if c is None:
            rows.append([esc(compared.metric), *["–"] * 7, esc(compared.note or "")])
            continue
        flips = f"+{len(c.flips.gained)} / −{len(c.flips.lost)}" if c.flips is not None else "–"
        interval = f"[{c.interval.low:+.3f}, {c.interval.high:+.3f}]"
        rows.append([esc(compared.metric), esc(c.n), number(c.baseline), number(c.candidate), f"{c.delta:+.3f}",
                     interval, f"{c.p_value:.3g}", esc(c.test), flips])  # fmt: skip
    header = ["metric", "n", "baseline", "candidate", "Δ", "95% CI of Δ", "p", "test", "flips"]
    return table(header, rows)


def _item_rows(items: list[ComparedItem]) -> tuple[list[list[str]], list[str]]:
    labels = dict(CHANGES)
    rows = [[esc(i.doc_id), esc(labels[i.change]), pre(i.prompt), pre(i.baseline_response), pre(i.candidate_response),
             f"{number(i.baseline_score)} → {number(i.candidate_score)}"] for i in items]  # fmt: skip
    return rows, [i.change for i in items]


def comparison_page(
    store: Store, first: str, second: str, links: Links, metric: str | None = None, live_stamp: str | None = None
) -> str:
    """Two evaluations compared as the report compares them, then every shared item with both responses side by
    side, the flipped ones first."""
    result = compare_stored(store, first, second, recorded_task, metric=metric)
    base, cand = result.baseline[0], result.candidate[0]
    moved = sum(1 for item in result.items if item.change != "same")
    rows, kinds = _item_rows(result.items)
    header = ["doc", "change", "prompt", f"baseline {base.label}", f"candidate {cand.label}", result.metric]
    body = (
        f"<p>baseline {_a(links.evaluation(base.key), base.label)} ({esc(base.created_at)}) · candidate "
        f"{_a(links.evaluation(cand.key), cand.label)} ({esc(cand.created_at)})</p>"
        + _metric_table(result.metrics)
        + "".join(f"<p class='muted'>{esc(note)}</p>" for note in result.notes)
        + f"<h2>Items: {moved} changed in {esc(result.metric)}, of {len(result.items)} shared</h2>"
        + search_box("items", [(value, label) for value, label in CHANGES if value in kinds])
        + table(header, rows, "items", kinds)
    )
    return page(f"{result.task}: {cand.label} vs {base.label}", body, _nav(links), live_stamp)


def history_page(store: Store, task: str, metric: str, links: Links, live_stamp: str | None = None) -> str:
    """One metric across every evaluation of a task: the plot with 95% intervals, then the table."""
    points = metric_history(store, task, recorded_task, metric)
    labels = [f"{p.checkpoint}@{p.precision} {p.created_at}" for p in points]
    rows = [[esc(p.created_at), esc(p.checkpoint), esc(p.stage), esc("–" if p.step is None else p.step),
             esc(p.precision), esc(with_interval(p.value, p.low, p.high)), esc(p.n),
             _a(links.evaluation(p.key), p.key)] for p in points]  # fmt: skip
    header = ["created", "checkpoint", "stage", "step", "precision", "value [95% CI]", "n", "key"]
    plot = history_plot(labels, [(p.value, p.low, p.high) for p in points], [p.precision for p in points])
    body = plot + table(header, rows)
    return page(f"{task} {metric}: history", body, _nav(links), live_stamp)
