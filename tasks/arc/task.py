"""ARC as tasks: multiple choice by log-likelihood (lm-eval's stock prompt) and a generative letter variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftbench.tasks.arc.dataset import LOCAL_FILES, Subset, arc_items
from ftbench.tasks.arc.scoring import extract_choice, score_arc_choice
from ftbench.tasks.arc.training import training_side
from ftbench.tasks.base import Metric, Task
from ftbench.tasks.data import DataOptions, local_paths


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


def _items(subset: Subset) -> Any:
    def items(options: DataOptions) -> list[dict[str, Any]]:
        return arc_items(subset, "test", options)

    return items


def _paths(subset: Subset) -> Any:
    def paths(options: DataOptions) -> list[Path]:
        return local_paths([LOCAL_FILES[(subset, "test")]], options)

    return paths


ARC_SUBSETS: tuple[tuple[str, Subset], ...] = (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge"))

_CHOICE_METRICS = {
    "acc": Metric("0-1 (share correct; choice with the highest log-likelihood)", "binary"),
    "acc_norm": Metric("0-1 (share correct; log-likelihood per byte of the choice)", "binary"),
}

TASKS = (
    *(
        Task(
            name=name,
            folder=Path(__file__).parent,
            output="multiple_choice",
            headline="acc_norm",
            metrics=_CHOICE_METRICS,
            options=DataOptions,
            items=_items(subset),
            data_paths=_paths(subset),
            training=training_side(name, subset),
        )
        for name, subset in ARC_SUBSETS
    ),
    Task(
        name="arc_easy_gen",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="exact_match",
        metrics={
            "exact_match": Metric("0-1 (share answering with the correct letter)", "binary"),
            "valid_rate": Metric("0-1 (share answering with any valid letter)", "binary"),
        },
        options=DataOptions,
        items=_items("ARC-Easy"),
        data_paths=_paths("ARC-Easy"),
    ),
)

load_easy = TASKS[0].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): ARC-Easy test."""
load_challenge = TASKS[1].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): ARC-Challenge test."""
