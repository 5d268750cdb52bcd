"""The first screen's matrix of a task: checkpoints in lineage order by precisions widest first, each cell a
variant's headline value with two paired changes: against its parent stage at the same precision ("what did DPO
do?") and against the same checkpoint's widest precision ("what did nf4 break?").

Each change carries a mark: significantly better or worse (p < alpha, by the metric's direction), no significant
change, or cannot decide (the paired test cannot reach p < alpha with this many items, whatever the outputs);
and a size level for its colour, from the change relative to the reference's value. The grid is pure data over
paired comparisons, so the report (over results folders) and the viewer (over the store) show the same matrix.
A task whose headline shows no significant change also gets the matrices of its metrics that did change
(``task_grids``): an answer format that moved while accuracy stayed at zero is on the first screen too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

from ftbench.harness.compare.intervals import Interval
from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.paired import MetricComparison
from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.records import VariantInfo

Mark = Literal["better", "worse", "same", "undecided", "uncompared"]
Tone = Literal["better", "worse", "none"]
Kind = Literal["parent", "widest"]


class Symbol(NamedTuple):
    """How a mark is written: its symbol and what it means."""

    symbol: str
    meaning: str


MARKS: dict[Mark, Symbol] = {
    "better": Symbol("▲", "significantly better"),
    "worse": Symbol("▼", "significantly worse"),
    "same": Symbol("·", "no significant change"),
    "undecided": Symbol("?", "cannot decide at this n"),
    "uncompared": Symbol("–", "not compared"),
}
"""The marks of a change, as every renderer writes them (never colour alone)."""
KINDS: dict[Kind, str] = {"parent": "against the parent stage", "widest": "against the widest precision"}
SHORT: dict[Kind, str] = {"parent": "vs parent", "widest": "vs widest"}
"""How a cell names its two changes."""
LEVELS = (0.02, 0.10)
"""Relative sizes (|Δ| / |reference|) at which a change's colour steps up: under 2%, 2–10%, 10% or more."""


class GridEntry(NamedTuple):
    """One evaluated variant's headline value (the mean over repeats) and what it was computed from."""

    checkpoint: str
    stage: str
    precision: Precision
    value: float
    interval: Interval | None = None
    key: str = ""
    """The evaluation it came from (a request key), for linking; empty where there is none."""


class Change(NamedTuple):
    """A variant against one reference: the paired difference, its test and its mark."""

    kind: Kind
    reference: GridEntry
    mark: Mark
    tone: Tone
    """Which way the difference goes by the metric's direction, significant or not."""
    level: int
    """0 (no difference) to 3 (10% of the reference or more), see ``LEVELS``."""
    delta: float | None
    p_value: float | None
    n: int
    note: str | None = None


class GridCell(NamedTuple):
    """One variant of the matrix with its two changes (None where it has no such reference)."""

    entry: GridEntry
    parent: Change | None
    widest: Change | None


class TaskGrid(NamedTuple):
    """A task's matrix: rows are (checkpoint, stage) in lineage order, columns precisions widest first."""

    task: str
    metric: str
    higher_is_better: bool
    alpha: float
    rows: list[tuple[str, str]]
    columns: list[Precision]
    cells: dict[tuple[str, Precision], GridCell]

    def cell(self, checkpoint: str, precision: Precision) -> GridCell | None:
        """The cell of a checkpoint at a precision; None where that variant was not evaluated."""
        return self.cells.get((checkpoint, precision))


Compare = Callable[[GridEntry, GridEntry], MetricComparison | None]
"""The paired comparison of a variant (second) against a reference (first); None where none was made."""


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


def lineage_order(checkpoint: str, stage: str) -> tuple[object, ...]:
    """Stage order (training steps in numeric order), then checkpoint name."""
    rank, name = stage_rank(stage)
    return (rank, _natural(name), _natural(checkpoint))


def mark_of(compared: MetricComparison | None, higher_is_better: bool, alpha: float = ALPHA) -> Mark:
    """The mark of a paired comparison at ``alpha``."""
    c = compared.comparison if compared is not None else None
    if c is None:
        return "uncompared"
    if not c.decides(alpha):
        return "undecided"
    if c.p_value >= alpha:
        return "same"
    return "better" if (c.delta > 0) == higher_is_better else "worse"


def size_level(delta: float, reference: float) -> int:
    """0 for no difference, else 1 to 3 by the difference relative to the reference's value (``LEVELS``)."""
    if delta == 0:
        return 0
    relative = abs(delta) / abs(reference) if reference else float("inf")
    return 1 + sum(relative >= step for step in LEVELS)


def _change(kind: Kind, reference: GridEntry, compared: MetricComparison | None, grid: TaskGrid) -> Change:
    c = compared.comparison if compared is not None else None
    note = compared.note if compared is not None else "not compared"
    mark = mark_of(compared, grid.higher_is_better, grid.alpha)
    if c is None:
        return Change(kind, reference, mark, "none", 0, None, None, 0, note)
    tone: Tone = "none" if c.delta == 0 else "better" if (c.delta > 0) == grid.higher_is_better else "worse"
    return Change(kind, reference, mark, tone, size_level(c.delta, c.baseline), c.delta, c.p_value, c.n, note)


def build_grid(
    task: str,
    metric: str,
    higher_is_better: bool,
    entries: Sequence[GridEntry],
    parent_of: Mapping[str, str],
    compare: Compare,
    alpha: float = ALPHA,
) -> TaskGrid:
    """The matrix of ``entries`` (one per checkpoint and precision), each against its parent checkpoint
    (``parent_of``, by checkpoint name) at the same precision and against its checkpoint's widest precision."""
    rows = sorted(dict.fromkeys((e.checkpoint, e.stage) for e in entries), key=lambda row: lineage_order(*row))
    columns = sorted({e.precision for e in entries}, key=lambda p: p.rank)
    by_place = {(e.checkpoint, e.precision): e for e in entries}
    grid = TaskGrid(task, metric, higher_is_better, alpha, rows, columns, {})
    for entry in entries:
        widest = min((e for e in entries if e.checkpoint == entry.checkpoint), key=lambda e: e.precision.rank)
        parent = by_place.get((parent_of.get(entry.checkpoint, ""), entry.precision))
        grid.cells[(entry.checkpoint, entry.precision)] = GridCell(
            entry,
            _change("parent", parent, compare(parent, entry), grid) if parent is not None else None,
            _change("widest", widest, compare(widest, entry), grid) if widest.precision != entry.precision else None,
        )
    return grid


def moves(grid: TaskGrid) -> bool:
    """Whether any change in ``grid`` is significant (better or worse)."""
    changes = [change for cell in grid.cells.values() for change in (cell.parent, cell.widest) if change is not None]
    return any(change.mark in ("better", "worse") for change in changes)


def task_grids(metrics: Sequence[str], grid_of: Callable[[str], TaskGrid | None]) -> list[TaskGrid]:
    """A task's matrices: its headline metric's (the first of ``metrics``) and, when no change in it is
    significant, those of its other metrics that changed significantly somewhere, in ``metrics`` order; the report
    and the viewer both choose them here."""
    headline = grid_of(metrics[0]) if metrics else None
    if headline is not None and moves(headline):
        return [headline]
    others = [grid for metric in metrics[1:] if (grid := grid_of(metric)) is not None and moves(grid)]
    return ([headline] if headline is not None else []) + others


def signed(delta: float) -> str:
    """A signed difference: three decimals, two at 10 and above."""
    return f"{delta:+.3f}" if abs(delta) < 10 else f"{delta:+.2f}"


def change_text(change: Change) -> str:
    """A change as a cell shows it: ``vs parent ▲ +0.125``."""
    delta = signed(change.delta) if change.delta is not None else ""
    return " ".join(part for part in (SHORT[change.kind], MARKS[change.mark].symbol, delta) if part)


def change_title(change: Change, variant: GridEntry, alpha: float = ALPHA) -> str:
    """What a change says in full: ``sft@nf4 against the parent stage initial@nf4: Δ +0.125, p 0.012, n = 32:
    significantly better``."""
    reference = f"{change.reference.checkpoint}@{change.reference.precision}"
    head = f"{variant.checkpoint}@{variant.precision} {KINDS[change.kind]} {reference}"
    meaning = MARKS[change.mark].meaning
    if change.delta is None or change.p_value is None:
        return f"{head}: {meaning}" + (f" ({change.note})" if change.note else "")
    if change.mark == "undecided":
        meaning += f" (the paired test cannot reach p < {alpha:g} with {change.n} items)"
    p_text = "<0.001" if change.p_value < 0.001 else f"{change.p_value:.3f}"
    return f"{head}: Δ {signed(change.delta)}, p {p_text}, n = {change.n}: {meaning}"


def legend_text(alpha: float = ALPHA) -> str:
    """What a matrix cell says and what each mark means."""
    marks = ", ".join(f"{symbol} {meaning}" for symbol, meaning in MARKS.values())
    return (
        "Each cell: the variant's headline value, then its paired change vs parent (its parent stage at the same "
        "precision) and vs widest (the same checkpoint at its widest precision); "
        f"{marks} (significant: p < {alpha:g} by the metric's direction; cannot decide: the paired test cannot "
        "reach that p with so few items); – as a value: not evaluated."
    )


class Swatch(NamedTuple):
    """One colour of the legend: a direction, a size level, faded or not, and what it means."""

    tone: Tone
    level: int
    faded: bool
    meaning: str


def colour_key() -> list[Swatch]:
    """The colours' legend: better then worse by size (``LEVELS``), then the faded look of a change that is not
    significant or cannot be decided."""
    low, high = (f"{step:.0%}" for step in LEVELS)
    sizes = (f"under {low}", f"{low}–{high}", f"{high} or more")
    swatches = [
        Swatch(tone, level, False, f"{tone}, {size} of the reference")
        for tone in ("better", "worse")
        for level, size in enumerate(sizes, start=1)
    ]
    return [*swatches, Swatch("worse", 2, True, "faded and dashed: not significant or cannot decide")]


def _same_path(first: str, second: str) -> bool:
    return os.path.normpath(first) == os.path.normpath(second)


def checkpoint_parents(variants: Iterable[VariantInfo]) -> dict[str, str]:
    """Each checkpoint's parent checkpoint (by name) from its manifest, where the parent is among ``variants``:
    matched by path, else by the path's last part when that is unambiguous."""
    listed = list(variants)
    paths = {v.name: v.checkpoint for v in listed}
    found = {}
    for variant in listed:
        parent = variant.manifest.parent if variant.manifest else None
        if not parent:
            continue
        matches = [name for name, path in paths.items() if _same_path(path, parent)]
        leaf = os.path.basename(os.path.normpath(parent))
        matches = matches or [name for name, path in paths.items() if os.path.basename(os.path.normpath(path)) == leaf]
        if len(matches) == 1 and matches[0] != variant.name:
            found[variant.name] = matches[0]
    return found
