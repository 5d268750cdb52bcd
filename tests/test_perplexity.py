"""Perplexity: lm-eval's rolling log-likelihood checked against a direct computation, and corpus figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.precision import Precision
from ftbench.harness.engines.hf import load_causal_lm, load_tokenizer
from ftbench.tasks.perplexity.scoring import perplexities
from ftbench.tasks.registry import TASKS
from ftbench.tasks.ultrafeedback.dataset import evaluation_items
from tests.evaluate import evaluate


def direct_loglikelihood(model: torch.nn.Module, tokenizer: object, text: str, prefix_token: int) -> float:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    inputs = torch.tensor([[prefix_token, *ids]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(inputs).logits[0, :-1].double(), dim=-1)
    return float(logprobs[torch.arange(len(ids)), torch.tensor(ids)].sum())


def test_corpus_perplexities_by_hand() -> None:
    scores = perplexities([-10.0, -20.0], ["one two", "three four five six"])  # 6 words, 26 bytes
    assert scores.word_perplexity == pytest.approx(math.exp(30 / 6))
    assert scores.byte_perplexity == pytest.approx(math.exp(30 / 26))
    assert scores.bits_per_byte == pytest.approx(30 / 26 / math.log(2))


def test_rolling_loglikelihood_matches_a_direct_computation(tiny_model_dir: Path) -> None:
    run = evaluate(
        tiny_model_dir,
        "perplexity_ultrafeedback",
        options={"source": "local"},
        chat_template=False,
        limit=3,
        batch_size=4,
    )
    texts = [item["chosen"] for item in evaluation_items()[:3]]
    assert [sample.target for sample in run.samples] == texts
    checkpoint = resolve_checkpoint(tiny_model_dir)
    model, _ = load_causal_lm(checkpoint, Precision.FP32, "cpu")
    tokenizer = load_tokenizer(checkpoint)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    for sample, text in zip(run.samples, texts, strict=True):
        expected = direct_loglikelihood(model, tokenizer, text, prefix)
        assert sample.scores["loglikelihood"] == pytest.approx(expected, rel=1e-4)
    ours = perplexities([s.scores["loglikelihood"] for s in run.samples], texts)
    assert run.metrics["word_perplexity"][0] == pytest.approx(ours.word_perplexity, rel=1e-9)
    assert run.metrics["bits_per_byte"][0] == pytest.approx(ours.bits_per_byte, rel=1e-9)
    corpus = TASKS["perplexity_ultrafeedback"].corpus_metrics["byte_perplexity"]
    assert corpus(run.samples) == pytest.approx(run.metrics["byte_perplexity"][0], rel=1e-9)
