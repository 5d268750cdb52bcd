"""Re-scoring without re-generating: a run's stored responses scored again by the tasks' current scoring.

When a task's scoring changes but its items, prompts and generation do not, its stored evaluations need no model:
lm-eval runs the task as defined now on the stored responses (``lmeval.replay_task``), so its hooks and
aggregations score them exactly as an evaluation would. The re-scored record carries the request a run would
make today (the task's current definition hash, so a new key) and the key of the record it came from
(``rescored_from``); its variant and cost are the source's, whose responses these are.

An evaluation is re-scored only when the task now selects the same items (same ``doc_id`` and ``doc_hash``),
from the same data, and builds the same prompts: without a chat template the prompt must equal the stored one;
with one (rendered by the variant's template, which re-scoring does not load) each message lm-eval builds now
must appear in the stored prompt in order, and an answer prefix must end it. Generation settings are the stored
request's; a task's own (its lm-eval YAML's ``generation_kwargs``) are not stored, so a change to them is not seen
here: re-run after one. Log-likelihood tasks (their metrics come from the model) and judged tasks (from a judge
model) are refused, as are tasks whose lm-eval filters or repeats change what a record stores.

The results go to a new directory, built in full before anything is written and moved into place at once, so a
failure leaves nothing behind and the source directory is never changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.core.errors import FtbenchError, validated
from ftbench.harness.core.records import EvalRecord, RunRecord, SampleRecord
from ftbench.harness.core.request import EvalRequest
from ftbench.harness.core.store import load_run, load_run_evals, store_eval, store_run
from ftbench.harness.evaluation.lmeval import BuiltPrompt, Replayed, replay_task
from ftbench.harness.evaluation.outcome import metric_values
from ftbench.harness.evaluation.plan import task_data
from ftbench.harness.evaluation.provenance import collect_provenance
from ftbench.harness.evaluation.spec import TaskSpec
from ftbench.tasks.base import Task
from ftbench.tasks.registry import recorded_task

RERUN = "re-run `ftbench run` to evaluate it again"


def default_out(results_dir: Path) -> Path:
    """Where ``ftbench rescore DIR`` writes without ``--out``: ``DIR-rescored`` beside ``DIR``."""
    folder = results_dir if results_dir.name else results_dir.resolve()
    return folder.parent / f"{folder.name}-rescored"


def rescore_refusal(task: Task) -> str | None:
    """Why the stored evaluations of ``task`` cannot be re-scored from their responses; None when they can."""
    if not task.generative:
        return f"its {task.output} metrics come from the model's log-likelihoods, which records do not store"
    if task.judging is not None:
        return "its metrics come from a judge model"
    definition = task.lm_eval_definition()
    if definition.get("filter_list"):
        return "its lm-eval filters change the responses, and records store only the filtered ones"
    if int(definition.get("repeats") or 1) != 1:
        return "it generates several responses per item, and records store one"
    return None


def _label(record: EvalRecord) -> str:
    return f"{record.task} of {record.variant.name}@{record.variant.precision}"


def rescored_request(request: EvalRequest) -> EvalRequest:
    """The request a run would make today for the same variant, items and settings: the task's current definition
    and data hashes and its options with today's defaults written out (planned as ``ftbench run`` plans them).

    Raises:
        FtbenchError: the task or its stored options are not valid in this version.
    """
    entry = validated(
        TaskSpec,
        {"name": request.task, "task": request.task_kind, "options": dict(request.options)},
        f"the stored evaluation of task {request.task}",
    )
    updates = {
        "task_definition_hash": entry.definition.definition_hash(),
        "task_data_hash": task_data(entry).data_hash,
        "options": entry.options,
    }
    return EvalRequest.model_validate(request.model_dump() | updates)


def same_prompt(stored: str, built: BuiltPrompt) -> bool:
    """Whether the prompt lm-eval builds now is the stored one: equal text, or with a chat template every message
    of the conversation in the stored prompt in order (and an answer prefix at its end, where rendering stops)."""
    if built.messages is None:
        return stored == built.text
    position = 0
    for message in built.messages:
        content = str(message["content"]).strip()
        found = stored.find(content, position)
        if found < 0:
            return False
        position = found + len(content)
    return not built.continues or stored.endswith(str(built.messages[-1]["content"]).strip())


def _check_same_items(record: EvalRecord, replayed: Replayed) -> dict[int, SampleRecord]:
    """The re-scored sample of each stored item, once the task is known to select and prompt the same items.

    Raises:
        FtbenchError: other items, an item's content changed, or a prompt changed.
    """
    scored = {sample.doc_id: sample for sample in replayed.run.samples}
    label = _label(record)
    if set(scored) != {sample.doc_id for sample in record.samples}:
        raise FtbenchError(f"{label}: the task now selects other items than were evaluated; {RERUN}")
    for sample in record.samples:
        if scored[sample.doc_id].doc_hash != sample.doc_hash:
            raise FtbenchError(f"{label}: item {sample.doc_id} changed since it was evaluated; {RERUN}")
        if not same_prompt(sample.prompt, replayed.prompts[sample.doc_id]):
            raise FtbenchError(f"{label}: prompts changed (item {sample.doc_id}); {RERUN}")
    return scored


def _refuse_unscorable(record: EvalRecord, task: Task) -> None:
    reason = rescore_refusal(task)
    if reason is not None:
        raise FtbenchError(f"task {record.task} cannot be re-scored: {reason}; {RERUN}, or leave it out with --task")


def rescore_record(record: EvalRecord) -> EvalRecord:
    """``record`` scored again from its stored responses by its task's current scoring, under the request a run
    would make today (a new key when the task's definition changed).

    Raises:
        FtbenchError: the task cannot be re-scored, or its data, items or prompts changed (naming the evaluation).
    """
    return _rescore(record, rescored_request(record.request))


def _rescore(record: EvalRecord, request: EvalRequest) -> EvalRecord:
    task = recorded_task(record.request)  # the task as defined now, named by the stored request
    _refuse_unscorable(record, task)
    if request.task_data_hash != record.request.task_data_hash:
        raise FtbenchError(f"{_label(record)}: the task's data changed since it was evaluated; {RERUN}")
    options = task.parse_options(dict(request.options))  # a stored record enters here: its options parsed once
    replayed = replay_task(request, task, options, {sample.doc_id: sample.response for sample in record.samples})
    scored = _check_same_items(record, replayed)
    samples = [
        sample.model_copy(update={"scores": scored[sample.doc_id].scores, "target": scored[sample.doc_id].target})
        for sample in record.samples
    ]
    return EvalRecord(
        key=request.key(),
        request=request,
        variant=record.variant,
        task=record.task,
        metrics=metric_values(task, replayed.run.metrics, samples, replayed.run.n, request.seed),
        performance=record.performance,
        samples=samples,
        rescored_from=record.key,
    )


class Rescored(NamedTuple):
    """One evaluation of the source run and the record that stands for it in the re-scored run."""

    source: EvalRecord
    record: EvalRecord
    """The re-scored record; ``source`` itself when it was already current or not selected."""
    selected: bool


class RescoreOutcome(NamedTuple):
    """Where the re-scored run went, and what happened to each evaluation, in run order."""

    out: Path
    run: RunRecord
    evaluations: list[Rescored]
    records: list[EvalRecord]
    """Every evaluation of the new run, as stored."""


def _selected(records: list[EvalRecord], tasks: list[str] | None, results_dir: Path) -> set[str]:
    """The names of the tasks to re-score (all of the run's when ``tasks`` is None), each one the run has."""
    present = list(dict.fromkeys(record.task for record in records))
    for name in tasks or []:
        if name not in present:
            raise FtbenchError(
                f"{results_dir} holds no evaluation of task {name!r}; choose --task from {', '.join(present)}"
            )
    return set(tasks or present)


def _check_out(results_dir: Path, out: Path) -> None:
    if out.resolve() == results_dir.resolve():
        raise FtbenchError(f"--out {out} is the source directory; re-scoring never changes it, give a new folder")
    if out.resolve().is_relative_to(results_dir.resolve()):
        raise FtbenchError(
            f"--out {out} lies inside the source directory {results_dir}; re-scoring never changes it, give a new "
            "folder outside it"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FtbenchError(f"--out {out} already exists; give a new folder or delete it")


def _rescore_all(records: list[EvalRecord], selected: set[str]) -> list[Rescored]:
    """Every evaluation of the run, the selected ones re-scored unless already current (refusals come first)."""
    for record in records:
        if record.task in selected:
            _refuse_unscorable(record, recorded_task(record.request))
    results = []
    for record in records:
        if record.task not in selected:
            results.append(Rescored(record, record, False))
            continue
        request = rescored_request(record.request)
        current = request.key() == record.key
        results.append(Rescored(record, record if current else _rescore(record, request), True))
    return results


def _write_all(out: Path, run: RunRecord, records: list[EvalRecord]) -> tuple[RunRecord, list[EvalRecord]]:
    """Store the records and their run in a fresh folder beside ``out`` and move it into place at once; return them
    as stored."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        stored = [store_eval(staging, record) for record in records]
        stored_run = store_run(staging, run, {record.key: str(record.digest) for record in stored})
        if out.is_dir():
            out.rmdir()  # empty (checked): replaced by the finished folder
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return stored_run, stored


def rescore_results(results_dir: Path, out: Path, tasks: list[str] | None = None) -> RescoreOutcome:
    """Re-score the stored run in ``results_dir`` into the new directory ``out``, with a run record of its own.

    Args:
        results_dir: a directory written by ``ftbench run`` (read, never changed).
        out: the new results directory (absent or empty).
        tasks: the tasks to re-score (None: every task of the run); the other evaluations are copied as they are.

    Raises:
        FtbenchError: a bad ``out`` or task name, a selected task that cannot be re-scored, or an evaluation whose
            items or prompts changed; nothing is written then.
    """
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    _check_out(results_dir, out)
    source = load_run(results_dir)
    records = load_run_evals(results_dir)
    selected = _selected(records, tasks, results_dir)
    results = _rescore_all(records, selected)
    stored = {item.record.key: item.record for item in results}
    run = RunRecord(
        name=source.name,
        spec=source.spec,
        provenance=collect_provenance("cpu"),
        evaluations=list(stored),
        reused=[item.record.key for item in results if item.record is item.source],
        seed=source.seed,
        started_at=started_at,
        wall_seconds=time.perf_counter() - started,
    )
    stored_run, records = _write_all(out, run, list(stored.values()))
    return RescoreOutcome(out, stored_run, results, records)
