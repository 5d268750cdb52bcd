"""On-policy preference pairs: sample answers to a task's prompts from the policy, rank them with the task's reward
(Countdown's ``countdown_reward``)."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ftbench.tasks.training_side import RewardedPrompts
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
    prompts: list[list[dict[str, str]]],
    prefix: str,
    sampling: SamplingSettings,
    seed: int,
) -> list[list[str]]:
    """``sampling.samples`` answers per prompt (a conversation), each starting with the response prefix."""
    torch.manual_seed(seed)
    rendered = [evaluation_prompt(tokenizer, prompt, prefix) for prompt in prompts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    answers: list[list[str]] = []
    per_batch = max(1, sampling.batch_size // sampling.samples)
    try:
        for start in range(0, len(rendered), per_batch):
            batch = tokenizer(
                rendered[start : start + per_batch], return_tensors="pt", padding=True, add_special_tokens=False
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
                [prefix + text for text in texts[i : i + sampling.samples]]
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


def on_policy_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: RewardedPrompts,
    rows: list[dict[str, Any]],
    sampling: SamplingSettings,
    seed: int,
) -> SampledPairs:
    """For each prompt row, the best-rewarded sample as chosen and the worst as rejected, when their rewards differ.

    The reward reads the row's other columns (Countdown's ``target`` and ``nums``), as TRL passes dataset columns.
    """
    answers = sample_answers(model, tokenizer, [row["prompt"] for row in rows], prompts.response_prefix, sampling, seed)
    pairs, total = [], 0.0
    for row, group in zip(rows, answers, strict=True):
        columns = {name: [value] * len(group) for name, value in row.items() if name != "prompt"}
        rewards = prompts.reward(group, **columns)
        total += sum(rewards)
        pair = preference_pair(row["prompt"], group, rewards)
        pairs += [pair] if pair else []
    samples = len(rows) * sampling.samples
    return SampledPairs(pairs, samples, total / samples if samples else 0.0)
