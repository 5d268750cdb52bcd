"""The lm-eval side of question rewrite: dataset hooks, prompts and per-sample results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftbench.harness.core.records import SampleRecord
from ftbench.tasks.arc.dataset import LOCAL_FILES
from ftbench.tasks.base import Metric, Task
from ftbench.tasks.data import local_file
from ftbench.tasks.rewrite.dataset import CAST_FILE, CastOptions, NoisyOptions, cast_items, noisy_items
from ftbench.tasks.rewrite.scoring import clean_rewrite, corpus_bleu, corpus_chrf, score_rewrite

CAST_PROMPT = (
    "Rewrite the last question of this conversation so that it can be understood on its own, without the "
    "earlier questions. Keep its meaning. Reply with the rewritten question only.\n\n"
    "Earlier questions:\n{history}\n\nLast question: {question}"
)
NOISY_PROMPT = (
    "The question below has typos, filler words and formatting errors. Rewrite it as a clean, well-formed "
    "question with the same meaning. Reply with the rewritten question only.\n\nQuestion: {question}"
)


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


def _corpus(score: Any) -> Any:
    def corpus(samples: Sequence[SampleRecord]) -> float:
        return float(score([clean_rewrite(s.response) for s in samples], [s.target for s in samples]))

    return corpus


REWRITE_METRICS = {
    "bleu": Metric("0-100 (sacrebleu corpus BLEU)", "corpus", corpus=_corpus(corpus_bleu)),
    "chrf": Metric("0-100 (sacrebleu corpus chrF)", "corpus", corpus=_corpus(corpus_chrf)),
    "sentence_bleu": Metric("0-100 (mean sacrebleu sentence BLEU)", "continuous", bounds=(0.0, 100.0)),
    "rouge1": Metric("0-1 (mean ROUGE-1 F-measure)", "continuous", bounds=(0.0, 1.0)),
    "rouge2": Metric("0-1 (mean ROUGE-2 F-measure)", "continuous", bounds=(0.0, 1.0)),
    "rougeL": Metric("0-1 (mean ROUGE-L F-measure)", "continuous", bounds=(0.0, 1.0)),
    "exact_match": Metric("0-1 (share identical up to whitespace)", "binary"),
}
"""The metrics of a rewrite: corpus BLEU and chrF, and per-sample scores."""


def _files(options: CastOptions | NoisyOptions, names: Sequence[str]) -> list[Path]:
    return [path for name in names if (path := local_file(name, options.data_dir)) is not None]


TASKS = (
    Task(
        name="rewrite_cast",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="bleu",
        metrics=REWRITE_METRICS,
        options=CastOptions,
        items=cast_items,
        data_paths=lambda options: _files(options, [CAST_FILE]),
    ),
    Task(
        name="rewrite_noisy",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="bleu",
        metrics=REWRITE_METRICS,
        options=NoisyOptions,
        items=noisy_items,
        data_paths=lambda options: _files(options, [CAST_FILE, LOCAL_FILES[("ARC-Easy", "test")]]),
    ),
)

load_cast = TASKS[0].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): TREC CAsT items."""
load_noisy = TASKS[1].dataset_hook()
"""lm-eval ``custom_dataset`` hook (stock ``lm_eval``): noisy questions."""
