"""The sketches of one text that the audit compares: hashed word n-grams, winnowed character k-grams and a MinHash.

Every hash is a deterministic function of the normalised text (never Python's salted ``hash``), so fingerprints
written on one machine are read on another.

- **Word n-grams.** Each distinct n-gram of words (13 by GPT-3's convention; 8 for short items), its words joined
  by one space, hashed to 64 bits with BLAKE2b.
- **Winnowing** (Schleimer, Wilkerson & Aiken 2003). On the normalised text without spaces, every character
  k-gram is hashed to 64 bits; in each window of ``w`` consecutive k-gram hashes the smallest is selected (the
  rightmost on a tie), and the selected hashes with their positions are the fingerprints. A common substring of
  ``t = w + k - 1`` characters or more holds ``w`` whole k-grams, so a full window, whose selection is the same
  in both texts: it always shares a fingerprint. With ``k`` = 40 and ``t`` = 50 (GPT-4's substring length),
  ``w`` = 11 and about 2 / 12 of the positions are kept. ``w <= k`` is required, so that consecutive
  fingerprints' k-grams overlap and a run of them proves a common substring (see ``substring``).
- **MinHash** (datasketch's ``MinHash``, its ``affine32`` scheme, 256 permutations) over the set of word
  shingles (2 words by default), for Jaccard similarity and its LSH index; the low 8 bits of each value are kept
  (b-bit minwise hashing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from datasketch import MinHash
from pydantic import Field, model_validator

from ftbench.harness.leakage.checked import CheckedModel
from ftbench.harness.leakage.normalise import NORMALISER


class SketchSettings(CheckedModel):
    """How texts are sketched; fingerprints carry theirs and every item is sketched the same way."""

    normaliser: Literal["nfkc-casefold-drop-punctuation-v1"] = NORMALISER
    long_ngram: int = Field(default=13, ge=2, le=50)
    """GPT-3's contamination n-gram (and lm-eval's decontamination default)."""
    short_ngram: int = Field(default=8, ge=1, le=50)
    """The n-gram for short items (GPT-3 went down to 8 for datasets of short items)."""
    substring_chars: int = Field(default=50, ge=8, le=1000)
    """The guarantee ``t``: every common substring this long (spaces removed) shares a fingerprint."""
    char_kgram: int = Field(default=40, ge=4, le=1000)
    """The character k-gram ``k`` that winnowing hashes; the window is ``t - k + 1``."""
    num_perm: int = Field(default=256, ge=16, le=1024)
    minhash_shingle: int = Field(default=2, ge=1, le=5)
    """Words per MinHash shingle."""
    minhash_seed: int = Field(default=1, ge=0)
    minhash_scheme: Literal["affine32"] = "affine32"
    minhash_bits: Literal[8, 16, 32] = 8
    """Bits kept of each MinHash value (b-bit minwise hashing, Li & König 2010). Two different values agree by
    chance with probability 2^-b, which ``jaccard_estimates`` corrects; 256 permutations of 8 bits take half the
    bytes of 128 of 32 and estimate with a smaller error (standard deviation 0.031 against 0.044 at J = 0.5)."""

    @model_validator(mode="after")
    def _sizes_fit(self) -> SketchSettings:
        if self.short_ngram > self.long_ngram:
            raise ValueError(f"short_ngram {self.short_ngram} exceeds long_ngram {self.long_ngram}; lower it")
        if not self.substring_chars + 1 <= 2 * self.char_kgram <= 2 * self.substring_chars - 2:
            raise ValueError(
                f"char_kgram {self.char_kgram} must lie between half of substring_chars + 1 and substring_chars - 1 "
                "(the window must not exceed the k-gram); change it"
            )
        return self

    @property
    def window(self) -> int:
        """Winnowing's window ``w = t - k + 1``, in k-grams."""
        return self.substring_chars - self.char_kgram + 1


class Winnowed(NamedTuple):
    """A text's winnowing fingerprints: the selected k-gram hashes and their character positions."""

    hashes: np.ndarray
    positions: np.ndarray


_KGRAM_MULTIPLIERS = np.frombuffer(hashlib.shake_256(b"ftbench-leakage-kgram").digest(8 * 1000), dtype="<u8") | 1
"""Fixed odd 64-bit multipliers: the hash of a k-gram is ``fmix64(sum(code[i + j] * M[j]))`` mod 2^64."""


def word_ngram_hashes(words: Sequence[str], n: int) -> np.ndarray:
    """The distinct 64-bit hashes of the word n-grams of ``words`` (sorted; empty when fewer than ``n`` words)."""
    found = {
        int.from_bytes(hashlib.blake2b(" ".join(words[i : i + n]).encode(), digest_size=8).digest(), "little")
        for i in range(len(words) - n + 1)
    }
    return np.array(sorted(found), dtype=np.uint64)


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, a bijection that spreads every input bit over the output."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> np.uint64(33))


def kgram_hashes(text: str, k: int) -> np.ndarray:
    """The 64-bit hash of every character k-gram of ``text``, by position (empty when shorter than ``k``)."""
    if len(text) < k:
        return np.zeros(0, dtype=np.uint64)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(codes, k)
    return _fmix64(windows @ _KGRAM_MULTIPLIERS[:k])


def winnow(hashes: np.ndarray, window: int) -> Winnowed:
    """Winnowing's selection: in every window of ``window`` consecutive hashes the smallest, the rightmost on a
    tie; a text with fewer hashes than a window keeps its smallest one.

    Args:
        hashes: the k-gram hashes of one text, by position.
        window: the window ``w``.

    Returns:
        The selected hashes with their positions, by position.
    """
    if len(hashes) == 0:
        return Winnowed(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint32))
    if len(hashes) < window:
        chosen = np.array([len(hashes) - 1 - int(np.argmin(hashes[::-1]))])
    else:
        reversed_windows = np.lib.stride_tricks.sliding_window_view(hashes, window)[:, ::-1]
        chosen = np.unique(np.arange(len(reversed_windows)) + window - 1 - np.argmin(reversed_windows, axis=1))
    return Winnowed(hashes[chosen], chosen.astype(np.uint32))


def minhash_template(settings: SketchSettings) -> MinHash:
    """An empty MinHash with the settings' permutations, to copy for each text."""
    return MinHash(num_perm=settings.num_perm, seed=settings.minhash_seed, scheme=settings.minhash_scheme)


def minhash_signature(words: Sequence[str], settings: SketchSettings, template: MinHash) -> np.ndarray:
    """The MinHash signature (one value per permutation, ``minhash_bits`` wide) of the set of word shingles of
    ``words``. A text shorter than a shingle is one shingle of all its words; an empty text keeps the empty
    signature."""
    size = settings.minhash_shingle
    shingles = {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))} if words else set()
    sketch = template.copy()
    sketch.update_batch([shingle.encode() for shingle in shingles])
    return np.asarray(sketch.hashvalues, dtype=np.uint32).astype(signature_dtype(settings))


def signature_dtype(settings: SketchSettings) -> type[np.unsignedinteger]:
    """The dtype of a stored MinHash value: the low ``minhash_bits`` of datasketch's 32-bit value."""
    dtypes: dict[int, type[np.unsignedinteger]] = {8: np.uint8, 16: np.uint16, 32: np.uint32}
    return dtypes[settings.minhash_bits]


def jaccard_estimates(signatures: np.ndarray, signature: np.ndarray, bits: int) -> np.ndarray:
    """The Jaccard similarity of one text's set with each of several others', from b-bit MinHash signatures.

    Args:
        signatures: the others' signatures, one per row.
        signature: the one text's signature.
        bits: the bits kept of each value.

    Returns:
        The share of equal values, corrected for chance agreement of different values (2^-b), within [0, 1].
    """
    chance = 2.0**-bits
    agree = (signatures == signature).mean(axis=1)
    return np.clip((agree - chance) / (1 - chance), 0.0, 1.0)
