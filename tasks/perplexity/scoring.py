"""Perplexity from rolling log-likelihoods (natural log) and the texts they score.

Scales: word and byte perplexity from 1 up (lower is better); bits per byte from 0 up (lower is better).
Words are whitespace-separated tokens; bytes are UTF-8 bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import NamedTuple


class Perplexities(NamedTuple):
    """Corpus-level perplexities of a set of texts."""

    word_perplexity: float
    byte_perplexity: float
    bits_per_byte: float


def word_count(text: str) -> int:
    """Whitespace-separated words, counted as lm-eval's wikitext task counts them."""
    return len(re.split(r"\s+", text))


def byte_count(text: str) -> int:
    """UTF-8 bytes."""
    return len(text.encode("utf-8"))


def perplexities(loglikelihoods: Sequence[float], texts: Sequence[str]) -> Perplexities:
    """Corpus perplexities: total log-likelihood over total words or bytes."""
    total = sum(loglikelihoods)
    words = sum(word_count(text) for text in texts)
    size = sum(byte_count(text) for text in texts)
    return Perplexities(
        word_perplexity=math.exp(-total / words),
        byte_perplexity=math.exp(-total / size),
        bits_per_byte=-total / size / math.log(2),
    )
