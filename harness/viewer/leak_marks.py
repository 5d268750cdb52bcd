"""The viewer's leakage marks: on an evaluation's page, which items the checkpoint's lineage trained on.

The audit is computed on the fly from the lineage's fingerprints (the checkpoint's stages keep them beside their
weights), as ``ftbench leak`` and the report compute it, and remembered while the record and the lineage's
fingerprints files are unchanged: a page needs no file written beside the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.leakage.findings import LeakageAudit
from ftbench.harness.leakage.lineage import checkpoint_lineage
from ftbench.harness.leakage.task_audit import audit_records
from ftbench.harness.viewer.html_parts import esc
from ftbench.tasks.registry import recorded_task


class LeakMarks(NamedTuple):
    """A mark per flagged item (HTML, escaped) and one line saying what was checked (HTML, escaped)."""

    badges: dict[int, str]
    summary: str

    def badge(self, doc_id: int) -> str:
        """The item's mark, or nothing."""
        return self.badges.get(doc_id, "")


def _stamps(checkpoint: str) -> tuple[tuple[str, int], ...]:
    """The lineage's fingerprints files with their modification times (what a remembered audit depends on)."""
    try:
        stages = checkpoint_lineage(Path(checkpoint)).stages
    except FtbenchError:
        return ()
    files = [stage.fingerprints for stage in stages if stage.fingerprints is not None]
    return tuple((str(file), file.stat().st_mtime_ns if file.exists() else 0) for file in files)


_REMEMBERED: dict[tuple[str, str | None, tuple[tuple[str, int], ...]], LeakageAudit | str] = {}
_REMEMBER = 64


def _audit(record: EvalRecord) -> LeakageAudit | str:
    """The audit of one record's items (or why there is none), remembered by the record's key and content and
    the lineage's fingerprints files."""
    key = (record.key, record.digest, _stamps(record.variant.checkpoint))
    if key not in _REMEMBERED:
        if len(_REMEMBERED) >= _REMEMBER:
            _REMEMBERED.pop(next(iter(_REMEMBERED)))
        try:
            _REMEMBERED[key] = audit_records([record], recorded_task)
        except FtbenchError as exc:
            _REMEMBERED[key] = str(exc)
    return _REMEMBERED[key]


def leak_marks(record: EvalRecord) -> LeakMarks:
    """The marks of one evaluation's items, from its checkpoint's lineage."""
    audit = _audit(record)
    if isinstance(audit, str):
        return LeakMarks({}, f"<p class='muted'>Leakage: not checked ({esc(audit)})</p>")
    if not audit.sources:
        return LeakMarks({}, "<p class='muted'>Leakage: no training fingerprints in this checkpoint's lineage</p>")
    task = audit.task(record.task)
    flagged = task.flagged if task is not None else []
    badges = {
        item.doc_id: f" <span class='worse' title='{esc(item.matches[0].row)}'>⚠ in training data "
        f"({esc('/'.join(item.kinds))})</span>"
        for item in flagged
    }
    rows = sum(source.rows for source in audit.sources)
    summary = (
        f"<p>Leakage: {len(flagged)} of {len(record.samples)} items are in the training data of this checkpoint's "
        f"lineage ({rows} training texts, {len(audit.sources)} stages){'; ⚠ marks them' if flagged else ''}</p>"
    )
    return LeakMarks(badges, summary)
