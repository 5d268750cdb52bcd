"""What an audit of evaluated tasks found: per task, the items checked and every flagged item with the training rows
that match it, the kind of evidence, and which training source (a stage of a lineage, a training file) holds them.
A pydantic model with a ``schema_version``, ready for JSON (``ftbench leak --format json``, ``--out``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.leakage.audit_models import AuditThresholds, Evidence, EvidenceKind

FINDINGS_VERSION = 1


class _Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuditedSource(_Finding):
    """Training data the items were compared with: one stage's fingerprints, or a training file."""

    key: str
    """The stage's checkpoint path, or the training file's path."""
    label: str
    """``sft (checkpoints/sft)`` or ``training file train.jsonl``."""
    rows: int
    """Training texts compared (a preference pair counts twice: prompt + chosen, prompt + rejected)."""


class FlaggedMatch(_Finding):
    """One training row that matches a flagged item."""

    source: str
    """The ``AuditedSource.key`` holding the row."""
    row: str
    """Where the row came from: ``train.jsonl:17 [prompt, completion]`` or ``arc_easy validation split#3 [...]``."""
    evidence: list[Evidence]


class FlaggedItem(_Finding):
    """An evaluation item found in training data."""

    doc_id: int
    """The item's position among the task's items (the ``doc_id`` of its stored samples)."""
    item_id: str | None = None
    """The item's own id, where it has one."""
    kinds: list[EvidenceKind]
    sources: list[str]
    """Every ``AuditedSource.key`` with a matching row."""
    matched_rows: int
    matches: list[FlaggedMatch]
    """The strongest matches (at most the thresholds' ``max_matches``)."""


class TaskFindings(_Finding):
    """One evaluated task: how many items were checked and which were flagged."""

    task: str
    items: int
    checked: list[int] = Field(default_factory=list)
    """The doc ids of the items checked."""
    without_text: int = 0
    """Items with no words to compare (the audit cannot see them)."""
    flagged: list[FlaggedItem] = Field(default_factory=list)


class LeakageAudit(_Finding):
    """Every evaluated task's items against every training source."""

    schema_version: int = FINDINGS_VERSION
    thresholds: AuditThresholds
    sources: list[AuditedSource]
    lineages: dict[str, list[str]] = Field(default_factory=dict)
    """Each audited checkpoint and the sources of its lineage (itself and its ancestors), by key."""
    tasks: list[TaskFindings]
    notes: list[str] = Field(default_factory=list)
    """What could not be checked: stages trained before fingerprints were kept, parents not found."""

    @property
    def flagged(self) -> int:
        """Flagged items over all tasks."""
        return sum(len(task.flagged) for task in self.tasks)

    def task(self, name: str) -> TaskFindings | None:
        """The findings of one task."""
        return next((task for task in self.tasks if task.task == name), None)

    def flagged_ids(self, task: str, checkpoint: str | None = None) -> set[int]:
        """The flagged items of ``task``; with ``checkpoint``, only those whose training rows its lineage holds
        (training files given beside the lineage count for every checkpoint)."""
        found = self.task(task)
        if found is None:
            return set()
        every = {source.key for source in self.sources}
        if checkpoint is None:
            wanted = every
        else:
            files = every - {key for keys in self.lineages.values() for key in keys}
            wanted = files | set(self.lineages.get(checkpoint, []))
        return {item.doc_id for item in found.flagged if wanted & set(item.sources)}
