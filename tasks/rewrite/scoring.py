"""Question-rewrite scoring: one function per sample, sacrebleu for corpus BLEU and chrF.

Scales: BLEU, chrF and sentence BLEU on sacrebleu's 0-100; ROUGE F-measures and exact match on 0-1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, NamedTuple

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

_LABEL = re.compile(r"^(?:rewritten question|rewrite|clean question|question|answer)\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’`"


class RewriteScore(NamedTuple):
    """Per-sample scores of one rewrite against its reference."""

    sentence_bleu: float
    rouge1: float
    rouge2: float
    rougeL: float
    exact_match: float


def clean_rewrite(response: str) -> str:
    """The rewrite in a response: its first non-empty line, without a leading label or surrounding quotes."""
    line = next((line.strip() for line in response.splitlines() if line.strip()), "")
    line = _LABEL.sub("", line).strip()
    if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    return line


@cache
def _rouge() -> rouge_scorer.RougeScorer:
    from rouge_score import rouge_scorer  # imports nltk and scikit-learn: only when a score is computed

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def score_rewrite(hypothesis: str, reference: str) -> RewriteScore:
    """Score one cleaned rewrite against its reference."""
    rouge = _rouge().score(reference, hypothesis)
    return RewriteScore(
        sentence_bleu=sacrebleu.sentence_bleu(hypothesis, [reference]).score,
        rouge1=rouge["rouge1"].fmeasure,
        rouge2=rouge["rouge2"].fmeasure,
        rougeL=rouge["rougeL"].fmeasure,
        exact_match=float(" ".join(hypothesis.split()) == " ".join(reference.split())),
    )


@cache
def _metric(name: str) -> BLEU | CHRF:
    return BLEU() if name == "bleu" else CHRF()


@lru_cache(maxsize=100_000)
def _segment_statistics(name: str, hypothesis: str, reference: str) -> tuple[int, ...]:
    """sacrebleu's sufficient statistics of one segment, which corpus scores sum (its bootstrap does the same)."""
    return tuple(_metric(name)._extract_corpus_statistics([hypothesis], [[reference]])[0])


def _corpus(name: str, hypotheses: Sequence[str], references: Sequence[str]) -> float:
    stats = [list(_segment_statistics(name, h, r)) for h, r in zip(hypotheses, references, strict=True)]
    return float(_metric(name)._aggregate_and_compute(stats).score)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus BLEU (0-100, default settings), one reference per hypothesis.

    Summed from cached segment statistics, so bootstrap resamples cost no re-tokenisation.
    """
    return _corpus("bleu", hypotheses, references)


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu's corpus chrF (0-100, default settings), one reference per hypothesis."""
    return _corpus("chrf", hypotheses, references)
