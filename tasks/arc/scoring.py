"""Scoring of the generative ARC variant: the chosen letter, by exact match (0/1)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ANSWER_IS = re.compile(r"answer\s*(?:is|:)?\s*\(?([A-Z0-9])\b\)?", re.IGNORECASE)
_LEADING = re.compile(r"^\W*\(?([A-Z0-9])(?:\)|\.|:|\s|$)")


def extract_choice(response: str, labels: Sequence[str]) -> str | None:
    """The label a response chooses: a leading label (``B``, ``(B)``, ``B.``), else ``answer is B``."""
    text = response.strip()
    for pattern in (_LEADING, _ANSWER_IS):
        match = pattern.search(text)
        if match and match.group(1).upper() in labels:
            return match.group(1).upper()
    return None


def score_arc_choice(response: str, labels: Sequence[str], answer_key: str) -> float:
    """1.0 when the response chooses the correct label, else 0.0."""
    return float(extract_choice(response, labels) == answer_key)
