"""UltraFeedback's training side: preference pairs from the training split whose prompt is not a test prompt."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.data import DataOptions, local_file
from ftbench.tasks.training_side import Drawn, TrainingSide
from ftbench.tasks.ultrafeedback.dataset import TEST_FILE, TRAIN_FILE, TRAIN_HUB_ID, evaluation_items, train_pairs

SOURCE = f"{TRAIN_HUB_ID} train_prefs"
SPLIT = "train_prefs rows whose prompt is not a test_prefs prompt"


@cache
def evaluation_prompts(options: DataOptions) -> frozenset[str]:
    """The evaluation prompts, which training must not see."""
    return frozenset(item["prompt"] for item in evaluation_items(options))


def chosen_rows(options: DataOptions) -> list[dict[str, list[dict[str, str]]]]:
    """Prompt-completion conversations of the chosen responses (``train_pairs`` leaves out test prompts)."""
    return [
        {
            "prompt": [{"role": "user", "content": p["prompt"]}],
            "completion": [{"role": "assistant", "content": p["chosen"]}],
        }
        for p in train_pairs(options)
    ]


def preference_rows(options: DataOptions) -> list[dict[str, list[dict[str, str]]]]:
    """Preference conversations: the prompt, the chosen and the rejected response."""
    return [
        {
            "prompt": [{"role": "user", "content": p["prompt"]}],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in train_pairs(options)
    ]


def _data(options: DataOptions) -> DataOptions:
    """The data options alone (the win-rate task's options also name its judge)."""
    return DataOptions(source=options.source, data_dir=options.data_dir)


def evaluation_item(options: DataOptions, row: dict[str, Any]) -> str | None:
    """``an UltraFeedback test_prefs prompt`` when the row's prompt (or first user message) is one, else None."""
    prompt = row.get("prompt")
    if prompt is None and isinstance(row.get("messages"), list):
        prompt = next((m.get("content") for m in row["messages"] if m.get("role") == "user"), None)
    if isinstance(prompt, str) and prompt in evaluation_prompts(_data(options)):
        return "an UltraFeedback test_prefs prompt"
    return None


def _chosen(options: DataOptions, split: str | None, count: int | None, seed: int) -> Drawn:
    if split not in (None, "train_prefs"):
        raise FtbenchError(f"UltraFeedback trains on {SPLIT}; leave out split or write split: train_prefs")
    return Drawn(chosen_rows(_data(options))[:count], f"{SOURCE}; chosen responses")


def _pairs(options: DataOptions, count: int | None, seed: int) -> Drawn:
    return Drawn(preference_rows(_data(options))[:count], f"{SOURCE}; chosen vs rejected")


def _data_files(options: DataOptions) -> list[Path]:
    found = [local_file(name, options.data_dir) for name in (TRAIN_FILE, TEST_FILE)]
    return [path for path in found if path is not None]


TRAINING = TrainingSide(
    split=SPLIT,
    source=lambda options: SOURCE,
    sft=_chosen,
    preference=_pairs,
    evaluation_item=evaluation_item,
    data_files=_data_files,
    setting="ultrafeedback_rows",
    within_length=True,
)
"""What trainers draw from UltraFeedback: chosen responses (SFT) and chosen/rejected pairs (DPO, reward models),
in the training split's order."""
