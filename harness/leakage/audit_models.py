"""What the audit is asked (its thresholds) and what it answers: per item, the training rows that match it and the
evidence of each match, and a summary. Every answer is a pydantic model, ready for JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.leakage.checked import CheckedModel
from ftbench.harness.leakage.training_rows import RowOrigin

EvidenceKind = Literal["exact", "ngram", "substring", "near_duplicate"]
KINDS: tuple[EvidenceKind, ...] = ("exact", "ngram", "substring", "near_duplicate")


class AuditThresholds(CheckedModel):
    """When an item counts as leaked. A value outside its range raises ``FtbenchError``.

    The defaults were tuned on ARC-Easy with leaks planted among clean rows (``tests/test_leakage.py``,
    ``benchmarks/leakage.py``): every exact and restyled copy and 93-96% of copies with one word in ten replaced
    were found, and no item of a 500-item control set was flagged. Short items are the hard case: a 10-word item
    sharing an 8-word stock phrase with a training row can pass the Jaccard threshold (one ARC-Easy test item
    does against ARC-Easy validation), and copies of items under about 8 words with a word replaced are missed.
    """

    short_item_words: int = Field(default=20, ge=1, le=10_000)
    """Items with fewer words are checked with the short n-gram (8), others with the long one (13)."""
    ngram_min_shared: int = Field(default=1, ge=1, le=10_000)
    """Shared n-grams a training row must hold (GPT-3 and lm-eval: any one)."""
    long_min_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """...and their share of a long item's distinct n-grams: 0 is GPT-3's and lm-eval's rule (any shared 13-gram)."""
    short_min_share: float = Field(default=0.7, ge=0.0, le=1.0)
    """...and of a short item's: stock phrases of 8 words ("which of these is an example of a") are common."""
    substring_chars: int = Field(default=50, ge=8, le=10_000)
    """A common substring this long (normalised, spaces removed; GPT-4's 50); never below the length the
    fingerprints guarantee."""
    substring_rule: Literal["proven", "possible"] = "proven"
    """``proven``: flag when the sketch proves a common substring of ``substring_chars`` (every flag is certain;
    every common substring of ``substring_chars + 2 (w - 1)`` characters is found). ``possible``: flag when it
    cannot rule one out (every common substring of ``substring_chars`` is found; a shared phrase of ``k``
    characters may be flagged)."""
    jaccard: float = Field(default=0.5, ge=0.05, le=1.0)
    """MinHash Jaccard estimate of the word-shingle sets at or above which an item is a near-duplicate."""
    max_matches: int = Field(default=5, ge=1, le=10_000)
    """Matched training rows listed per item (the strongest first); the count covers them all."""


class _Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExactEvidence(_Evidence):
    """The item's normalised text equals the row's."""

    kind: Literal["exact"] = "exact"


class NgramEvidence(_Evidence):
    """The row holds ``shared`` of the item's ``item_ngrams`` distinct word n-grams."""

    kind: Literal["ngram"] = "ngram"
    n: int
    shared: int
    item_ngrams: int
    share: float


class SubstringEvidence(_Evidence):
    """A common substring (normalised, spaces removed) of at least ``lower_bound`` and at most ``upper_bound``
    characters: the sketch proves the first and cannot rule out the second."""

    kind: Literal["substring"] = "substring"
    lower_bound: int
    upper_bound: int


class NearDuplicateEvidence(_Evidence):
    """The MinHash estimate of the Jaccard similarity of the two texts' word-shingle sets."""

    kind: Literal["near_duplicate"] = "near_duplicate"
    jaccard: float


Evidence = Annotated[
    ExactEvidence | NgramEvidence | SubstringEvidence | NearDuplicateEvidence, Field(discriminator="kind")
]


class RowMatch(BaseModel):
    """One training row that matches an item, and every kind of evidence that passed its threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: int
    """The row's index in the fingerprints."""
    origin: RowOrigin
    evidence: list[Evidence]

    def strength(self) -> tuple[bool, float]:
        """How strong the match is (``match_strength``)."""
        return match_strength(self.evidence)


def match_strength(evidence: list[Evidence]) -> tuple[bool, float]:
    """The order of matches: exact first, then by the largest n-gram share or Jaccard estimate (a proven substring
    counts as its length over 1,000 characters, at most 1)."""
    figures = [0.0]
    for found in evidence:
        if isinstance(found, NgramEvidence):
            figures.append(found.share)
        elif isinstance(found, NearDuplicateEvidence):
            figures.append(found.jaccard)
        elif isinstance(found, SubstringEvidence):
            figures.append(min(1.0, found.lower_bound / 1000))
    return (any(isinstance(found, ExactEvidence) for found in evidence), max(figures))


class ItemAudit(BaseModel):
    """One evaluation item: whether it is flagged, by which kinds of evidence, and its strongest matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    doc_id: str | int
    flagged: bool
    kinds: list[EvidenceKind] = Field(default_factory=list)
    matched_rows: int = 0
    """Training rows that match the item (``matches`` lists the strongest of them)."""
    matches: list[RowMatch] = Field(default_factory=list)


class AuditSummary(BaseModel):
    """Items checked, flagged, and flagged by each kind of evidence (an item may count under several)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int
    flagged: int
    by_kind: dict[EvidenceKind, int]
    training_rows: int
    thresholds: AuditThresholds


class AuditResult(BaseModel):
    """The audit of a set of evaluation items against a training set's fingerprints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: AuditSummary
    items: list[ItemAudit]

    def flagged(self) -> list[ItemAudit]:
        """The flagged items, in the order they were given."""
        return [item for item in self.items if item.flagged]
