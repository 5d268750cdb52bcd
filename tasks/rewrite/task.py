"""The lm-eval side of question rewrite: dataset hooks, prompts and per-sample results."""

from __future__ import annotations

from typing import Any

import datasets

from tasks.data import test_split
from tasks.rewrite.dataset import cast_items, noisy_items
from tasks.rewrite.scoring import clean_rewrite, score_rewrite

CAST_PROMPT = (
    "Rewrite the last question of this conversation so that it can be understood on its own, without the "
    "earlier questions. Keep its meaning. Reply with the rewritten question only.\n\n"
    "Earlier questions:\n{history}\n\nLast question: {question}"
)
NOISY_PROMPT = (
    "The question below has typos, filler words and formatting errors. Rewrite it as a clean, well-formed "
    "question with the same meaning. Reply with the rewritten question only.\n\nQuestion: {question}"
)


def load_cast(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: TREC CAsT items."""
    items = cast_items(metadata.get("data_dir"), bool(metadata.get("only_changed", True)))
    return test_split("rewrite_cast", items)


def load_noisy(**metadata: Any) -> dict[str, datasets.Dataset]:
    """lm-eval ``custom_dataset`` hook: noisy questions."""
    items = noisy_items(metadata.get("data_dir"), int(metadata.get("seed", 1234)), int(metadata.get("count", 500)))
    return test_split("rewrite_noisy", items)


def doc_to_text_cast(doc: dict[str, Any]) -> str:
    """The conversation so far and the question to rewrite."""
    history = "\n".join(f"{i}. {question}" for i, question in enumerate(doc["history"], start=1)) or "(none)"
    return CAST_PROMPT.format(history=history, question=doc["question"])


def doc_to_text_noisy(doc: dict[str, Any]) -> str:
    """The noisy question to clean."""
    return NOISY_PROMPT.format(question=doc["question"])


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """Per-sample scores, plus (reference, hypothesis) pairs for lm-eval's corpus BLEU and chrF."""
    hypothesis = clean_rewrite(results[0])
    score = score_rewrite(hypothesis, doc["target"])
    return {
        "bleu": (doc["target"], hypothesis),
        "chrf": (doc["target"], hypothesis),
        **score._asdict(),
    }
