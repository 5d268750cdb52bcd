"""Altered copies of evaluation items, as leaks appear in training data: for measuring an audit's recall by planting
them in a training file whose other rows are known to be clean.

- ``restyle``: the same words with their case, punctuation and spacing changed (what normalisation undoes);
- ``replace_words``: one word in ten (by default) replaced by another word, the rest untouched.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from ftbench.harness.core.errors import FtbenchError

_WORD = re.compile(r"\w+")
_PUNCTUATION = ",;:!?.\"'-"


def restyle(text: str, rng: random.Random) -> str:
    """``text`` with each word's case changed at random (lower, upper or title), punctuation marks added and
    removed, and spaces doubled, tabbed or broken across lines; the words themselves are kept."""
    styled = []
    for token in text.split():
        core = "".join(char for char in token if char.isalnum())
        if not core:
            continue
        core = rng.choice([core.lower(), core.upper(), core.title(), core])
        if rng.random() < 0.3:
            core += rng.choice(_PUNCTUATION)
        if rng.random() < 0.1:
            core = rng.choice("\"'(") + core
        styled.append(core)
    spaces = [rng.choice(["  ", " \t", "\n", " "]) for _ in styled]
    joined = "".join(word + space for word, space in zip(styled, spaces, strict=True))
    return joined.strip() + rng.choice(["", "?", "!"])


def replace_words(text: str, rng: random.Random, vocabulary: Sequence[str], share: float = 0.1) -> str:
    """``text`` with ``share`` of its words (at least one, rounded; positions drawn at random) replaced by a
    different word drawn from ``vocabulary``; everything between words is kept.

    Raises:
        FtbenchError: ``share`` is outside (0, 1] or ``vocabulary`` has no word.
    """
    if not 0 < share <= 1 or not vocabulary:
        raise FtbenchError(f"replace_words needs a share in (0, 1] (got {share}) and a vocabulary of words")
    spans = [match.span() for match in _WORD.finditer(text)]
    if not spans:
        return text
    chosen = set(rng.sample(range(len(spans)), max(1, round(share * len(spans)))))
    pieces, cursor = [], 0
    for number, (start, end) in enumerate(spans):
        pieces.append(text[cursor:start])
        word = text[start:end]
        if number in chosen:
            replacement = rng.choice(vocabulary)
            while replacement.casefold() == word.casefold() and len(set(vocabulary)) > 1:
                replacement = rng.choice(vocabulary)
            word = replacement
        pieces.append(word)
        cursor = end
    return "".join(pieces) + text[cursor:]
