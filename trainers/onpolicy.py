"""On-policy Countdown preference pairs: sample answers from the policy, score them with the task's reward."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ftbench.tasks.countdown.scoring import countdown_reward
from ftbench.tasks.countdown.task import doc_to_text
from ftbench.tasks.countdown.traces import RESPONSE_PREFIX
from ftbench.tasks.countdown.training import user
from ftbench.trainers.config import SamplingSettings
from ftbench.trainers.training_data import evaluation_prompt


class SampledPairs(NamedTuple):
    """Preference rows and what the sampling saw."""

    rows: list[dict[str, Any]]
    samples: int
    mean_reward: float


def sample_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    puzzles: list[dict[str, Any]],
    sampling: SamplingSettings,
    seed: int,
) -> list[list[str]]:
    """``sampling.samples`` answers per puzzle, each starting with the evaluation's response prefix."""
    torch.manual_seed(seed)
    prompts = [evaluation_prompt(tokenizer, user(doc_to_text(p))) for p in puzzles]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    answers: list[list[str]] = []
    per_batch = max(1, sampling.batch_size // sampling.samples)
    try:
        for start in range(0, len(prompts), per_batch):
            batch = tokenizer(
                prompts[start : start + per_batch], return_tensors="pt", padding=True, add_special_tokens=False
            )
            batch = batch.to(model.device)
            with torch.no_grad():
                output = cast(Any, model).generate(
                    **batch,
                    do_sample=True,
                    temperature=sampling.temperature,
                    max_new_tokens=sampling.max_new_tokens,
                    num_return_sequences=sampling.samples,
                    pad_token_id=tokenizer.pad_token_id,
                )
            texts = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            answers += [
                [RESPONSE_PREFIX + text for text in texts[i : i + sampling.samples]]
                for i in range(0, len(texts), sampling.samples)
            ]
    finally:
        tokenizer.padding_side = side
    return answers


def preference_pair(prompt: list[dict[str, str]], answers: list[str], rewards: list[float]) -> dict[str, Any] | None:
    """The first best-scoring answer as chosen and the first worst-scoring as rejected; None on a tie."""
    best = max(range(len(answers)), key=lambda i: rewards[i])
    worst = min(range(len(answers)), key=lambda i: rewards[i])
    if rewards[best] <= rewards[worst]:
        return None
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": answers[best]}],
        "rejected": [{"role": "assistant", "content": answers[worst]}],
    }


def countdown_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    puzzles: list[dict[str, Any]],
    sampling: SamplingSettings,
    seed: int,
) -> SampledPairs:
    """For each puzzle, the best-scoring sample as chosen and the worst as rejected, when their scores differ."""
    answers = sample_answers(model, tokenizer, puzzles, sampling, seed)
    rows, total = [], 0.0
    for puzzle, group in zip(puzzles, answers, strict=True):
        rewards = countdown_reward(group, [puzzle["target"]] * len(group), [puzzle["nums"]] * len(group))
        total += sum(rewards)
        pair = preference_pair(user(doc_to_text(puzzle)), group, rewards)
        rows += [pair] if pair else []
    samples = len(puzzles) * sampling.samples
    return SampledPairs(rows, samples, total / samples if samples else 0.0)
