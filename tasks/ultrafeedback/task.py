"""The lm-eval side of UltraFeedback: prompts as chat turns; ftbench's judge step adds the win-rate metrics."""

from __future__ import annotations

from typing import Any

import datasets

from tasks.data import test_split
from tasks.ultrafeedback.dataset import evaluation_items
from tasks.ultrafeedback.scoring import word_length


def load(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: test prompts, with the dataset's chosen response as the target."""
    items = evaluation_items(metadata.get("source", "auto"), metadata.get("data_dir"))
    rows = [{"id": item["id"], "prompt": item["prompt"], "chosen": item["chosen"]} for item in items]
    return test_split("ultrafeedback_winrate", rows)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The response length in words (the judged metrics need the judge, which ftbench runs)."""
    return {"response_words": float(word_length(results[0]))}
