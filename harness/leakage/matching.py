"""The audit: every evaluation item against every training row, by four kinds of evidence.

- ``exact``: the normalised texts are equal (SHA-256 of the normalised text).
- ``ngram``: the row holds at least ``ngram_min_shared`` of the item's distinct word n-grams, and that share of
  them: 13-grams for items of ``short_item_words`` words or more, any one shared by default (GPT-3, lm-eval);
  8-grams below, at least ``short_min_share`` of them. Items shorter than 8 words are left to the other kinds.
- ``substring``: a common substring of ``substring_chars`` characters or more (normalised, spaces removed, as
  GPT-4's 50-character check), proven by the row's winnowing fingerprints (``substring_rule="proven"``), or not
  ruled out by them (``"possible"``, which finds every one; see ``substring``). The evidence gives both bounds.
- ``near_duplicate``: the MinHash estimate of the Jaccard similarity of the word-shingle sets is at least
  ``jaccard``; candidates come from LSH.

The item's text is what the caller renders: its content (the question, and its choices or reference), best without
the task's prompt scaffolding (``Question:``, ``Answer:``). Leaks come in many formats, and template words on one
side only lower a short item's Jaccard similarity; ``exact`` applies wherever the training text holds the same
words and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from datasketch import LeanMinHash

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.leakage.audit_models import (
    KINDS,
    AuditResult,
    AuditSummary,
    AuditThresholds,
    Evidence,
    ExactEvidence,
    ItemAudit,
    NearDuplicateEvidence,
    NgramEvidence,
    RowMatch,
    SubstringEvidence,
    match_strength,
)
from ftbench.harness.leakage.fingerprints import Fingerprints, TextSketch, sketch_text
from ftbench.harness.leakage.sketches import jaccard_estimates, minhash_template
from ftbench.harness.leakage.substring import common_substring_bounds
from ftbench.harness.leakage.training_index import TrainingIndex

Found = dict[int, list[Evidence]]


def _ngram_evidence(sketch: TextSketch, index: TrainingIndex, thresholds: AuditThresholds, found: Found) -> None:
    settings = index.fingerprints.settings
    long = sketch.words >= max(thresholds.short_item_words, settings.long_ngram)
    hashes = sketch.long_ngrams if long else sketch.short_ngrams
    if len(hashes) == 0:
        return
    n = settings.long_ngram if long else settings.short_ngram
    for row, shared in index.ngram_rows(hashes, long).items():
        share = shared / len(hashes)
        least = thresholds.long_min_share if long else thresholds.short_min_share
        if shared >= thresholds.ngram_min_shared and share >= least:
            found[row].append(NgramEvidence(n=n, shared=shared, item_ngrams=len(hashes), share=round(share, 4)))


def _substring_evidence(sketch: TextSketch, index: TrainingIndex, thresholds: AuditThresholds, found: Found) -> None:
    if len(sketch.kgrams) == 0:
        return
    item_positions, entries = index.winnow.lookup(sketch.kgrams)
    if len(entries) == 0:
        return
    owners = index.winnow_owners[entries]
    diagonals = item_positions.astype(np.int64) - index.fingerprints.winnow_positions[entries].astype(np.int64)
    order = np.argsort(owners, kind="stable")
    rows, starts = np.unique(owners[order], return_index=True)
    k = index.fingerprints.settings.char_kgram
    for row, on_row in zip(rows.tolist(), np.split(diagonals[order], starts[1:]), strict=True):
        hashes, positions = index.row_winnowing(row)
        lengths = (sketch.chars, int(index.fingerprints.chars[row]))
        bounds = common_substring_bounds(sketch.kgrams, hashes, positions, lengths, k, np.unique(on_row).tolist())
        bound = bounds.lower if thresholds.substring_rule == "proven" else bounds.upper
        if bound >= thresholds.substring_chars:
            found[row].append(SubstringEvidence(lower_bound=bounds.lower, upper_bound=bounds.upper))


def _near_duplicate_evidence(
    sketch: TextSketch, index: TrainingIndex, thresholds: AuditThresholds, found: Found
) -> None:
    if sketch.words == 0:
        return
    settings = index.fingerprints.settings
    lean = LeanMinHash(seed=settings.minhash_seed, hashvalues=sketch.minhash, scheme=settings.minhash_scheme)
    candidates = np.array(sorted(index.lsh.query(lean)), dtype=np.int64)
    if len(candidates) == 0:
        return
    estimates = jaccard_estimates(index.fingerprints.minhashes[candidates], sketch.minhash, settings.minhash_bits)
    for row, jaccard in zip(candidates.tolist(), estimates.tolist(), strict=True):
        if jaccard >= thresholds.jaccard:
            found[row].append(NearDuplicateEvidence(jaccard=round(jaccard, 4)))


def _item_audit(doc_id: str | int, found: Found, index: TrainingIndex, thresholds: AuditThresholds) -> ItemAudit:
    strongest = sorted(found, key=lambda row: (match_strength(found[row]), -row), reverse=True)
    origins = index.fingerprints.origins
    matches = [
        RowMatch(row=row, origin=origins[row], evidence=found[row]) for row in strongest[: thresholds.max_matches]
    ]
    kinds = {evidence.kind for evidence_list in found.values() for evidence in evidence_list}
    return ItemAudit(
        doc_id=doc_id,
        flagged=bool(found),
        kinds=[kind for kind in KINDS if kind in kinds],
        matched_rows=len(found),
        matches=matches,
    )


def _checked_items(items: Iterable[Sequence[Any]]) -> list[tuple[str | int, str]]:
    checked = []
    for position, item in enumerate(items):
        pair = isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2
        if not pair or not isinstance(item[0], str | int) or not isinstance(item[1], str):
            raise FtbenchError(f"evaluation item {position} is {item!r:.80}; give (doc_id, text) pairs of text")
        checked.append((item[0], item[1]))
    return checked


def audit_items(
    items: Iterable[Sequence[Any]], fingerprints: Fingerprints, thresholds: AuditThresholds | None = None
) -> AuditResult:
    """Check each evaluation item against every training row of ``fingerprints``.

    Args:
        items: ``(doc_id, text)`` pairs, the text rendered by the caller (question with choices or reference).
        fingerprints: the training set's fingerprints (``fingerprint_rows`` or ``load_fingerprints``).
        thresholds: when an item counts as leaked; None takes the defaults.

    Returns:
        Every item (flagged or not) with its strongest matches and their evidence, and a summary.

    Raises:
        FtbenchError: an item is not a (doc_id, text) pair, or ``substring_chars`` is below the length the
            fingerprints guarantee.
    """
    thresholds = thresholds or AuditThresholds()
    settings = fingerprints.settings
    if thresholds.substring_chars < settings.substring_chars:
        raise FtbenchError(
            f"substring_chars {thresholds.substring_chars} is below the {settings.substring_chars} characters these "
            f"fingerprints guarantee; raise it to {settings.substring_chars} or fingerprint with a smaller length"
        )
    checked = _checked_items(items)
    index = TrainingIndex.build(fingerprints, thresholds.jaccard)
    template = minhash_template(settings)
    audits = []
    for doc_id, text in checked:
        sketch = sketch_text(text, settings, template)
        found: Found = defaultdict(list)
        if sketch.words:
            for row in index.by_digest.get(sketch.digest, []):
                found[row].append(ExactEvidence())
        _ngram_evidence(sketch, index, thresholds, found)
        _substring_evidence(sketch, index, thresholds, found)
        _near_duplicate_evidence(sketch, index, thresholds, found)
        audits.append(_item_audit(doc_id, found, index, thresholds))
    by_kind = {kind: sum(kind in audit.kinds for audit in audits) for kind in KINDS}
    summary = AuditSummary(
        items=len(audits),
        flagged=sum(audit.flagged for audit in audits),
        by_kind=by_kind,
        training_rows=len(fingerprints),
        thresholds=thresholds,
    )
    return AuditResult(summary=summary, items=audits)
