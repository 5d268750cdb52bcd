"""ARC's training side: questions from a training split (ARC-Easy validation by default, never the test split),
written the way the log-likelihood task scores them: ``Question: ...\\nAnswer:`` and the correct choice's text."""

from __future__ import annotations

import random
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.arc.dataset import Subset, arc_items
from ftbench.tasks.data import DataOptions


def sft_rows(subset: Subset, split: str, options: DataOptions, count: int, seed: int) -> list[dict[str, Any]]:
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
