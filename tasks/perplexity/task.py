"""The lm-eval side of perplexity: UltraFeedback chosen responses scored by rolling log-likelihood."""

from __future__ import annotations

from typing import Any

import datasets

from tasks.data import test_split
from tasks.perplexity.scoring import byte_count, word_count
from tasks.ultrafeedback.dataset import evaluation_items


def load(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: the chosen responses of the UltraFeedback test prompts."""
    items = evaluation_items(metadata.get("source", "auto"), metadata.get("data_dir"))
    return test_split("perplexity_ultrafeedback", [{"id": item["id"], "text": item["chosen"]} for item in items])


def process_results(doc: dict[str, Any], results: list[float]) -> dict[str, Any]:
    """(log-likelihood, weight) pairs for lm-eval's weighted perplexities, and the per-document log-likelihood."""
    (loglikelihood,) = results
    return {
        "word_perplexity": (loglikelihood, word_count(doc["text"])),
        "byte_perplexity": (loglikelihood, byte_count(doc["text"])),
        "bits_per_byte": (loglikelihood, byte_count(doc["text"])),
        "loglikelihood": loglikelihood,
    }
