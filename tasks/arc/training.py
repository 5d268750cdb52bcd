"""ARC's training side: questions from a training split (ARC-Easy validation by default, never the test split),
written the way the log-likelihood task scores them: ``Question: ...\\nAnswer:`` and the correct choice's text."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.arc.dataset import HUB_ID, LOCAL_FILES, Subset, arc_items
from ftbench.tasks.data import DataOptions, local_paths
from ftbench.tasks.training_side import Drawn, TrainingSide


def sft_rows(subset: Subset, split: str, options: DataOptions, count: int | None, seed: int) -> list[dict[str, Any]]:
    """``count`` prompt-completion rows (plain text, no chat template) drawn with ``seed`` from ``split``.

    Raises:
        FtbenchError: the split is the test split, which is what the task evaluates.
    """
    if split == "test":
        raise FtbenchError(f"{subset} test rows are the evaluation items; train on the validation or train split")
    rows = arc_items(subset, split, options)
    random.Random(seed).shuffle(rows)
    return [
        {
            "prompt": f"Question: {row['question']}\nAnswer:",
            "completion": " " + row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])],
        }
        for row in rows[:count]
    ]


def training_side(name: str, subset: Subset) -> TrainingSide:
    """The training side of the ARC task ``name`` over ``subset``: SFT rows from its validation or train split."""

    def draw(options: DataOptions, split: str | None, count: int | None, seed: int) -> Drawn:
        return Drawn(
            sft_rows(subset, split or "validation", options, count, seed), f"{name} {split or 'training'} split"
        )

    def data_files(options: DataOptions) -> list[Path]:
        # The evaluated split's file, as earlier versions hashed into a stage's inputs.
        return local_paths([LOCAL_FILES[(subset, "test")]], options)

    return TrainingSide(
        split=f"{subset} validation or train split, never test",
        source=lambda options: f"{HUB_ID} {subset}",
        sft=draw,
        data_files=data_files,
    )
