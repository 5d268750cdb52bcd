"""The first screen's matrix: checkpoints in lineage order by precisions widest first, each cell's change against
its parent stage and its widest precision with the right mark, in the report (markdown, HTML, Chromium) and on
the viewer's home over the store."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import pytest
from scipy.stats import binomtest

from ftbench.harness.compare.grid import MARKS, GridEntry, build_grid, mark_of, size_level
from ftbench.harness.compare.paired import MetricComparison
from ftbench.harness.compare.statistics import compare_paired
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.records import EvalRecord, SampleRecord
from ftbench.harness.index.connection import store_location
from ftbench.harness.index.indexing import add_results
from ftbench.harness.index.schema import opened_store
from ftbench.harness.index.store_matrix import store_grids
from ftbench.harness.viewer.export import export_site
from ftbench.reports.analysis import analyse
from ftbench.reports.markdown import render_markdown
from ftbench.reports.matrix import report_grids
from ftbench.reports.report import write_report
from ftbench.tasks.registry import recorded_task
from tests.devtools import Browser
from tests.records import make_manifest, make_record, with_request, write_results

ACCURACY = {
    ("dpo", "fp32"): [1, 1, 1, 1, 1, 1, 0, 1] * 4,
    ("sft", "nf4"): [0, 0, 1, 0, 1, 0, 0, 0] * 4,
    ("initial", "fp32"): [1, 0, 0, 0, 1, 0, 0, 0] * 4,
    ("sft", "fp32"): [1, 1, 1, 1, 1, 1, 0, 0] * 4,
    ("initial", "nf4"): [1, 0, 0, 0, 0, 0, 0, 0] * 4,
}
"""Per-sample accuracy of each variant (32 items), listed out of order; dpo was not evaluated at nf4."""
PARENTS = {"sft": "initial", "dpo": "sft"}
CELLS_SCRIPT = """[...document.querySelectorAll("table.change-matrix td.cell")].map(td => [
  td.dataset.checkpoint, td.dataset.precision, td.querySelector(".value")?.textContent ?? null,
  [...td.querySelectorAll(".change")].map(c => [c.dataset.kind, c.dataset.mark, c.textContent, c.title,
                                                getComputedStyle(c).backgroundColor])])"""
"""Each matrix cell as the page shows it: place, value, and each change's kind, mark, text, title and colour."""
PAYLOAD = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"


def staged(out: Path, accuracy: dict[tuple[str, str], list[int]], names: dict[str, str] | None = None) -> Path:
    """Results of ``accuracy``'s variants, each stage's manifest naming its parent (``names`` renames stages)."""
    names = names or {}
    records = []
    for (stage, precision), values in accuracy.items():
        name = names.get(stage, stage)
        record = make_record(f"w-{stage}", name, precision, {"accuracy": [float(v) for v in values]})
        parent = PARENTS.get(stage)
        manifest = make_manifest(
            name, "sft" if parent else "bootstrap", parent and f"checkpoints/{names.get(parent, parent)}"
        )
        records.append(record.model_copy(update={"variant": record.variant.model_copy(update={"manifest": manifest})}))
    return write_results(out, records)


def expected_mark(reference: list[int], variant: list[int]) -> str:
    """The mark McNemar's exact test gives at 5% (higher is better), computed here from the flips."""
    gained = sum(1 for r, v in zip(reference, variant, strict=True) if v > r)
    lost = sum(1 for r, v in zip(reference, variant, strict=True) if v < r)
    p = binomtest(gained, gained + lost, 0.5).pvalue if gained + lost else 1.0
    if 2 * 0.5 ** len(reference) >= 0.05:
        return "undecided"
    return "same" if p >= 0.05 else ("better" if gained > lost else "worse")


def test_report_grid_orders_lineage_and_marks_each_change(tmp_path: Path) -> None:
    (grid,) = report_grids(analyse([staged(tmp_path / "r", ACCURACY)]))
    assert grid.rows == [("initial", "initial"), ("sft", "sft"), ("dpo", "dpo")]
    assert grid.columns == [Precision.FP32, Precision.NF4]
    assert grid.cell("dpo", Precision.NF4) is None
    for (stage, precision), values in ACCURACY.items():
        cell = grid.cell(stage, Precision(precision))
        assert cell is not None and cell.entry.value == pytest.approx(mean(values))
        parent = PARENTS.get(stage)
        if parent is None:
            assert cell.parent is None
        else:
            assert cell.parent is not None and cell.parent.reference.checkpoint == parent
            assert cell.parent.delta == pytest.approx(mean(values) - mean(ACCURACY[(parent, precision)]))
            assert cell.parent.mark == expected_mark(ACCURACY[(parent, precision)], values)
        if precision == "fp32":
            assert cell.widest is None
        else:
            widest = ACCURACY[(stage, "fp32")]
            assert cell.widest is not None and cell.widest.reference.precision == Precision.FP32
            assert cell.widest.mark == expected_mark(widest, values)
    marks = {(c.entry.checkpoint, c.entry.precision, ch.kind): ch.mark for c in grid.cells.values()
             for ch in (c.parent, c.widest) if ch is not None}  # fmt: skip
    assert {"better", "worse", "same"} <= set(marks.values())  # the planted data exercises every decided mark


def test_too_few_items_cannot_decide(tmp_path: Path) -> None:
    few = {("initial", "fp32"): [1, 0, 0, 0], ("initial", "nf4"): [0, 1, 1, 1]}
    analysis = analyse([staged(tmp_path / "r", few)])
    cell = report_grids(analysis)[0].cell("initial", Precision.NF4)
    assert cell is not None and cell.widest is not None
    assert cell.widest.mark == "undecided" and cell.widest.n == 4  # every item flipped, still p ≥ 0.125
    first_screen = render_markdown(analysis).split("### Each precision")[0]
    assert f"vs widest {MARKS['undecided'].symbol} +0.500" in first_screen


def test_repeats_show_their_mean_without_an_interval(tmp_path: Path) -> None:
    first = make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0] * 8})
    second = with_request(make_record("b", "initial", "fp32", {"accuracy": [1.0, 1.0] * 8}), repeat=1)
    nf4 = make_record("c", "initial", "nf4", {"accuracy": [0.0, 0.0] * 8})
    files = write_report([write_results(tmp_path / "r", [first, second, nf4])], tmp_path / "report")
    html = files.html.read_text()
    cell = html.split('data-checkpoint="initial" data-precision="fp32"')[1].split("</td>")[0]
    assert 'title="initial@fp32: 0.750"' in cell and '<div class="value num">0.750</div>' in cell
    assert "| initial (initial) | 0.750 | 0.000; vs widest ▼ -0.750 |" in files.markdown.read_text()


def _pairs(reference: list[float], variant: list[float]) -> list[tuple[SampleRecord, SampleRecord]]:
    def sample(i: int, value: float) -> SampleRecord:
        return SampleRecord(doc_id=i, doc_hash=f"d{i}", prompt="", response="", target="", scores={"m": value})

    return [(sample(i, r), sample(i, v)) for i, (r, v) in enumerate(zip(reference, variant, strict=True))]


def test_a_lower_is_better_metric_turns_the_marks_and_missing_comparisons_are_marked() -> None:
    base = [2.0 + 0.01 * i for i in range(40)]
    lower = [v - 0.5 for v in base]
    entries = [GridEntry("initial", "initial", Precision.FP32, mean(base), None, "a"),
               GridEntry("initial", "initial", Precision.NF4, mean(lower), None, "b"),
               GridEntry("sft", "sft", Precision.FP32, 2.0, None, "c")]  # fmt: skip

    def compare(reference: GridEntry, entry: GridEntry) -> MetricComparison | None:
        if entry.key == "c":
            return None
        return MetricComparison("m", compare_paired("m", "continuous", _pairs(base, lower)))

    grid = build_grid("t", "m", False, entries, {"sft": "initial"}, compare)
    nf4 = grid.cell("initial", Precision.NF4)
    assert nf4 is not None and nf4.widest is not None
    assert (nf4.widest.mark, nf4.widest.tone) == ("better", "better")  # a drop of a lower-is-better metric
    assert nf4.widest.level == size_level(-0.5, mean(base)) == 3  # 0.5 of about 2.2 is over 10%
    sft = grid.cell("sft", Precision.FP32)
    assert sft is not None and sft.parent is not None and sft.parent.mark == "uncompared"
    assert grid.rows == [("initial", "initial"), ("sft", "sft")]
    higher = build_grid("t", "m", True, entries, {}, compare).cell("initial", Precision.NF4)
    assert higher is not None and higher.widest is not None and higher.widest.mark == "worse"
    assert mark_of(None, True) == "uncompared" and size_level(0.0, 1.0) == 0 and size_level(0.01, 1.0) == 1


def test_markdown_first_screen_starts_with_the_matrix(tmp_path: Path) -> None:
    markdown = render_markdown(analyse([staged(tmp_path / "r", ACCURACY)]))
    glance = markdown.split("## At a glance\n\n", 1)[1]
    assert glance.startswith("### countdown: accuracy (higher is better)\n\n| checkpoint (stage) | fp32 | nf4 |")
    table = glance.split("\n\n")[1].splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| initial (initial)", "| sft (sft)", "| dpo (dpo)"]
    sft_gain = mean(ACCURACY[("sft", "fp32")]) - mean(ACCURACY[("initial", "fp32")])
    assert f"| sft (sft) | {mean(ACCURACY[('sft', 'fp32')]):.3f}; vs parent ▲ {sft_gain:+.3f} |" in table[3]
    assert table[4].endswith("| – |")  # dpo at nf4 was not evaluated
    assert glance.index("▲ significantly better") < glance.index("### Each stage against its parent")
    assert markdown.index("## At a glance") < markdown.index("Intervals are 95%")


def test_names_in_the_matrix_are_escaped(tmp_path: Path) -> None:
    results = staged(tmp_path / "r", ACCURACY, names={"sft": PAYLOAD})
    files = write_report([results], tmp_path / "report")
    html, markdown = files.html.read_text(), files.markdown.read_text()
    assert "<img" not in html and "<img" not in markdown
    assert html.count('class="change-matrix"') == 1 and 'data-checkpoint="&lt;img src=x' in html


def _store(tmp_path: Path, results: Path) -> Path:
    location = store_location(tmp_path / "store.db")
    with opened_store(location) as store:
        add_results(store, [results], recorded_task)
    return tmp_path / "store.db"


def test_the_viewer_home_shows_the_reports_matrix(tmp_path: Path) -> None:
    results = staged(tmp_path / "r", ACCURACY, names={"dpo": PAYLOAD})
    (reported,) = report_grids(analyse([results]))
    location = store_location(_store(tmp_path, results))
    with opened_store(location, read_only=True) as store:
        (stored,) = store_grids(store, recorded_task)
        written = export_site(store, tmp_path / "site")
    assert stored.rows == reported.rows and stored.columns == reported.columns
    for place, cell in reported.cells.items():
        mine = stored.cells[place]
        assert mine.entry.value == pytest.approx(cell.entry.value)
        for theirs, ours in ((cell.parent, mine.parent), (cell.widest, mine.widest)):
            assert (theirs is None) == (ours is None)
            if theirs is not None and ours is not None:
                assert (ours.mark, ours.delta, ours.p_value) == (theirs.mark, theirs.delta, theirs.p_value)
    home = next(path for path in written if path.name == "index.html").read_text()
    assert home.index('class="change-matrix"') < home.index("<h2>Comparisons</h2>")
    marks = [ch.mark for c in reported.cells.values() for ch in (c.parent, c.widest) if ch is not None]
    assert sorted(part.split('"')[0] for part in home.split('data-mark="')[1:]) == sorted(marks)
    assert "<img" not in home and 'data-checkpoint="&lt;img' in home


def test_the_store_matrix_takes_each_variants_newest_evaluation_with_its_repeats(tmp_path: Path) -> None:
    def made(key: str, precision: str, scores: list[float], day: int, repeat: int = 0) -> EvalRecord:
        record = with_request(make_record(key, "initial", precision, {"accuracy": scores}), repeat=repeat)
        return record.model_copy(update={"created_at": f"2026-01-{day:02d}T00:00:00+00:00"})

    older = made("old", "fp32", [0.0] * 16, 1)  # other weights, evaluated before: not shown
    first, second = made("a", "fp32", [1.0, 0.0] * 8, 2), made("a", "fp32", [1.0, 1.0] * 8, 3, repeat=1)
    nf4 = made("c", "nf4", [0.0, 0.0] * 8, 2)
    location = store_location(_store(tmp_path, write_results(tmp_path / "r", [older, first, second, nf4])))
    with opened_store(location, read_only=True) as store:
        (grid,) = store_grids(store, recorded_task)
    fp32, narrow = grid.cell("initial", Precision.FP32), grid.cell("initial", Precision.NF4)
    assert fp32 is not None and fp32.entry.value == pytest.approx(0.75) and fp32.entry.key == second.key
    assert narrow is not None and narrow.widest is not None and narrow.widest.delta == pytest.approx(-0.75)
    assert narrow.widest.mark == "worse" and narrow.widest.reference.key == second.key


@pytest.mark.slow
def test_chromium_finds_the_matrix_cells_with_their_marks(tmp_path: Path) -> None:
    results = staged(tmp_path / "r", ACCURACY)
    (grid,) = report_grids(analyse([results]))
    files = write_report([results], tmp_path / "report")
    browser = Browser(tmp_path / "profile")
    try:
        tab = browser.open(files.html.as_uri())
        browser.wait_for(tab, "document.readyState === 'complete' && !!document.querySelector('table.change-matrix')")
        # the glance opens with the matrix (only the checkpoint to ship, when the report has one, comes before it)
        assert browser.evaluate(tab, "document.querySelector('#glance ~ section table').className") == "change-matrix"
        cells = browser.evaluate(tab, CELLS_SCRIPT)
    finally:
        browser.close()
    assert len(cells) == len(grid.rows) * len(grid.columns)
    shown = {(checkpoint, precision): (value, changes) for checkpoint, precision, value, changes in cells}
    assert shown[("dpo", "nf4")] == (None, [])
    colours: dict[str, set[str]] = {}
    for (checkpoint, precision), cell in grid.cells.items():
        value, changes = shown[(checkpoint, str(precision))]
        assert value == f"{cell.entry.value:.3f}"
        expected = [(ch.kind, ch.mark) for ch in (cell.parent, cell.widest) if ch is not None]
        assert [(kind, mark) for kind, mark, _, _, _ in changes] == expected
        for _, mark, text, title, colour in changes:
            assert MARKS[mark].symbol in text and MARKS[mark].meaning in title  # marks are text, not colour alone
            colours.setdefault(mark, set()).add(colour)
    assert colours["better"].isdisjoint(colours["worse"])
