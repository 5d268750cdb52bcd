"""Bounds on the longest common substring of an item and a training row, from the row's winnowing fingerprints and
every k-gram hash of the item (whose text the audit has).

On one diagonal (item position minus row position), a row fingerprint is *matched* when the item's k-gram there
has the same hash. A run of consecutive row fingerprints that are all matched is one common substring, from the
first fingerprint to the end of the last k-gram: consecutive fingerprints are at most ``w`` apart and ``w <= k``,
so their k-grams overlap or touch. That is the **lower bound** (certain up to a 64-bit hash collision). The
unmatched fingerprints on either side of the run (or the ends of either text) each hold a character that differs,
so the common substring ends before them: that is the **upper bound**, and it is certain. Every common substring
of at least ``t = w + k - 1`` characters holds a matched fingerprint, so its run's upper bound is at least its
length: flagging at ``upper >= t`` finds every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class SubstringBounds(NamedTuple):
    """The longest common substring's bounds, in characters of normalised text without spaces."""

    lower: int
    upper: int


def _runs(matched: np.ndarray) -> list[tuple[int, int]]:
    """The (first, last) indexes of every run of True."""
    edges = np.diff(np.concatenate(([0], matched.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def common_substring_bounds(
    item_kgrams: np.ndarray,
    row_hashes: np.ndarray,
    row_positions: np.ndarray,
    lengths: tuple[int, int],
    k: int,
    diagonals: Iterable[int],
) -> SubstringBounds:
    """Bounds on the longest common substring that holds a fingerprint, over the given diagonals.

    Args:
        item_kgrams: the hash of every k-gram of the item, by position.
        row_hashes: the row's winnowing fingerprints.
        row_positions: their positions in the row.
        lengths: the item's and the row's lengths (normalised, without spaces).
        k: the k-gram size.
        diagonals: the item position minus the row position of each fingerprint hash the two share.

    Returns:
        The largest lower and upper bounds over every run of matched fingerprints (0, 0 when none matched).
    """
    item_chars, row_chars = lengths
    positions = row_positions.astype(np.int64)
    lower = upper = 0
    for diagonal in diagonals:
        at = positions + diagonal
        inside = (at >= 0) & (at < len(item_kgrams))
        matched = np.zeros(len(positions), dtype=bool)
        matched[inside] = item_kgrams[at[inside]] == row_hashes[inside]
        for first, last in _runs(matched):
            start = max(int(positions[first - 1]) + 1 if first > 0 else 0, -diagonal)
            end = int(positions[last + 1]) + k - 1 if last + 1 < len(positions) else row_chars
            end = min(end, item_chars - diagonal)
            lower = max(lower, int(positions[last] - positions[first]) + k)
            upper = max(upper, end - start)
    return SubstringBounds(lower, upper)
