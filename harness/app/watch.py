"""``ftbench watch``: evaluate the checkpoints another process writes (a trainer that takes no callback, a cluster
job), each once it is completely written, exactly once, in step order.

A ``checkpoint-N`` folder counts as complete when its ``trainer_state.json`` reads as JSON: transformers'
``Trainer`` (and so TRL, axolotl and unsloth) writes that file after the weights, optimizer and random states, so
a checkpoint still being written is never read. What was evaluated is in the results' training curve, so a
watch that is killed and started again goes on where it stopped; an evaluation cut off midway is redone, one
already stored is reused from the cache.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

from ftbench.harness.app.best_link import BestLink
from ftbench.harness.app.leak import audit_training_file, check_training_rows, keep_training_rows
from ftbench.harness.app.training_run import TrainingRun
from ftbench.harness.compare.policy import load_policy
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.events import CheckpointEvent, EventSink, ignore
from ftbench.harness.core.store import write_atomic
from ftbench.harness.core.training_curve import TrainingCurve
from ftbench.harness.evaluation.step_gate import load_gate
from ftbench.harness.evaluation.steps import StepEvaluator, StepResult, load_suite

COMPLETE_MARKER = "trainer_state.json"
"""The file transformers' ``Trainer`` writes last into a checkpoint."""
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")

logger = logging.getLogger("ftbench")


MAX_STEP = 2**63 - 1
"""The largest step a results store holds (a signed 64-bit integer)."""


def _read_state(child: Path) -> bool:
    """Whether ``child``'s ``trainer_state.json`` reads as a JSON object (so the checkpoint is completely written)."""
    try:
        state = json.loads((child / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # not there yet, or still being written
    return isinstance(state, dict)


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The ``checkpoint-N`` folders directly in ``folder`` that are completely written, as (N, path), by step.

    A step written twice (``checkpoint-3`` and ``checkpoint-03``) is taken once, from the name without leading
    zeros (else the first by name), with a warning; a step beyond what the store holds is skipped with a warning.
    """
    found: dict[int, list[Path]] = {}
    for child in sorted(folder.iterdir()):
        match = CHECKPOINT_NAME.fullmatch(child.name)
        if match is None or not child.is_dir() or not _read_state(child):
            continue
        step = int(match.group(1))
        if step > MAX_STEP:
            logger.warning("ftbench: %s names step %d, beyond what the results store holds; skipped", child, step)
            continue
        found.setdefault(step, []).append(child)
    chosen = []
    for step, paths in sorted(found.items()):
        path = next((p for p in paths if p.name == f"checkpoint-{step}"), paths[0])
        if len(paths) > 1:
            others = ", ".join(p.name for p in paths if p != path)
            logger.warning("ftbench: %s and %s are both step %d; evaluating %s only", path.name, others, step, path)
        chosen.append((step, path))
    return chosen


def open_watch(
    folder: Path,
    suite: Path,
    out: Path,
    baseline: Path | None = None,
    policy: Path | None = None,
    base: Path | None = None,
    link_best: Path | None = None,
    copy_best: bool = False,
    train_data: Path | None = None,
    fields: Sequence[str] | None = None,
) -> TrainingRun:
    """Check everything a watch needs before any evaluation and return its loop (resuming ``out``'s curve), which
    keeps ``link_best`` on the best checkpoint so far (a copy with ``copy_best``) when given. A ``train_data`` file
    (the rows the watched trainer trains on; its ``fields``, or TRL's formats) is audited against the suite's items
    (a warning, or with the policy's ``leakage: fail`` a refusal) and its fingerprints kept in ``out``.

    Raises:
        FtbenchError: a watch directory that does not exist, an output that is that directory, an invalid suite,
            a missing baseline, a policy that does not parse, results of another suite in ``out``, or an unreachable
            results store.
    """
    if not folder.is_dir():
        raise FtbenchError(f"watch directory {folder} does not exist; give the trainer's output_dir")
    if out.resolve() == folder.resolve():
        raise FtbenchError(
            f"--out {out} is the watched directory, where the trainer writes; give --out a folder of its own"
        )
    spec = load_suite(suite)
    gate = load_gate(baseline, policy, spec, base, initial=False)
    if fields and train_data is None:
        raise FtbenchError("--fields names the training file's fields; give --train-data FILE with it")
    if train_data is not None:
        mode = load_policy(policy).leakage
        found = audit_training_file(train_data, fields, spec)
        check_training_rows(found, "warn" if mode == "off" else mode)
        keep_training_rows(found, out)
    best = BestLink(link_best, copy_best, [task.definition for task in spec.tasks]) if link_best else None
    return TrainingRun(StepEvaluator(spec, out, spec.name, gate, base), best)


def stop_note(result: StepResult, curve: TrainingCurve) -> str:
    """What a stop file says: the regressed checkpoint, each regression, and the last good checkpoint."""
    lines = [f"regression at {result.step.name} (step {result.step.step}) against {curve.baseline}"]
    lines += [f"- {regression.describe()}" for regression in result.step.regressions]
    lines.append(f"last good checkpoint: {curve.last_good}")
    return "\n".join(lines) + "\n"


def _evaluate_one(run: TrainingRun, step: int, path: Path, on_event: EventSink) -> StepResult | None:
    """Evaluate one checkpoint; one that cannot be evaluated is recorded in the curve as failed, with a warning
    and an event, and the watch goes on (None)."""
    try:
        return run.checkpoint(step, path, on_event)
    except FtbenchError as exc:
        reason = "deleted before it was evaluated" if not path.exists() else str(exc)
        run.evaluator.record_failure(step, path, reason)
        logger.warning("ftbench: %s (step %d) could not be evaluated: %s; going on", path, step, reason)
        on_event(CheckpointEvent(step, path.name, failed=reason))
        return None


def watch_checkpoints(
    folder: Path,
    run: TrainingRun,
    *,
    once: bool = False,
    interval: float = 10.0,
    stop_file: Path | None = None,
    on_event: EventSink | None = None,
) -> TrainingCurve:
    """Evaluate each complete checkpoint of ``folder`` not yet in the curve, in step order; with ``once``, return
    after one look, else look again every ``interval`` seconds until interrupted.

    A checkpoint baseline is evaluated first. With a gate, the first regression writes ``stop_file``. A checkpoint
    that cannot be evaluated is recorded as failed and tried again at the next start, never blocking the others.

    Raises:
        FtbenchError: the baseline checkpoint could not be evaluated.
    """
    notify = on_event or ignore
    evaluator = run.evaluator
    gate = evaluator.gate
    if gate is not None and gate.baseline.kind == "checkpoint" and gate.baseline.path is not None:
        run.baseline(gate.baseline.path, notify)
    tried: set[int] = set()
    while True:
        done = {step.step for step in evaluator.curve.steps if step.failed is None} | tried
        for step, path in complete_checkpoints(folder):
            if step in done:
                continue
            tried.add(step)
            result = _evaluate_one(run, step, path, notify)
            if result is not None and stop_file is not None and evaluator.curve.first_regression == step:
                write_atomic(stop_file, stop_note(result, evaluator.curve))
        if once:
            return evaluator.curve
        time.sleep(interval)
