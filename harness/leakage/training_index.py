"""Inverted indexes over a training set's fingerprints, built once per audit: normalised-text digest → rows,
n-gram hash → rows, winnowing hash → fingerprints, and MinHash LSH.

Every index but LSH is exact: a lookup returns every training row that holds the hash. LSH returns candidates
whose Jaccard estimate is then computed from the stored signatures; its bands are chosen so that a row at the
threshold is a candidate with probability at least ``LSH_RECALL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from ftbench.harness.leakage.fingerprints import Fingerprints, Ragged

LSH_RECALL = 0.99
"""The least probability that LSH proposes a row whose Jaccard similarity equals the threshold."""


class Postings(NamedTuple):
    """Hash lookups: every stored hash, sorted, with the entry it stands for."""

    keys: np.ndarray
    entries: np.ndarray

    @classmethod
    def of(cls, hashes: np.ndarray, entries: np.ndarray) -> Postings:
        """Postings of ``hashes[i]`` → ``entries[i]``."""
        order = np.argsort(hashes, kind="stable")
        return cls(hashes[order], entries[order])

    def lookup(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (query index, entry) pair whose hashes are equal."""
        left = np.searchsorted(self.keys, queries, side="left")
        right = np.searchsorted(self.keys, queries, side="right")
        counts = right - left
        query_index = np.repeat(np.arange(len(queries)), counts)
        starts = np.repeat(left - np.cumsum(counts) + counts, counts)
        return query_index, self.entries[starts + np.arange(counts.sum())]


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH's (bands, rows per band): the most rows per band (fewest candidates) for which a row at ``threshold``
    is a candidate with probability at least ``LSH_RECALL``."""
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= LSH_RECALL:
            return bands, rows
    return num_perm, 1


@dataclass(frozen=True)
class TrainingIndex:
    """The indexes of one training set, for auditing many items against it."""

    fingerprints: Fingerprints
    by_digest: dict[str, list[int]]
    long_ngrams: Postings
    """Long n-gram hash → row."""
    short_ngrams: Postings
    """Short n-gram hash → row."""
    winnow: Postings
    """Winnowing hash → its index in ``fingerprints.winnow_hashes.values``."""
    winnow_owners: np.ndarray
    """The row of each winnowing fingerprint."""
    lsh: MinHashLSH

    @classmethod
    def build(cls, fingerprints: Fingerprints, jaccard: float) -> TrainingIndex:
        """The indexes of ``fingerprints``, LSH tuned for ``jaccard``."""
        by_digest: dict[str, list[int]] = {}
        for row, (digest, words) in enumerate(zip(fingerprints.digests, fingerprints.words, strict=True)):
            if words:
                by_digest.setdefault(digest, []).append(row)
        settings, winnow = fingerprints.settings, fingerprints.winnow_hashes
        lsh = MinHashLSH(num_perm=settings.num_perm, params=lsh_bands(jaccard, settings.num_perm))
        with lsh.insertion_session() as session:
            for row, signature in enumerate(fingerprints.minhashes):
                if fingerprints.words[row]:
                    lean = LeanMinHash(seed=settings.minhash_seed, hashvalues=signature, scheme=settings.minhash_scheme)
                    session.insert(row, lean, check_duplication=False)
        return cls(
            fingerprints=fingerprints,
            by_digest=by_digest,
            long_ngrams=Postings.of(fingerprints.long_ngrams.values, fingerprints.long_ngrams.owners()),
            short_ngrams=Postings.of(fingerprints.short_ngrams.values, fingerprints.short_ngrams.owners()),
            winnow=Postings.of(winnow.values, np.arange(len(winnow.values))),
            winnow_owners=winnow.owners(),
            lsh=lsh,
        )

    def ngram_rows(self, hashes: np.ndarray, long: bool) -> dict[int, int]:
        """For each training row holding any of ``hashes`` (one item's distinct n-grams), how many it holds."""
        _, owners = (self.long_ngrams if long else self.short_ngrams).lookup(hashes)
        rows, counts = np.unique(owners, return_counts=True)
        return dict(zip(rows.tolist(), counts.tolist(), strict=True))

    def row_winnowing(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """A row's winnowing fingerprints: hashes and character positions."""
        ragged: Ragged = self.fingerprints.winnow_hashes
        start, end = ragged.offsets[row], ragged.offsets[row + 1]
        return ragged.values[start:end], self.fingerprints.winnow_positions[start:end]
