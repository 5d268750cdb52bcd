"""The lm-eval side of Countdown: dataset loading, prompt, and per-sample results (hooks named in the YAML)."""

from __future__ import annotations

from typing import Any

import datasets

from tasks.countdown.dataset import countdown_items
from tasks.countdown.scoring import score_countdown
from tasks.data import test_split

PROMPT = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> "
    "tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)


def load(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: the test items, chosen by the task's ``metadata`` options."""
    items = countdown_items(
        split="test",
        source=metadata.get("source", "auto"),
        data_dir=metadata.get("data_dir"),
        seed=int(metadata.get("seed", 1234)),
        count=int(metadata.get("count", 1000)),
    )
    return test_split("countdown", items)


def doc_to_text(doc: dict[str, Any]) -> str:
    """The TinyZero instruction as the user turn."""
    return PROMPT.format(nums=list(doc["nums"]), target=doc["target"])


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Per-sample metrics, all from the one scoring function: reward, accuracy, format_rate (0-1)."""
    score = score_countdown(results[0], int(doc["target"]), list(doc["nums"]))
    return {
        "reward": score.reward,
        "accuracy": float(score.verdict == "correct"),
        "format_rate": float(score.verdict != "no_answer"),
    }
