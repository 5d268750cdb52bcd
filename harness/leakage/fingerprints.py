"""Fingerprints of training rows: what a checkpoint's lineage keeps so that it can be audited without its data.

For each row: its provenance, the SHA-256 of its normalised text, its word and character counts, the hashes of
its distinct word 13-grams and 8-grams, its winnowing fingerprints (hash and position) and its MinHash signature;
its raw text only when asked. Arrays are held column-wise (one flat array and row offsets per sketch), as they are
stored and indexed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from datasketch import MinHash

from ftbench.harness.leakage.normalise import normalise_text, spaceless, text_words
from ftbench.harness.leakage.sketches import (
    SketchSettings,
    kgram_hashes,
    minhash_signature,
    minhash_template,
    signature_dtype,
    winnow,
    word_ngram_hashes,
)
from ftbench.harness.leakage.training_rows import RowOrigin, TrainingRow


class Ragged(NamedTuple):
    """Variable-length rows in one flat array: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray], dtype: type[np.generic]) -> Ragged:
        """The rows packed into one array of ``dtype``."""
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(row) for row in rows])
        values = np.concatenate(rows).astype(dtype) if rows else np.zeros(0, dtype=dtype)
        return cls(values, offsets)

    def row(self, index: int) -> np.ndarray:
        """Row ``index``."""
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    def owners(self) -> np.ndarray:
        """The row of every value."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))


class TextSketch(NamedTuple):
    """Everything the audit compares about one text; ``kgrams`` holds the hash of every character k-gram."""

    normalised: str
    digest: str
    words: int
    chars: int
    long_ngrams: np.ndarray
    short_ngrams: np.ndarray
    kgrams: np.ndarray
    minhash: np.ndarray


def sketch_text(text: str, settings: SketchSettings, template: MinHash) -> TextSketch:
    """The sketches of ``text`` under ``settings`` (``template``: ``minhash_template(settings)``)."""
    normalised = normalise_text(text)
    words = text_words(normalised)
    letters = spaceless(normalised)
    return TextSketch(
        normalised=normalised,
        digest=hashlib.sha256(normalised.encode()).hexdigest(),
        words=len(words),
        chars=len(letters),
        long_ngrams=word_ngram_hashes(words, settings.long_ngram),
        short_ngrams=word_ngram_hashes(words, settings.short_ngram),
        kgrams=kgram_hashes(letters, settings.char_kgram),
        minhash=minhash_signature(words, settings, template),
    )


@dataclass(frozen=True)
class Fingerprints:
    """The fingerprints of a training set, one entry per training text (row ``i`` of every field)."""

    settings: SketchSettings
    origins: list[RowOrigin]
    digests: list[str]
    """SHA-256 (hex) of each row's normalised text."""
    words: np.ndarray
    """Words in each row's normalised text."""
    chars: np.ndarray
    """Characters in each row's normalised text without spaces (what the substring check reads)."""
    long_ngrams: Ragged
    short_ngrams: Ragged
    winnow_hashes: Ragged
    winnow_positions: np.ndarray
    """The character position of each winnowing fingerprint (aligned with ``winnow_hashes.values``)."""
    minhashes: np.ndarray
    """One MinHash signature per row (rows x permutations, ``minhash_bits`` wide)."""
    texts: list[str] | None = None
    """The raw texts, when kept."""

    def __len__(self) -> int:
        return len(self.origins)


def fingerprint_rows(
    rows: Iterable[TrainingRow], settings: SketchSettings | None = None, keep_text: bool = False
) -> Fingerprints:
    """The fingerprints of training rows.

    Args:
        rows: the training texts with their provenance (``read_training_rows``, ``rows_from_records``).
        settings: how to sketch; the defaults follow GPT-3 (13-grams), GPT-4 (50 characters) and datasketch.
        keep_text: keep each row's raw text in the fingerprints (and their file).

    Returns:
        The fingerprints, row ``i`` for the ``i``-th training text.
    """
    settings = settings or SketchSettings()
    template = minhash_template(settings)
    rows = list(rows)
    sketches = [sketch_text(row.text, settings, template) for row in rows]
    winnowed = [winnow(sketch.kgrams, settings.window) for sketch in sketches]
    width = settings.num_perm
    return Fingerprints(
        settings=settings,
        origins=[row.origin for row in rows],
        digests=[sketch.digest for sketch in sketches],
        words=np.array([sketch.words for sketch in sketches], dtype=np.uint32),
        chars=np.array([sketch.chars for sketch in sketches], dtype=np.uint32),
        long_ngrams=Ragged.from_rows([sketch.long_ngrams for sketch in sketches], np.uint64),
        short_ngrams=Ragged.from_rows([sketch.short_ngrams for sketch in sketches], np.uint64),
        winnow_hashes=Ragged.from_rows([chosen.hashes for chosen in winnowed], np.uint64),
        winnow_positions=Ragged.from_rows([chosen.positions for chosen in winnowed], np.uint32).values,
        minhashes=np.array([sketch.minhash for sketch in sketches], dtype=signature_dtype(settings)).reshape(
            len(rows), width
        ),
        texts=[row.text for row in rows] if keep_text else None,
    )
