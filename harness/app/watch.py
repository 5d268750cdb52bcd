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
from collections.abc import Callable
from pathlib import Path

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.events import EventSink
from ftbench.harness.core.store import write_atomic
from ftbench.harness.core.training_curve import TrainingCurve
from ftbench.harness.evaluation.step_gate import load_gate
from ftbench.harness.evaluation.steps import StepEvaluator, StepResult, load_suite

COMPLETE_MARKER = "trainer_state.json"
"""The file transformers' ``Trainer`` writes last into a checkpoint."""
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")

logger = logging.getLogger("ftbench")


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The ``checkpoint-N`` folders directly in ``folder`` that are completely written, as (N, path), by step."""
    found = []
    for child in folder.iterdir():
        match = CHECKPOINT_NAME.fullmatch(child.name)
        if match is None or not child.is_dir():
            continue
        try:
            state = json.loads((child / COMPLETE_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not there yet, or still being written
        if isinstance(state, dict):
            found.append((int(match.group(1)), child))
    return sorted(found)


def open_watch(
    folder: Path,
    suite: Path,
    out: Path,
    baseline: Path | None = None,
    policy: Path | None = None,
    base: Path | None = None,
) -> StepEvaluator:
    """Check everything a watch needs before any evaluation and return its evaluator (resuming ``out``'s curve).

    Raises:
        FtbenchError: a watch directory that does not exist, an invalid suite, a missing baseline, a policy that
            does not parse, or results of another suite in ``out``.
    """
    if not folder.is_dir():
        raise FtbenchError(f"watch directory {folder} does not exist; give the trainer's output_dir")
    spec = load_suite(suite)
    gate = load_gate(baseline, policy, spec, base, initial=False)
    return StepEvaluator(spec, out, spec.name, gate, base)


def stop_note(result: StepResult, curve: TrainingCurve) -> str:
    """What a stop file says: the regressed checkpoint, each regression, and the last good checkpoint."""
    lines = [f"regression at {result.step.name} (step {result.step.step}) against {curve.baseline}"]
    lines += [f"- {regression.describe()}" for regression in result.step.regressions]
    lines.append(f"last good checkpoint: {curve.last_good}")
    return "\n".join(lines) + "\n"


def watch_checkpoints(
    folder: Path,
    evaluator: StepEvaluator,
    *,
    once: bool = False,
    interval: float = 10.0,
    stop_file: Path | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    on_event: EventSink | None = None,
) -> TrainingCurve:
    """Evaluate each complete checkpoint of ``folder`` not yet in the curve, in step order; with ``once``, return
    after one look, else look again every ``interval`` seconds until interrupted.

    A checkpoint baseline is evaluated first. With a gate, the first regression writes ``stop_file``.

    Raises:
        FtbenchError: an evaluation that failed (a checkpoint deleted meanwhile is skipped with a warning).
    """
    gate = evaluator.gate
    if gate is not None and gate.baseline.kind == "checkpoint" and gate.baseline.path is not None:
        evaluator.evaluate_baseline(gate.baseline.path, on_event)
    vanished: set[int] = set()
    while True:
        done = {step.step for step in evaluator.curve.steps} | vanished
        for step, path in complete_checkpoints(folder):
            if step in done:
                continue
            try:
                result = evaluator.evaluate(step, path, on_event)
            except FtbenchError:
                if path.exists():
                    raise
                logger.warning("ftbench: %s was deleted before it was evaluated; skipped", path)
                vanished.add(step)
                continue
            if on_step is not None:
                on_step(result)
            if stop_file is not None and evaluator.curve.first_regression == result.step.step:
                write_atomic(stop_file, stop_note(result, evaluator.curve))
        if once:
            return evaluator.curve
        time.sleep(interval)
