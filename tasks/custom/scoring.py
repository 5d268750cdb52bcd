"""Scoring of answers against one or several references: SQuAD v1.1's exact match and token F1, and sacrebleu's
BLEU and chrF and ROUGE over several references.

Exact match and F1 follow the SQuAD v1.1 evaluation script: both sides are normalized (lower case, punctuation
removed, the articles a/an/the removed, whitespace collapsed), F1 is the harmonic mean of token precision and
recall, and each is the maximum over the references. Scales: exact match and F1 on 0-1 (the script reports
them ×100); BLEU, chrF and sentence BLEU on sacrebleu's 0-100; ROUGE F-measures on 0-1 (the best reference).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals a normalized reference, else 0.0."""
    return float(any(normalize_answer(prediction) == normalize_answer(ref) for ref in references))


def _f1(prediction: str, reference: str) -> float:
    predicted, truth = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(predicted) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """SQuAD v1.1's token F1 (0-1), the best over the references."""
    return max(_f1(prediction, ref) for ref in references)


@cache
def _rouge() -> rouge_scorer.RougeScorer:
    from rouge_score import rouge_scorer  # imports nltk and scikit-learn: only when a score is computed

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (0-1), each the best over the references."""
    scores = _rouge().score_multi(list(references), prediction)
    return {name: score.fmeasure for name, score in scores.items()}


def sentence_bleu(prediction: str, references: Sequence[str]) -> float:
    """sacrebleu's sentence BLEU (0-100) against all references."""
    return float(sacrebleu.sentence_bleu(prediction, list(references)).score)


@cache
def _metric(name: str) -> BLEU | CHRF:
    return BLEU() if name == "bleu" else CHRF()


@lru_cache(maxsize=100_000)
def _statistics(name: str, prediction: str, references: tuple[str, ...]) -> tuple[int, ...]:
    """sacrebleu's sufficient statistics of one segment against its own references (they may differ in number)."""
    return tuple(_metric(name)._extract_corpus_statistics([prediction], [[ref] for ref in references])[0])


def corpus_score(name: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu's corpus BLEU or chrF (0-100, default settings), each segment against its own references.

    Summing per-segment statistics is how sacrebleu scores a corpus, so this equals ``sacrebleu.corpus_bleu``
    whenever every segment has the same number of references, and extends it to varying numbers.
    """
    stats = [list(_statistics(name, p, tuple(refs))) for p, refs in zip(predictions, references, strict=True)]
    return float(_metric(name)._aggregate_and_compute(stats).score)
