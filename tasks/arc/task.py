"""The lm-eval side of ARC: dataset hooks for both subsets and the generative variant's prompt and results."""

from __future__ import annotations

from typing import Any

import datasets

from tasks.arc.dataset import Subset, arc_items
from tasks.arc.scoring import extract_choice, score_arc_choice
from tasks.data import test_split


def _load(subset: Subset, metadata: dict[str, Any]) -> dict[str, datasets.Dataset]:
    source, data_dir = metadata.get("source", "auto"), metadata.get("data_dir")
    return test_split(subset, arc_items(subset, "test", source, data_dir))


def load_easy(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: ARC-Easy test."""
    return _load("ARC-Easy", metadata)


def load_challenge(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: ARC-Challenge test."""
    return _load("ARC-Challenge", metadata)


def doc_to_text_gen(doc: dict[str, Any]) -> str:
    """The question with lettered choices, asking for the letter alone."""
    options = "\n".join(
        f"{label}. {text}" for label, text in zip(doc["choices"]["label"], doc["choices"]["text"], strict=True)
    )
    return f"{doc['question']}\n{options}\nAnswer with the letter of the correct choice only."


def process_results_gen(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Per-sample exact match of the chosen letter (0/1), and whether any valid letter was given."""
    labels = doc["choices"]["label"]
    return {
        "exact_match": score_arc_choice(results[0], labels, doc["answerKey"]),
        "valid_rate": float(extract_choice(results[0], labels) is not None),
    }
