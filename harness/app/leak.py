"""``ftbench leak``: was the gain learned or leaked? Every evaluated item against every training row of a checkpoint's
lineage (its fingerprints), a results directory's checkpoints, or any training file; what a leak did to each
stage's gain; and, on request, the model-based membership check.

The functions a training loop or a gate calls are here too: ``audit_trainer`` (a trainer's ``train_dataset``
against a suite), ``audit_training_file`` (``ftbench watch --train-data``), ``audit_results`` (a gate's candidate)
and ``leak_summary`` / ``refuse_leaks`` to warn or stop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.compare.statistics import PairedComparison
from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import RUN_FILE, load_run_evals
from ftbench.harness.core.yamlfile import read_yaml_mapping
from ftbench.harness.evaluation.membership_scores import MembershipCheck, ScoreKind, membership_checks
from ftbench.harness.evaluation.spec import RunSpec, parse_spec
from ftbench.harness.leakage.audit_models import AuditThresholds
from ftbench.harness.leakage.findings import LeakageAudit
from ftbench.harness.leakage.fingerprint_store import save_fingerprints
from ftbench.harness.leakage.fingerprints import Fingerprints, fingerprint_rows
from ftbench.harness.leakage.lineage import FINGERPRINTS_FILE, checkpoint_lineage
from ftbench.harness.leakage.task_audit import (
    AuditTarget,
    TrainingSource,
    audit_records,
    audit_targets,
    file_source,
    lineage_sources,
    record_targets,
    results_sources,
)
from ftbench.harness.leakage.trainer_rows import trainer_rows
from ftbench.harness.leakage.training_rows import TrainingRow
from ftbench.reports.leak_effect import LeakSplit, ReportLeakage, leak_splits
from ftbench.reports.leak_section import TITLE, section_lines
from ftbench.reports.mdtext import inline
from ftbench.tasks.registry import recorded_task

logger = logging.getLogger("ftbench")

MEMBERSHIP_LEDE = (
    "Each trained checkpoint's log-likelihood of every evaluated item against its base's, per token (Min-K%++ of the "
    "checkpoint alone with --score min-k), compared with the same score on the task's items that were not evaluated "
    "(certainly unseen): the AUC is the chance that an evaluated item scores above an unseen one (0.5: no sign), "
    "with a one-sided Mann-Whitney p."
)


class LeakOutcome(NamedTuple):
    """What ``ftbench leak`` found: the audit, the stage comparisons split into flagged and clean items (for a
    results directory), and the membership checks (when asked)."""

    audit: LeakageAudit
    splits: list[LeakSplit]
    checkpoints: list[str]
    """The checkpoints whose lineages were audited."""
    targets: list[AuditTarget]
    membership: tuple[MembershipCheck, ...] = ()


class LeakInputs(NamedTuple):
    """What ``ftbench leak`` was asked to check."""

    target: Path | None = None
    """A checkpoint (directory or .gguf file) or a results directory."""
    train_data: tuple[Path, ...] = ()
    fields: tuple[str, ...] | None = None
    spec: Path | None = None
    """A suite or run spec naming the tasks (a checkpoint names none)."""


def suite_targets(spec: RunSpec) -> list[AuditTarget]:
    """The tasks of a run spec or suite, each with its options and item limit."""
    return [AuditTarget(task.definition, task.parsed_options, None, spec.task_limit(task)) for task in spec.tasks]


def read_suite(path: Path) -> tuple[RunSpec, list[str]]:
    """A suite or run spec, and the checkpoints it names (none for a suite).

    Raises:
        FtbenchError: the file is missing or does not validate.
    """
    data = read_yaml_mapping(path, "suite file", "give a YAML run spec or suite")
    named = [str(c) for c in data.get("checkpoints") or []] if isinstance(data.get("checkpoints"), list) else []
    return parse_spec({**data, "checkpoints": named or ["checkpoint-0"]}, str(path)), named


def _no_sources(inputs: LeakInputs, checkpoints: list[str]) -> FtbenchError:
    if inputs.target is not None and not (inputs.target / RUN_FILE).is_file():
        labels = ", ".join(stage.label for stage in checkpoint_lineage(inputs.target).stages)
        return FtbenchError(
            f"checkpoint {inputs.target} has no training fingerprints anywhere in its lineage ({labels}); give "
            "--train-data FILE (the data it was trained on) or retrain its stages with this ftbench"
        )
    if checkpoints:
        return FtbenchError(
            f"no checkpoint of {inputs.target or inputs.spec} has training fingerprints in its lineage; give "
            "--train-data FILE (the data they were trained on)"
        )
    return FtbenchError("nothing to check against: give a checkpoint, a results directory or --train-data FILE")


def _inputs_checked(inputs: LeakInputs) -> tuple[list[EvalRecord], list[str], list[AuditTarget]]:
    """The records (for a results directory), the checkpoints whose lineages are audited, and the tasks."""
    if inputs.fields and not inputs.train_data:
        raise FtbenchError("--fields names the training file's fields; give --train-data FILE with it")
    records: list[EvalRecord] = []
    checkpoints: list[str] = []
    if inputs.target is not None and (inputs.target / RUN_FILE).is_file():
        records = load_run_evals(inputs.target)
        checkpoints = list(dict.fromkeys(record.variant.checkpoint for record in records))
    elif inputs.target is not None:
        resolve_checkpoint(inputs.target)
        checkpoints = [str(inputs.target)]
    if inputs.spec is not None:
        spec, named = read_suite(inputs.spec)
        checkpoints = checkpoints or named
        return records, checkpoints, suite_targets(spec)
    if not records:
        raise FtbenchError("a checkpoint or training file names no tasks; give --spec SUITE (the tasks to check)")
    return records, checkpoints, record_targets(records, recorded_task)


def leak_audit(inputs: LeakInputs, thresholds: AuditThresholds | None = None) -> LeakOutcome:
    """The audit ``ftbench leak`` prints (without the membership check).

    Raises:
        FtbenchError: bad input (a missing target, a suite that does not validate, a training file without the
            named fields, a lineage without fingerprints and no training file, an unreadable fingerprints file),
            before anything is audited.
    """
    records, checkpoints, targets = _inputs_checked(inputs)
    found = lineage_sources(checkpoints)
    files = [file_source(path, inputs.fields) for path in inputs.train_data]
    kept = results_sources([inputs.target]) if inputs.target is not None and records else []
    sources = [*found.sources, *kept, *files]
    if not sources:
        raise _no_sources(inputs, checkpoints)
    audit = audit_targets(targets, sources, thresholds, found.lineages, found.notes)
    splits = leak_splits(records, audit, recorded_task) if records else []
    return LeakOutcome(audit, splits, checkpoints, targets)


def leak_membership(
    outcome: LeakOutcome, kind: ScoreKind, reference: Path | None = None, control: int | None = None
) -> list[MembershipCheck]:
    """The membership check of each trained checkpoint of the target against its reference (``reference``, else
    the base its lineage starts from), on the audited tasks.

    Raises:
        FtbenchError: no trained checkpoint to check, or a checkpoint that cannot be loaded.
    """
    checks = []
    for checkpoint in outcome.checkpoints:
        stages = checkpoint_lineage(Path(checkpoint)).stages
        if not stages[0].trained:
            continue
        base = reference or (stages[-1].path if len(stages) > 1 else None)
        base_checkpoint = resolve_checkpoint(base) if base is not None else None
        checks += membership_checks(outcome.targets, resolve_checkpoint(checkpoint), base_checkpoint, kind, control)
    if not checks:
        raise FtbenchError("no trained checkpoint to check for membership; give a checkpoint that ftbench trained")
    return checks


# --- what a training loop and a gate call -------------------------------------------------------------------


class RowsAudit(NamedTuple):
    """Training rows' fingerprints and their audit against a suite's items."""

    fingerprints: Fingerprints
    audit: LeakageAudit


def audit_training_rows(
    rows: Sequence[TrainingRow], suite: RunSpec, source: str, thresholds: AuditThresholds | None = None
) -> RowsAudit:
    """Training texts against the evaluated items of a suite (each task's items up to its limit)."""
    fingerprints = fingerprint_rows(rows)
    audit = audit_targets(suite_targets(suite), [TrainingSource(source, source, fingerprints)], thresholds)
    return RowsAudit(fingerprints, audit)


def audit_trainer(trainer: Any, suite: RunSpec, thresholds: AuditThresholds | None = None) -> RowsAudit:
    """What ``trainer`` trains on (``trainer.train_dataset``: its text columns, else its token ids decoded) against
    the suite's evaluated items: the check ``FtbenchCallback`` makes when it is constructed.

    Raises:
        FtbenchError: the trainer has no training dataset, or a row has no text.
    """
    return audit_training_rows(trainer_rows(trainer), suite, "train_dataset", thresholds)


def audit_training_file(
    path: Path, fields: Sequence[str] | None, suite: RunSpec, thresholds: AuditThresholds | None = None
) -> RowsAudit:
    """A training file (TRL's formats, or the ``fields`` named) against the suite's evaluated items:
    ``ftbench watch --train-data FILE --fields ...``.

    Raises:
        FtbenchError: the file cannot be read, or a row lacks the fields (naming the line).
    """
    source = file_source(path, fields)
    return RowsAudit(source.fingerprints, audit_targets(suite_targets(suite), [source], thresholds))


def audit_results(results_dirs: Sequence[Path], thresholds: AuditThresholds | None = None) -> LeakageAudit:
    """The evaluated items of stored results against their checkpoints' lineages: the gate's leakage check.

    Raises:
        FtbenchError: a results directory cannot be read, or a lineage's fingerprints file cannot be.
    """
    records = [record for directory in results_dirs for record in load_run_evals(directory)]
    return audit_records(records, recorded_task, thresholds, results_sources(results_dirs))


def check_training_rows(found: RowsAudit, mode: str) -> str | None:
    """What a training run does with the audit of its training rows before its first step: ``fail`` refuses when
    any evaluated item is in them; otherwise the summary is returned and logged as a warning (None: nothing found).

    Raises:
        FtbenchError: ``mode`` is ``fail`` and an item was found (naming the items).
    """
    if mode == "fail":
        refuse_leaks(found.audit)
    summary = leak_summary(found.audit)
    if summary is not None:
        logger.warning("ftbench: %s", summary)
    return summary


def keep_training_rows(found: RowsAudit, out: Path) -> Path:
    """Keep a training run's rows' fingerprints in its results directory (for ``ftbench leak`` and the report)."""
    return save_fingerprints(found.fingerprints, out / FINGERPRINTS_FILE)


def leak_summary(audit: LeakageAudit, most: int = 5) -> str | None:
    """One line naming the flagged items (the first ``most``, with their training row), or None when none is."""
    if audit.flagged == 0:
        return None
    named = [
        f"{task.task} doc {item.doc_id} ({'/'.join(item.kinds)}; {item.matches[0].row})"
        for task in audit.tasks
        for item in task.flagged
    ]
    more = f" and {len(named) - most} more" if len(named) > most else ""
    return f"{audit.flagged} evaluated items are in the training data: {', '.join(named[:most])}{more}"


def refuse_leaks(audit: LeakageAudit) -> None:
    """Stop with one line when the audit flagged anything (``leakage: fail``: exit 2, never 1).

    Raises:
        FtbenchError: naming the flagged items and the fix.
    """
    summary = leak_summary(audit)
    if summary is not None:
        raise FtbenchError(f"{summary}; remove them from the training data, or evaluate on other items")


def _comparison_data(comparison: PairedComparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    return {
        "n": comparison.n,
        "delta": comparison.delta,
        "interval": [comparison.interval.low, comparison.interval.high],
        "p_value": comparison.p_value,
        "test": comparison.test,
    }


def leak_json(outcome: LeakOutcome) -> str:
    """The outcome as JSON: the audit (per task the items checked and every flagged item with its doc id, training
    rows and evidence), the stage comparisons split into flagged and clean items, and the membership checks."""
    splits = [
        {
            "task": split.task,
            "metric": split.metric,
            "comparison": split.pair,
            "flagged_items": split.flagged_items,
            "clean_items": split.clean_items,
            **{part: _comparison_data(getattr(split, part)) for part in ("overall", "flagged", "clean")},
        }
        for split in outcome.splits
    ]
    document = {
        "audit": outcome.audit.model_dump(mode="json"),
        "splits": splits,
        "membership": [check.model_dump(mode="json") for check in outcome.membership],
    }
    return json.dumps(document, indent=1)


def leak_markdown(outcome: LeakOutcome) -> str:
    """The outcome as markdown: the report's Leakage section, then the membership checks."""
    leakage = ReportLeakage(outcome.audit, outcome.splits)
    lines = [f"# {TITLE}", "", *section_lines(leakage)]
    if outcome.membership:
        lines += ["## Membership: do the items look seen?", "", MEMBERSHIP_LEDE, ""]
        lines += [f"- {inline(check.sentence())}" for check in outcome.membership]
    return "\n".join(lines).rstrip() + "\n"
