"""The registry of ftbench tasks: a plain dict from task name to what the harness needs to know of it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import FtbenchError
from harness.results import SampleRecord
from tasks.perplexity.scoring import perplexities
from tasks.rewrite.scoring import clean_rewrite, corpus_bleu, corpus_chrf
from tasks.ultrafeedback.scoring import win_rate_metrics

TASKS_ROOT = Path(__file__).resolve().parent

MetricKind = Literal["binary", "continuous", "corpus"]
"""``binary``: each sample scores 0 or 1; ``continuous``: a mean of per-sample scores; ``corpus``: computed
over the whole corpus (no per-sample value; paired comparisons resample samples)."""


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: its scale and whether each sample scores 0/1 (for paired tests)."""

    scale: str
    kind: MetricKind
    higher_is_better: bool = True
    sample_score: str | None = None
    """The per-sample score behind the metric, when it is not named like the metric."""


CorpusMetric = Callable[[Sequence[SampleRecord]], float]


def _perplexity(name: str) -> CorpusMetric:
    def corpus(samples: Sequence[SampleRecord]) -> float:
        scores = perplexities([s.scores["loglikelihood"] for s in samples], [s.target for s in samples])
        return float(getattr(scores, name))

    return corpus


def _rewrite(score: Callable[[Sequence[str], Sequence[str]], float]) -> CorpusMetric:
    def corpus(samples: Sequence[SampleRecord]) -> float:
        return score([clean_rewrite(s.response) for s in samples], [s.target for s in samples])

    return corpus


def _lc_win_rate(samples: Sequence[SampleRecord]) -> float:
    return win_rate_metrics(
        [s.scores["win"] for s in samples],
        [int(s.scores["candidate_words"]) for s in samples],
        [int(s.scores["reference_words"]) for s in samples],
    ).length_controlled_win_rate


@dataclass(frozen=True)
class TaskInfo:
    """One task: its folder (an lm-eval include path), headline metric and metrics."""

    name: str
    folder: Path
    headline: str
    metrics: dict[str, MetricInfo]
    corpus_metrics: dict[str, CorpusMetric] = field(default_factory=dict)
    """Corpus-level metrics recomputed from stored samples, for bootstrap standard errors and paired tests."""
    judged: bool = False
    """Whether ftbench's judge step scores the responses (win-rate tasks)."""
    generative: bool = True
    """Whether the task generates text (so generation settings change its result)."""
    data_files: tuple[str, ...] = ()
    """The task's files inside the offline data folder, hashed into cache keys when present."""


TASKS: dict[str, TaskInfo] = {
    "countdown": TaskInfo(
        name="countdown",
        folder=TASKS_ROOT / "countdown",
        headline="accuracy",
        metrics={
            "reward": MetricInfo("0-1 (TinyZero rule reward: 1, 0.1 or 0)", "continuous"),
            "accuracy": MetricInfo("0-1 (share of samples solved)", "binary"),
            "format_rate": MetricInfo("0-1 (share with an <answer> tag)", "binary"),
        },
        data_files=("countdown/countdown_tasks_3to4.jsonl",),
    ),
    **{
        name: TaskInfo(
            name=name,
            folder=TASKS_ROOT / "arc",
            headline="acc_norm",
            metrics={
                "acc": MetricInfo("0-1 (share correct; choice with the highest log-likelihood)", "binary"),
                "acc_norm": MetricInfo("0-1 (share correct; log-likelihood per byte of the choice)", "binary"),
            },
            generative=False,
            data_files=(data_file,),
        )
        for name, data_file in (
            ("arc_easy", "arc/arc_easy_test.json"),
            ("arc_challenge", "arc/arc_challenge_test.jsonl"),
        )
    },
    "arc_easy_gen": TaskInfo(
        name="arc_easy_gen",
        folder=TASKS_ROOT / "arc",
        headline="exact_match",
        metrics={
            "exact_match": MetricInfo("0-1 (share answering with the correct letter)", "binary"),
            "valid_rate": MetricInfo("0-1 (share answering with any valid letter)", "binary"),
        },
        data_files=("arc/arc_easy_test.json",),
    ),
    **{
        name: TaskInfo(
            name=name,
            folder=TASKS_ROOT / "rewrite",
            headline="bleu",
            metrics={
                "bleu": MetricInfo("0-100 (sacrebleu corpus BLEU)", "corpus"),
                "chrf": MetricInfo("0-100 (sacrebleu corpus chrF)", "corpus"),
                "sentence_bleu": MetricInfo("0-100 (mean sacrebleu sentence BLEU)", "continuous"),
                "rouge1": MetricInfo("0-1 (mean ROUGE-1 F-measure)", "continuous"),
                "rouge2": MetricInfo("0-1 (mean ROUGE-2 F-measure)", "continuous"),
                "rougeL": MetricInfo("0-1 (mean ROUGE-L F-measure)", "continuous"),
                "exact_match": MetricInfo("0-1 (share identical up to whitespace)", "binary"),
            },
            corpus_metrics={"bleu": _rewrite(corpus_bleu), "chrf": _rewrite(corpus_chrf)},
            data_files=data_files,
        )
        for name, data_files in (
            ("rewrite_cast", ("question_rewrite/cast_rewrite_pairs.jsonl",)),
            ("rewrite_noisy", ("question_rewrite/cast_rewrite_pairs.jsonl", "arc/arc_easy_test.json")),
        )
    },
    "perplexity_ultrafeedback": TaskInfo(
        name="perplexity_ultrafeedback",
        folder=TASKS_ROOT / "perplexity",
        headline="bits_per_byte",
        metrics={
            "word_perplexity": MetricInfo("1 and up, lower is better (per whitespace word)", "corpus", False),
            "byte_perplexity": MetricInfo("1 and up, lower is better (per UTF-8 byte)", "corpus", False),
            "bits_per_byte": MetricInfo("0 and up, lower is better", "corpus", False),
            "loglikelihood": MetricInfo("nats per document, higher is better (mean)", "continuous"),
        },
        corpus_metrics={name: _perplexity(name) for name in ("word_perplexity", "byte_perplexity", "bits_per_byte")},
        generative=False,
        data_files=("ultrafeedback/test_prefs_500.jsonl",),
    ),
    "ultrafeedback_winrate": TaskInfo(
        name="ultrafeedback_winrate",
        folder=TASKS_ROOT / "ultrafeedback",
        headline="win_rate",
        metrics={
            "win_rate": MetricInfo("0-1 (ties count 1/2)", "continuous", sample_score="win"),
            "lc_win_rate": MetricInfo("0-1 (win rate at zero length difference, logistic fit)", "corpus"),
            "tie_rate": MetricInfo("0-1", "binary", False, sample_score="tie"),
            "reward_margin": MetricInfo("reward units (candidate minus reference, mean)", "continuous"),
            "candidate_words": MetricInfo("words (mean)", "continuous"),
            "reference_words": MetricInfo("words (mean)", "continuous"),
            "response_words": MetricInfo("words (mean, from lm-eval)", "continuous"),
        },
        corpus_metrics={"lc_win_rate": _lc_win_rate},
        judged=True,
        data_files=("ultrafeedback/test_prefs_500.jsonl",),
    ),
}


def get_task(name: str) -> TaskInfo:
    """The task called ``name``.

    Raises:
        FtbenchError: no such task; the message lists the valid names.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise FtbenchError(f"unknown task {name!r}; choose from {', '.join(sorted(TASKS))}") from None


def task_definition_hash(name: str) -> str:
    """sha256 of the files that define a task (its YAML and Python), so any edit invalidates its cache."""
    task = get_task(name)
    digest = hashlib.sha256()
    for path in sorted(task.folder.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".py"):
            digest.update(path.relative_to(task.folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
