"""The audit of evaluated tasks: every item of each task against every row of every training source, a stage's
fingerprints or a training file.

An item is compared as plain text (``Task.audit_text``: its content, not the prompt's wording), less the lines that
most of its task's items share (a custom task's template instructions): words every item holds would otherwise
match every training row written the same way.

Each stage of a lineage is audited on its own, so a flagged item names the stages whose rows hold it, and a
checkpoint's flagged items are those its own lineage holds (``LeakageAudit.flagged_ids``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.records import EvalRecord
from ftbench.harness.leakage.audit_models import KINDS, AuditThresholds, ItemAudit, match_strength
from ftbench.harness.leakage.findings import AuditedSource, FlaggedItem, FlaggedMatch, LeakageAudit, TaskFindings
from ftbench.harness.leakage.fingerprint_store import load_fingerprints
from ftbench.harness.leakage.fingerprints import Fingerprints, fingerprint_rows
from ftbench.harness.leakage.lineage import FINGERPRINTS_FILE, checkpoint_lineage
from ftbench.harness.leakage.matching import audit_items
from ftbench.harness.leakage.normalise import normalise_text
from ftbench.harness.leakage.training_rows import read_training_rows
from ftbench.tasks.base import Task, TaskOf, TaskOptions


class AuditTarget(NamedTuple):
    """One evaluated task: its options and which of its items were evaluated."""

    task: Task
    options: TaskOptions
    doc_ids: tuple[int, ...] | None = None
    """The evaluated items' positions; None: the first ``limit`` items (every item when ``limit`` is None too)."""
    limit: int | None = None


class AuditItem(NamedTuple):
    """One item as the audit compares it."""

    doc_id: int
    item_id: str | None
    text: str


WORDING_SHARE = 0.5
"""A line that more than this share of a task's items hold is the task's wording (a prompt template's
instructions), not an item's content, and is left out of every item's text."""


def task_wording(texts: Sequence[str]) -> frozenset[str]:
    """The lines that more than ``WORDING_SHARE`` of a task's item texts hold (none for fewer than 4 items)."""
    if len(texts) < 4:
        return frozenset()
    counts = Counter(line for text in texts for line in {line.strip() for line in text.splitlines()} if line)
    return frozenset(line for line, count in counts.items() if count > WORDING_SHARE * len(texts))


def _texts(target: AuditTarget) -> list[AuditItem]:
    """Every item of the task as the audit compares it: its plain text less the task's wording."""
    items = target.task.items(target.options)
    texts = [target.task.audit_text(dict(item)) for item in items]
    wording = task_wording(texts)
    kept = ["\n".join(line for line in text.splitlines() if line.strip() not in wording) for text in texts]
    ids = [item.get("id") for item in items]
    return [AuditItem(i, None if ids[i] is None else str(ids[i]), text) for i, text in enumerate(kept)]


def target_items(target: AuditTarget) -> list[AuditItem]:
    """The evaluated items of ``target`` as plain text (positions beyond the task's items are skipped)."""
    items = _texts(target)
    chosen = target.doc_ids if target.doc_ids is not None else range(min(len(items), target.limit or len(items)))
    return [items[doc_id] for doc_id in chosen if 0 <= doc_id < len(items)]


def unused_items(target: AuditTarget, count: int) -> list[AuditItem]:
    """Up to ``count`` items of the task that were not evaluated (after the evaluated ones, in order): a control
    set the evaluation never touched."""
    items = _texts(target)
    used = set(target.doc_ids) if target.doc_ids is not None else set(range(target.limit or len(items)))
    return [item for item in items if item.doc_id not in used][:count]


class TrainingSource(NamedTuple):
    """Training data to compare items with: its key, label and fingerprints."""

    key: str
    label: str
    fingerprints: Fingerprints


def file_source(path: Path, fields: Sequence[str] | None = None) -> TrainingSource:
    """A training file (JSON lines in TRL's formats, or the ``fields`` named) as a source.

    Raises:
        FtbenchError: the file cannot be read, or a row lacks the fields (naming the line).
    """
    rows = read_training_rows(path, fields)
    return TrainingSource(str(path), f"training file {path}", fingerprint_rows(rows))


def results_sources(directories: Sequence[Path]) -> list[TrainingSource]:
    """The training rows a training run's results directory keeps (what ``FtbenchCallback`` saw in its trainer's
    dataset, or ``ftbench watch --train-data``): one source per directory that holds them.

    Raises:
        FtbenchError: a fingerprints file that cannot be read.
    """
    found = []
    for directory in directories:
        path = directory / FINGERPRINTS_FILE
        if path.is_file():
            label = f"the training run's rows ({path})"
            found.append(TrainingSource(str(path.resolve()), label, load_fingerprints(path)))
    return found


class LineageSources(NamedTuple):
    """The sources of several checkpoints' lineages, each checkpoint's source keys, and what was not checked."""

    sources: list[TrainingSource]
    lineages: dict[str, list[str]]
    notes: list[str]


def lineage_sources(checkpoints: Sequence[str]) -> LineageSources:
    """Every stage with fingerprints in the lineages of ``checkpoints`` (each stage once); a checkpoint that is not
    here (results copied from elsewhere) is a note.

    Raises:
        FtbenchError: a manifest is not valid, or a fingerprints file is unreadable.
    """
    sources: dict[str, TrainingSource] = {}
    lineages: dict[str, list[str]] = {}
    notes: list[str] = []
    for checkpoint in checkpoints:
        lineages[checkpoint] = []
        if not Path(checkpoint).exists():
            notes.append(f"checkpoint {checkpoint} is not here; its lineage is not checked")
            continue
        lineage = checkpoint_lineage(Path(checkpoint))
        for stage in lineage.stages:
            key = str(stage.path.resolve())  # one stage reached by two paths (checkpoints/final) is audited once
            if stage.fingerprints is not None:
                if key not in sources:
                    sources[key] = TrainingSource(key, stage.label, load_fingerprints(stage.fingerprints))
                lineages[checkpoint].append(key)
            elif stage.trained:
                notes.append(f"{stage.label} was trained before ftbench kept fingerprints; its data is not checked")
        notes += [f"parent {parent} not found; its lineage is not checked" for parent in lineage.missing]
    return LineageSources(list(sources.values()), lineages, list(dict.fromkeys(notes)))


def _flagged_item(item: AuditItem, found: list[tuple[str, ItemAudit]], most: int) -> FlaggedItem:
    matches = [
        FlaggedMatch(source=key, row=match.origin.describe(), evidence=match.evidence)
        for key, audit in found
        for match in audit.matches
    ]
    matches.sort(key=lambda match: match_strength(match.evidence), reverse=True)
    kinds = {kind for _, audit in found for kind in audit.kinds}
    return FlaggedItem(
        doc_id=item.doc_id,
        item_id=item.item_id,
        kinds=[kind for kind in KINDS if kind in kinds],
        sources=[key for key, _ in found],
        matched_rows=sum(audit.matched_rows for _, audit in found),
        matches=matches[:most],
    )


def _task_findings(target: AuditTarget, sources: Sequence[TrainingSource], thresholds: AuditThresholds) -> TaskFindings:
    items = target_items(target)
    found: dict[int, list[tuple[str, ItemAudit]]] = defaultdict(list)
    for source in sources:
        result = audit_items([(item.doc_id, item.text) for item in items], source.fingerprints, thresholds)
        for audit in result.flagged():
            found[int(audit.doc_id)].append((source.key, audit))
    return TaskFindings(
        task=target.task.name,
        items=len(items),
        checked=[item.doc_id for item in items],
        without_text=sum(1 for item in items if not normalise_text(item.text)),
        flagged=[
            _flagged_item(item, found[item.doc_id], thresholds.max_matches) for item in items if item.doc_id in found
        ],
    )


def audit_targets(
    targets: Sequence[AuditTarget],
    sources: Sequence[TrainingSource],
    thresholds: AuditThresholds | None = None,
    lineages: dict[str, list[str]] | None = None,
    notes: Sequence[str] = (),
) -> LeakageAudit:
    """Every item of every target against every row of every source (with no source, no task's items are read).

    Args:
        targets: the evaluated tasks.
        sources: the training data (``lineage_sources``, ``file_source``).
        thresholds: when an item counts as leaked; None takes the defaults.
        lineages: each audited checkpoint's source keys (``lineage_sources``).
        notes: what could not be checked.

    Raises:
        FtbenchError: a task's items cannot be read, or the thresholds do not fit the fingerprints.
    """
    thresholds = thresholds or AuditThresholds()
    return LeakageAudit(
        thresholds=thresholds,
        sources=[AuditedSource(key=s.key, label=s.label, rows=len(s.fingerprints)) for s in sources],
        lineages=lineages or {},
        tasks=[_task_findings(target, sources, thresholds) for target in targets] if sources else [],
        notes=list(notes),
    )


def record_targets(records: Sequence[EvalRecord], task_of: TaskOf) -> list[AuditTarget]:
    """The evaluated tasks of stored records: each task once, with its recorded options and every item any of its
    records evaluated."""
    tasks: dict[str, tuple[Task, TaskOptions]] = {}
    doc_ids: dict[str, set[int]] = defaultdict(set)
    for record in records:
        if record.task not in tasks:
            task = task_of(record.request)
            tasks[record.task] = (task, task.parse_options(dict(record.request.options)))
        doc_ids[record.task].update(sample.doc_id for sample in record.samples)
    return [AuditTarget(task, options, tuple(sorted(doc_ids[name]))) for name, (task, options) in tasks.items()]


def audit_records(
    records: Sequence[EvalRecord],
    task_of: TaskOf,
    thresholds: AuditThresholds | None = None,
    extra: Sequence[TrainingSource] = (),
) -> LeakageAudit:
    """The evaluated items of stored records against the lineages of their checkpoints (and ``extra`` sources).

    Raises:
        FtbenchError: a checkpoint or manifest along a lineage is not valid, or a fingerprints file is unreadable.
    """
    found = lineage_sources(list(dict.fromkeys(record.variant.checkpoint for record in records)))
    sources = [*found.sources, *extra]
    return audit_targets(record_targets(records, task_of), sources, thresholds, found.lineages, found.notes)
