"""A custom task's training side: the rows of its training split as prompt-completion conversations (the
prompt as the evaluation renders it, the first reference as the answer), never a row of the evaluated split."""

from __future__ import annotations

import random
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.custom.task import CustomOptions, custom_items
from ftbench.tasks.training_side import Drawn


def sft_rows(options: CustomOptions, count: int | None, seed: int) -> list[dict[str, Any]]:
    """The first ``count`` training rows in a seeded order: the same seed gives nested subsets for growing counts.

    Raises:
        FtbenchError: the training and evaluated splits are the same, or share a prompt.
    """
    if options.train_split == options.split and options.group is None:
        raise FtbenchError(f"custom task data {options.data}: train_split and split are both {options.split!r}")
    held_out = {item["ftbench_prompt"] for item in custom_items(options)}
    items = custom_items(options, options.train_split)
    leaking = [item["id"] for item in items if item["ftbench_prompt"] in held_out]
    if leaking:
        raise FtbenchError(f"custom task data {options.data}: training rows {leaking[:3]} repeat evaluated prompts")
    random.Random(seed).shuffle(items)
    system = [{"role": "system", "content": options.system}] if options.system else []
    return [
        {
            "prompt": [*system, {"role": "user", "content": item["ftbench_prompt"]}],
            "completion": [{"role": "assistant", "content": item["ftbench_references"][0]}],
        }
        for item in items[:count]
    ]


def sft_draw(options: CustomOptions, split: str | None, count: int | None, seed: int) -> Drawn:
    """``sft_rows`` of ``split`` (default: the task's ``train_split``), described for the manifest."""
    chosen = options if split is None else options.model_copy(update={"train_split": split})
    return Drawn(sft_rows(chosen, count, seed), f"custom {split or 'training'} split")
