"""The model-based leakage check, for what text matching misses (paraphrases, translations, leaks in data that left
no fingerprints): whether a fine-tune finds a task's evaluated items more likely, relative to its base, than items
of the same task it certainly never saw.

For each item's plain text (``Task.audit_text``) the candidate and its reference each score every token, as lm-eval
scores a rolling log-likelihood (the first token predicted from the model's prefix token; the sum over tokens is
lm-eval's ``loglikelihood_rolling``): two forward passes per item. The item's score is the reference-based
membership score (``reference_score``: the fine-tune's mean log-probability per token less its base's) or, as an
option, Min-K%++ of the candidate alone. The evaluated items' scores are compared with those of a control set, the
task's items that were not evaluated, by the AUC and a one-sided Mann-Whitney p (``membership_test``). Slow: a
model load per checkpoint and a forward pass per item and checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from ftbench.harness.core.checkpoints import Checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.engines.hf import load_for_evaluation, load_tokenizer, use_free_cores
from ftbench.harness.leakage.membership import MembershipTest, membership_test, min_k_plus_plus, reference_score
from ftbench.harness.leakage.task_audit import AuditItem, AuditTarget, target_items, unused_items

ScoreKind = Literal["reference", "min_k"]
MAX_TOKENS = 512
"""Tokens scored per item (the first ones): bounds the cost of long documents."""
SIGNIFICANCE = 0.05


class TokenScores(NamedTuple):
    """Per token of one text: log p(x_t | x_<t), and the mean and variance of log p(z) under the model's own
    next-token distribution at that position (for Min-K%++)."""

    logprobs: np.ndarray
    mean: np.ndarray
    variance: np.ndarray


def score_tokens(model: Any, tokenizer: Any, texts: Sequence[str], device: str) -> list[TokenScores | None]:
    """Every token of each text scored by ``model`` (None for a text without tokens).

    Args:
        model: a causal language model in eval mode.
        tokenizer: its tokenizer.
        texts: the texts.
        device: where the model is.
    """
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    found: list[TokenScores | None] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:MAX_TOKENS]
        if not ids:
            found.append(None)
            continue
        inputs = torch.tensor([[prefix, *ids[:-1]]], device=device)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(inputs).logits[0].double(), dim=-1)
        chosen = logprobs[torch.arange(len(ids)), torch.tensor(ids, device=device)]
        probabilities = logprobs.exp()
        mean = (probabilities * logprobs).sum(dim=-1)
        variance = (probabilities * logprobs.square()).sum(dim=-1) - mean.square()
        found.append(TokenScores(chosen.cpu().numpy(), mean.cpu().numpy(), variance.clamp(min=0).cpu().numpy()))
    return found


def checkpoint_scores(checkpoint: Checkpoint, texts: Sequence[str], device: str = "cpu") -> list[TokenScores | None]:
    """``score_tokens`` with ``checkpoint`` loaded at fp32 by the transformers engine (torch's threads set to the
    free cores while it works).

    Raises:
        FtbenchError: the checkpoint cannot be loaded.
    """
    threads = torch.get_num_threads()
    try:
        use_free_cores()
        model, _ = load_for_evaluation(checkpoint, Precision.FP32, device)
        return score_tokens(model, load_tokenizer(checkpoint), texts, device)
    finally:
        torch.set_num_threads(threads)


def item_score(candidate: TokenScores, reference: TokenScores | None, kind: ScoreKind, k: float = 0.2) -> float:
    """One item's membership score (higher: more likely trained on)."""
    if kind == "min_k":
        kept = candidate.variance > 1e-12  # positions whose next token is certain carry no Min-K%++ score
        if not kept.any():
            return 0.0
        return min_k_plus_plus(candidate.logprobs[kept], candidate.mean[kept], candidate.variance[kept], k)
    if reference is None:
        raise FtbenchError("the reference-based score needs the base model's scores; give a reference checkpoint")
    return reference_score(candidate.logprobs, reference.logprobs)


class MembershipCheck(BaseModel):
    """Whether a task's evaluated items look seen by a checkpoint, against the task's unused items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    candidate: str
    reference: str | None
    score: ScoreKind
    test: MembershipTest | None
    note: str | None = None
    """Why there is no test (no unused items to serve as a control)."""

    def sentence(self) -> str:
        """``arc_easy: items look seen by sft (AUC 0.71, p = 0.003)``."""
        if self.test is None:
            return f"{self.task}: not tested ({self.note})"
        seen = self.test.auc > 0.5 and self.test.p_value < SIGNIFICANCE
        verdict = "items look seen by" if seen else "no sign that the items were seen by"
        figures = f"AUC {self.test.auc:.2f}, p = {self.test.p_value:.3g}"
        sizes = f"{self.test.suspected} items, {self.test.control} controls"
        return f"{self.task}: {verdict} {self.candidate} ({figures}; {sizes})"


class _Sets(NamedTuple):
    target: AuditTarget
    suspected: list[AuditItem]
    control: list[AuditItem]


def membership_checks(
    targets: Sequence[AuditTarget],
    candidate: Checkpoint,
    reference: Checkpoint | None,
    kind: ScoreKind = "reference",
    control: int | None = None,
    device: str = "cpu",
) -> list[MembershipCheck]:
    """The membership test of each target's evaluated items under ``candidate``, against as many of its unused
    items (``control`` caps them; None: as many as were evaluated).

    Raises:
        FtbenchError: a checkpoint cannot be loaded, or the reference-based score has no reference.
    """
    if kind == "reference" and reference is None:
        raise FtbenchError("the reference-based score needs a reference checkpoint (the fine-tune's base)")
    sets = []
    for target in targets:
        suspected = target_items(target)
        sets.append(_Sets(target, suspected, unused_items(target, control or len(suspected))))
    texts = [item.text for found in sets for item in (*found.suspected, *found.control)]
    scored = checkpoint_scores(candidate, texts, device)
    base = checkpoint_scores(reference, texts, device) if kind == "reference" and reference else [None] * len(texts)
    checks, at = [], 0
    for found in sets:
        count = len(found.suspected) + len(found.control)
        scores = [
            item_score(one, other, kind) if one is not None else None
            for one, other in zip(scored[at : at + count], base[at : at + count], strict=True)
        ]
        at += count
        checks.append(_check(found, scores, candidate, reference, kind))
    return checks


def _check(
    found: _Sets, scores: list[float | None], candidate: Checkpoint, reference: Checkpoint | None, kind: ScoreKind
) -> MembershipCheck:
    suspected = [s for s in scores[: len(found.suspected)] if s is not None]
    control = [s for s in scores[len(found.suspected) :] if s is not None]
    label = candidate.name if candidate.stage == candidate.name else f"{candidate.stage} ({candidate.name})"
    test, note = None, None
    if not control:
        note = "every item was evaluated, so none is left as a control"
    elif not suspected:
        note = "no evaluated item has text"
    else:
        test = membership_test(suspected, control)
    return MembershipCheck(
        task=found.target.task.name,
        candidate=label,
        reference=str(reference.path) if reference is not None and kind == "reference" else None,
        score=kind,
        test=test,
        note=note,
    )
