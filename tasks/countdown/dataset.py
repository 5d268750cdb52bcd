"""Countdown items: the Countdown-Tasks-3to4 rows (hub or local copy) or seeded generated puzzles.

Rows 0..9001 of the hub's only split are for training and rows 9002..10001 for evaluation, from either
source, so the offline copy and the hub give the same items and training never sees an evaluation item.
"""

from __future__ import annotations

from typing import Any, Literal

from harness.errors import FtbenchError
from tasks.countdown.puzzles import generate_puzzles
from tasks.data import source_rows

HUB_ID = "Jiayi-Pan/Countdown-Tasks-3to4"
LOCAL_FILE = "countdown/countdown_tasks_3to4.jsonl"
TRAIN_ROWS = range(0, 9002)
EVAL_ROWS = range(9002, 10002)
GENERATED_COUNT = 1000

Source = Literal["auto", "local", "hub", "generated"]
Split = Literal["train", "test"]


def countdown_items(
    split: Split = "test",
    source: Source = "auto",
    data_dir: str | None = None,
    seed: int = 1234,
    count: int = GENERATED_COUNT,
) -> list[dict[str, Any]]:
    """Countdown items ``{id, target, nums}`` of one split.

    Args:
        split: ``train`` (rows 0..9001) or ``test`` (rows 9002..10001).
        source: ``local`` reads the offline copy, ``hub`` downloads, ``auto`` prefers the local copy,
            ``generated`` draws ``count`` solvable puzzles (train and test use different seeds).
        data_dir: the offline data folder; defaults to ``$FTBENCH_DATA_DIR`` or ``../shared/data``.
        seed: the generator's seed (``generated`` only).
        count: how many puzzles to generate (``generated`` only).
    """
    if source == "generated":
        puzzles = generate_puzzles(count, seed if split == "test" else seed + 1_000_003)
        return [
            {"id": f"gen{seed}-{split}-{i}", "target": p.target, "nums": list(p.nums)} for i, p in enumerate(puzzles)
        ]
    rows = _read_source(source, data_dir)
    wanted = EVAL_ROWS if split == "test" else TRAIN_ROWS
    selected = [row for row in rows if int(row["hf_row"]) in wanted]
    if not selected:
        raise FtbenchError(f"the Countdown data has no rows in {wanted}; use the full {HUB_ID} rows")
    return [{"id": f"cd-{row['hf_row']}", "target": int(row["target"]), "nums": list(row["nums"])} for row in selected]


def _read_source(source: Source, data_dir: str | None) -> list[dict[str, Any]]:
    """The first 10002 rows, from the offline copy (which numbers them) or the hub (numbered here)."""
    rows, _ = source_rows(
        LOCAL_FILE, (HUB_ID, None, f"train[:{EVAL_ROWS.stop}]"), ("hf_row", "target", "nums"), source, data_dir
    )
    return [row if "hf_row" in row else {"hf_row": i, **row} for i, row in enumerate(rows)]
