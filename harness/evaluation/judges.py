"""Judges for judged tasks: a reward model or a pairwise LLM judge, batched, with a score cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from ftbench.harness.core.checkpoints import content_hash, resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.store import write_atomic
from ftbench.harness.engines.hf import load_for_evaluation, load_reward_model, load_tokenizer
from ftbench.tasks.judging import JudgeSpec, Verdict

JUDGE_PROMPT = (
    "You are comparing two responses to the same request. Pick the one that is more helpful, correct and "
    "clear.\n\n[Request]\n{prompt}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n"
    "Which response is better? Answer with the single letter A or B."
)
JUDGE_VERSION = 1


class ScoreCache:
    """Judge scores keyed by a hash of what was judged, stored as one JSON file per judge (None: in memory)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.scores: dict[str, float] = json.loads(path.read_text()) if path and path.is_file() else {}

    def save(self) -> None:
        """Store the scores atomically (nothing for an in-memory cache)."""
        if self.path is not None:
            write_atomic(self.path, json.dumps(self.scores, sort_keys=True))


def _item_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[object], max_length: int, device: Any) -> BatchEncoding:
    """A padded, truncated batch of already templated texts on the model's device."""
    return tokenizer(
        [str(text) for text in texts],
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_length,
        add_special_tokens=False,
    ).to(device)


@dataclass
class RewardModelJudge:
    """Scores each (prompt, response) with a reward model; the higher reward wins."""

    spec: JudgeSpec
    identity: str
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase

    def rewards(self, prompts: Sequence[str], responses: Sequence[str], cache: ScoreCache) -> list[float]:
        """The reward of each response to its prompt, computing only what the cache lacks."""
        keys = [_item_key(p, r) for p, r in zip(prompts, responses, strict=True)]
        missing = list({k: i for i, k in enumerate(keys) if k not in cache.scores}.items())
        missing.sort(key=lambda kv: len(prompts[kv[1]]) + len(responses[kv[1]]))  # similar lengths batch together
        texts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompts[i]}, {"role": "assistant", "content": responses[i]}],
                tokenize=False,
            )
            for _, i in missing
        ]
        for start in range(0, len(texts), self.spec.batch_size):
            batch = texts[start : start + self.spec.batch_size]
            encoded = _encode(self.tokenizer, batch, self.spec.max_length, self.model.device)
            with torch.no_grad():
                scores = self.model(**encoded).logits[:, 0].float().tolist()
            for (key, _), score in zip(missing[start : start + self.spec.batch_size], scores, strict=True):
                cache.scores[key] = float(score)
        return [cache.scores[k] for k in keys]


@dataclass
class LLMJudge:
    """Asks a causal LM which of two responses is better, reading its next-token choice between A and B."""

    spec: JudgeSpec
    identity: str
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase

    def verdicts(
        self, prompts: Sequence[str], firsts: Sequence[str], seconds: Sequence[str], cache: ScoreCache
    ) -> list[Verdict]:
        """For each prompt, whether response A (``firsts``) or B (``seconds``) is judged better."""
        keys = [_item_key(p, a, b) for p, a, b in zip(prompts, firsts, seconds, strict=True)]
        letters = [self.tokenizer.encode(letter, add_special_tokens=False)[-1] for letter in ("A", "B")]
        todo = [i for i, k in enumerate(keys) if k not in cache.scores]
        for start in range(0, len(todo), self.spec.batch_size):
            batch = todo[start : start + self.spec.batch_size]
            questions = [JUDGE_PROMPT.format(prompt=prompts[i], first=firsts[i], second=seconds[i]) for i in batch]
            texts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
                )
                for question in questions
            ]
            self.tokenizer.padding_side = "left"  # the next token of every prompt is at the last position
            encoded = _encode(self.tokenizer, texts, self.spec.max_length, self.model.device)
            positions = (encoded["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = self.model(**encoded, position_ids=positions).logits[:, -1, letters].float()
            for i, pair in zip(batch, logits.tolist(), strict=True):
                cache.scores[keys[i]] = float(pair[0] - pair[1])  # > 0: A preferred
        return ["A" if cache.scores[k] > 0 else "B" for k in keys]


def judge_identity(spec: JudgeSpec) -> str:
    """A hash of everything that decides the judge's scores: its weights and settings."""
    if not spec.path.exists():
        raise FtbenchError(
            f"judge {spec.path} does not exist; run `ftbench train reward` or set the task option judge.path"
        )
    settings = spec.model_dump(mode="json", exclude={"path", "tie_margin", "batch_size"})
    return _item_key(content_hash(spec.path), json.dumps(settings, sort_keys=True), str(JUDGE_VERSION))


def load_judge(spec: JudgeSpec, device: str) -> RewardModelJudge | LLMJudge:
    """Load the judge a spec names.

    Raises:
        FtbenchError: the path is missing or is not the kind of model the spec says.
    """
    identity = judge_identity(spec)
    if spec.kind == "reward_model":
        model, tokenizer = load_reward_model(spec.path, device)
        return RewardModelJudge(spec, identity, model, tokenizer)
    checkpoint = resolve_checkpoint(spec.path)
    model, _ = load_for_evaluation(checkpoint, Precision.FP32, device)
    return LLMJudge(spec, identity, model, load_tokenizer(checkpoint))
