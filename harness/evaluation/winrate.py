"""The judge step of win-rate tasks: each generated response against its reference, then the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare.statistics import bootstrap_stderr
from harness.core.errors import FtbenchError
from harness.core.records import MetricValue, SampleRecord
from harness.core.request import EvalRequest
from harness.evaluation.judges import JudgeSpec, LLMJudge, RewardModelJudge, ScoreCache, judge_identity, load_judge
from tasks.ultrafeedback.scoring import pairwise_outcome, reward_outcome, win_rate_metrics, word_length
from tasks.ultrafeedback.task import DATASET_REFERENCE, WinRateOptions, lc_win_rate

JUDGE_CACHE_DIR = "judge_cache"


def reference_variant(options: WinRateOptions) -> tuple[str, str] | None:
    """The (checkpoint name, precision) whose responses are the references; None for the dataset's."""
    if options.reference == DATASET_REFERENCE:
        return None
    name, _, precision = options.reference.partition("@")
    return name, precision


def judged_dependencies(options: WinRateOptions, reference: str | None) -> dict[str, str]:
    """What a win-rate result depends on besides the variant: the judge, and the reference variant
    (``WEIGHTS_HASH@PRECISION``; None for the dataset's responses).

    Raises:
        FtbenchError: the judge's path does not exist.
    """
    return {
        "judge": judge_identity(options.judge),
        "judge_kind": options.judge.kind,
        "reference": reference or DATASET_REFERENCE,
    }


def reference_responses(
    options: WinRateOptions, samples: Sequence[SampleRecord], reference: Sequence[SampleRecord] | None
) -> list[str]:
    """The reference response of each sample: the dataset's, or the reference variant's for the same item.

    Raises:
        FtbenchError: the reference variant did not answer some item.
    """
    if reference is None:
        return [sample.target for sample in samples]
    by_doc = {sample.doc_hash: sample.response for sample in reference}
    missing = [s.doc_id for s in samples if s.doc_hash not in by_doc]
    if missing:
        raise FtbenchError(
            f"reference variant {options.reference} did not answer items {missing[:5]}; give both the same limit"
        )
    return [by_doc[sample.doc_hash] for sample in samples]


@dataclass
class Judges:
    """The judges of one run, each loaded once, and where their score caches live."""

    device: str
    cache_dir: Path
    loaded: dict[str, RewardModelJudge | LLMJudge] = field(default_factory=dict)

    def get(self, spec: JudgeSpec) -> RewardModelJudge | LLMJudge:
        """The judge ``spec`` names, loaded on first use."""
        identity = judge_identity(spec)
        if identity not in self.loaded:
            self.loaded[identity] = load_judge(spec, self.device)
        return self.loaded[identity]

    def judge(
        self,
        request: EvalRequest,
        samples: Sequence[SampleRecord],
        prompts: Sequence[str],
        reference: Sequence[SampleRecord] | None,
    ) -> tuple[dict[str, MetricValue], list[SampleRecord]]:
        """Judge a win-rate request's samples against their references."""
        options = WinRateOptions.model_validate(request.options)
        references = reference_responses(options, samples, reference)
        judge = self.get(options.judge)
        return judge_samples(samples, prompts, references, judge, self.cache_dir, request.seed)


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
            bootstrap_stderr(lc_win_rate, scored, 200, seed),
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
