"""The judge step of win-rate tasks: each generated response against its reference, then the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import FtbenchError, first_error
from harness.judges import JudgeSpec, LLMJudge, RewardModelJudge, ScoreCache
from harness.results import MetricValue, SampleRecord
from harness.statistics import bootstrap_stderr
from tasks.registry import get_task
from tasks.ultrafeedback.scoring import pairwise_outcome, reward_outcome, win_rate_metrics, word_length

JUDGE_CACHE_DIR = "judge_cache"
DATASET_REFERENCE = "dataset"


class WinRateOptions(BaseModel):
    """Task options of a win-rate task (besides its data options)."""

    model_config = ConfigDict(extra="ignore")

    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    reference: str = DATASET_REFERENCE
    """``dataset`` (the dataset's chosen response) or ``CHECKPOINT@PRECISION``, a variant of the same run."""


def parse_winrate_options(task: str, options: dict[str, Any]) -> WinRateOptions:
    """Validate a win-rate task's options.

    Raises:
        FtbenchError: one line naming the bad option.
    """
    try:
        return WinRateOptions.model_validate(options)
    except ValidationError as exc:
        spot = first_error(exc)
        raise FtbenchError(f"task {task} option {spot.where}: {spot.message}") from exc


def _metric(value: float, stderr: float | None, n: int, scale: str, kind: str) -> MetricValue:
    return MetricValue(value=value, stderr=stderr, n=n, scale=scale, kind=kind)


def judge_samples(
    samples: Sequence[SampleRecord],
    prompts: Sequence[str],
    references: Sequence[str],
    judge: RewardModelJudge | LLMJudge,
    cache_dir: Path,
    seed: int,
) -> tuple[dict[str, MetricValue], list[SampleRecord]]:
    """Judge each sample's response against its reference; return the metrics and the scored samples."""
    cache = ScoreCache(cache_dir / JUDGE_CACHE_DIR / f"{judge.identity[:24]}.json")
    responses = [s.response for s in samples]
    margins: list[float] | None = None
    if isinstance(judge, RewardModelJudge):
        candidate = judge.rewards(prompts, responses, cache)
        reference = judge.rewards(prompts, references, cache)
        margins = [c - r for c, r in zip(candidate, reference, strict=True)]
        outcomes = [reward_outcome(c, r, judge.spec.tie_margin) for c, r in zip(candidate, reference, strict=True)]
    else:
        as_first = judge.verdicts(prompts, responses, references, cache)
        if judge.spec.swap:
            as_second = judge.verdicts(prompts, references, responses, cache)
            outcomes = [pairwise_outcome(a, b) for a, b in zip(as_first, as_second, strict=True)]
        else:
            outcomes = [1.0 if verdict == "A" else 0.0 for verdict in as_first]
    cache.save()
    scored = []
    for i, sample in enumerate(samples):
        extra = {
            "win": outcomes[i],
            "tie": float(outcomes[i] == 0.5),
            "candidate_words": float(word_length(responses[i])),
            "reference_words": float(word_length(references[i])),
        }
        if margins is not None:
            extra["reward_margin"] = margins[i]
        scored.append(sample.model_copy(update={"scores": {**sample.scores, **extra}}))
    return _metrics(scored, outcomes, margins, seed), scored


def _metrics(
    scored: list[SampleRecord], outcomes: list[float], margins: list[float] | None, seed: int
) -> dict[str, MetricValue]:
    n = len(scored)
    summary = win_rate_metrics(
        outcomes,
        [int(s.scores["candidate_words"]) for s in scored],
        [int(s.scores["reference_words"]) for s in scored],
    )
    tie_stderr = (summary.tie_rate * (1 - summary.tie_rate) / (n - 1)) ** 0.5 if n > 1 else None
    metrics = {
        "win_rate": _metric(summary.win_rate, summary.win_rate_stderr, n, "0-1 (ties count 1/2)", "continuous"),
        "tie_rate": _metric(summary.tie_rate, tie_stderr, n, "0-1", "binary"),
        "lc_win_rate": _metric(
            summary.length_controlled_win_rate,
            bootstrap_stderr(get_task("ultrafeedback_winrate").corpus_metrics["lc_win_rate"], scored, 200, seed),
            n,
            "0-1 (win rate at zero length difference, logistic fit)",
            "corpus",
        ),
        "candidate_words": _metric(
            summary.candidate_length,
            _mean_stderr([s.scores["candidate_words"] for s in scored]),
            n,
            "words (mean)",
            "continuous",
        ),
        "reference_words": _metric(
            summary.reference_length,
            _mean_stderr([s.scores["reference_words"] for s in scored]),
            n,
            "words (mean)",
            "continuous",
        ),
    }
    if margins is not None:
        metrics["reward_margin"] = _metric(
            sum(margins) / n, _mean_stderr(margins), n, "reward units (candidate minus reference, mean)", "continuous"
        )
    return metrics


def _mean_stderr(values: Sequence[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return (sum((v - mean) ** 2 for v in values) / (n - 1) / n) ** 0.5
