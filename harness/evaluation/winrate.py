"""The judge step of judged tasks: each generated response against its reference by the task's judge; the task
turns the outcomes into its metrics (``Task.judging``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import SampleRecord
from ftbench.harness.evaluation.judges import LLMJudge, RewardModelJudge, ScoreCache, judge_identity, load_judge
from ftbench.tasks.base import Task, TaskOptions
from ftbench.tasks.judging import (
    DATASET_REFERENCE,
    JudgedItems,
    JudgedScores,
    JudgeSpec,
    Judging,
    pairwise_outcome,
    reward_outcome,
)

JUDGE_CACHE_DIR = "judge_cache"


def judged_dependencies(judge: JudgeSpec, reference: str | None) -> dict[str, str]:
    """What a judged result depends on besides the variant: the judge, and the reference variant
    (``WEIGHTS_HASH@PRECISION``; None for the dataset's responses).

    Raises:
        FtbenchError: the judge's path does not exist.
    """
    return {
        "judge": judge_identity(judge),
        "judge_kind": judge.kind,
        "reference": reference or DATASET_REFERENCE,
    }


def reference_responses(
    label: str, samples: Sequence[SampleRecord], reference: Sequence[SampleRecord] | None
) -> list[str]:
    """The reference response of each sample: the dataset's, or the reference variant's (``label``) for the
    same item.

    Raises:
        FtbenchError: the reference variant did not answer some item.
    """
    if reference is None:
        return [sample.target for sample in samples]
    by_doc = {sample.doc_hash: sample.response for sample in reference}
    missing = [s.doc_id for s in samples if s.doc_hash not in by_doc]
    if missing:
        raise FtbenchError(f"reference variant {label} did not answer items {missing[:5]}; give both the same limit")
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
        task: Task,
        options: TaskOptions,
        samples: Sequence[SampleRecord],
        prompts: Sequence[str],
        reference: Sequence[SampleRecord] | None,
    ) -> JudgedScores:
        """Judge a judged task's samples against their references; the task turns the outcomes into metrics."""
        judging = task.judging
        if judging is None:
            raise ValueError(f"task {task.name} is not judged")
        references = reference_responses(judging.reference(options), samples, reference)
        judge = self.get(judging.judge(options))
        return judge_samples(judging, samples, prompts, references, judge, self.cache_dir)


def judge_samples(
    judging: Judging,
    samples: Sequence[SampleRecord],
    prompts: Sequence[str],
    references: Sequence[str],
    judge: RewardModelJudge | LLMJudge,
    cache_dir: Path,
) -> JudgedScores:
    """Judge each sample's response against its reference, then score the outcomes as the task declares."""
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
    return judging.score(JudgedItems(samples, references, outcomes, margins))
