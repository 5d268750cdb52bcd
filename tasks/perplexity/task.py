"""Perplexity as a task: UltraFeedback chosen responses scored by rolling log-likelihood."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftbench.harness.core.records import SampleRecord
from ftbench.tasks.base import Metric, Task
from ftbench.tasks.data import DataOptions, local_paths
from ftbench.tasks.perplexity.scoring import byte_count, perplexities, word_count
from ftbench.tasks.ultrafeedback.dataset import TEST_FILE, evaluation_items


def process_results(doc: dict[str, Any], results: list[float]) -> dict[str, Any]:
    """(log-likelihood, weight) pairs for lm-eval's weighted perplexities, and the per-document log-likelihood."""
    (loglikelihood,) = results
    return {
        "word_perplexity": (loglikelihood, word_count(doc["text"])),
        "byte_perplexity": (loglikelihood, byte_count(doc["text"])),
        "bits_per_byte": (loglikelihood, byte_count(doc["text"])),
        "loglikelihood": loglikelihood,
    }


def _corpus(name: str) -> Any:
    def corpus(samples: Sequence[SampleRecord]) -> float:
        scores = perplexities([s.scores["loglikelihood"] for s in samples], [s.target for s in samples])
        return float(getattr(scores, name))

    return corpus


TASKS = (
    Task(
        name="perplexity_ultrafeedback",
        folder=Path(__file__).parent,
        output="loglikelihood_rolling",
        headline="bits_per_byte",
        metrics={
            "word_perplexity": Metric(
                "1 and up, lower is better (per whitespace word)", "corpus", False, corpus=_corpus("word_perplexity")
            ),
            "byte_perplexity": Metric(
                "1 and up, lower is better (per UTF-8 byte)", "corpus", False, corpus=_corpus("byte_perplexity")
            ),
            "bits_per_byte": Metric("0 and up, lower is better", "corpus", False, corpus=_corpus("bits_per_byte")),
            "loglikelihood": Metric("nats per document, higher is better (mean)", "continuous"),
        },
        options=DataOptions,
        items=evaluation_items,
        lm_eval_row=lambda item: {"id": item["id"], "text": item["chosen"]},
        data_paths=lambda options: local_paths([TEST_FILE], options),
    ),
)

load = TASKS[0].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): the chosen responses of the UltraFeedback test prompts."""
