"""UltraFeedback's training side: preference pairs from the training split whose prompt is not a test prompt."""

from __future__ import annotations

from functools import cache

from ftbench.tasks.data import DataOptions
from ftbench.tasks.ultrafeedback.dataset import TRAIN_HUB_ID, evaluation_items, train_pairs

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
