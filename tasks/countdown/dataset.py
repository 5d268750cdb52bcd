"""Countdown items: the Countdown-Tasks-3to4 rows (hub or local copy) or seeded generated puzzles.

Rows 0..9001 of the hub's only split are for training and rows 9002..10001 for evaluation, from either
source, so the offline copy and the hub give the same items and training never sees an evaluation item.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.countdown.puzzles import generate_puzzles
from ftbench.tasks.data import DataOptions, source_rows

HUB_ID = "Jiayi-Pan/Countdown-Tasks-3to4"
LOCAL_FILE = "countdown/countdown_tasks_3to4.jsonl"
TRAIN_ROWS = range(0, 9002)
EVAL_ROWS = range(9002, 10002)
GENERATED_COUNT = 1000

Split = Literal["train", "test"]


class CountdownOptions(DataOptions):
    """Countdown's options: the data source (``generated`` draws seeded solvable puzzles) and the draw."""

    source: Literal["auto", "local", "hub", "generated"] = "auto"  # type: ignore[assignment]
    seed: int = 1234
    """The generator's seed (``source: generated`` only)."""
    count: int = Field(default=GENERATED_COUNT, ge=0)
    """How many puzzles to generate (``source: generated`` only)."""


class CountdownRow(BaseModel):
    """One row of Countdown-Tasks-3to4 (the offline copy numbers its rows in ``hf_row``)."""

    hf_row: int | None = None
    target: int
    nums: list[int] = Field(min_length=2)


def countdown_items(split: Split = "test", options: CountdownOptions | None = None) -> list[dict[str, Any]]:
    """Countdown items ``{id, target, nums}`` of one split.

    Args:
        split: ``train`` (rows 0..9001) or ``test`` (rows 9002..10001); generated puzzles use a different
            seed for each split.
        options: where the rows come from.

    Raises:
        FtbenchError: the data has no rows of the split, or a row is malformed.
    """
    options = options or CountdownOptions()
    if options.source == "generated":
        seed = options.seed if split == "test" else options.seed + 1_000_003
        puzzles = generate_puzzles(options.count, seed)
        return [
            {"id": f"gen{options.seed}-{split}-{i}", "target": p.target, "nums": list(p.nums)}
            for i, p in enumerate(puzzles)
        ]
    rows = _read_source(options)
    wanted = EVAL_ROWS if split == "test" else TRAIN_ROWS
    selected = [row for row in rows if row["hf_row"] in wanted]
    if not selected:
        raise FtbenchError(f"the Countdown data has no rows in {wanted}; use the full {HUB_ID} rows")
    return [{"id": f"cd-{row['hf_row']}", "target": row["target"], "nums": row["nums"]} for row in selected]


def _read_source(options: CountdownOptions) -> list[dict[str, Any]]:
    """The first 10002 rows, from the offline copy (which numbers them) or the hub (numbered here)."""
    data = DataOptions(source=options.source, data_dir=options.data_dir)  # type: ignore[arg-type]
    rows, _ = source_rows(LOCAL_FILE, (HUB_ID, None, f"train[:{EVAL_ROWS.stop}]"), CountdownRow, data)
    return [row if row["hf_row"] is not None else {**row, "hf_row": i} for i, row in enumerate(rows)]
