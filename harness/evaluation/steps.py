"""Evaluating a training run's checkpoints one at a time into one results directory.

Each checkpoint is one small run of the suite (a run spec without checkpoints): the same plan, requests, cache
and records as ``ftbench run``, labelled by the checkpoint's folder (``checkpoint-N``, N its global step). After
each one the directory's ``training_curve.json`` records the step and the gate's verdict and ``run.json`` lists
every evaluation so far (written once per checkpoint, from the records in memory), so ``ftbench report`` reads the
directory like any run and resumes never redo work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.compare.sequential_plan import SequentialPlan, SequentialState
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.events import EventSink, ignore
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.store import RUN_FILE, load_run_evals, store_eval, store_run
from ftbench.harness.core.training_curve import StepRecord, TrainingCurve, load_curve, save_curve
from ftbench.harness.core.yamlfile import read_yaml_mapping
from ftbench.harness.evaluation.lock import results_lock
from ftbench.harness.evaluation.provenance import collect_provenance
from ftbench.harness.evaluation.run import Evaluated, Planned, evaluate_planned, planned_run
from ftbench.harness.evaluation.spec import RunSpec, parse_spec
from ftbench.harness.evaluation.step_gate import StepGate
from ftbench.harness.evaluation.streaming import evaluate_sequentially, merged_records
from ftbench.tasks.registry import recorded_task

NOT_SUITE = ("name", "checkpoints", "checkpoints_dir", "base", "out")
"""Run-spec fields a suite does not decide: the training run supplies them."""


def load_suite(suite: Path | str | Mapping[str, Any]) -> RunSpec:
    """A suite (a YAML run spec file, or its mapping, without checkpoints) validated as a run spec.

    Raises:
        FtbenchError: a missing or invalid file, an unknown task or option, or a suite that names checkpoints.
    """
    if isinstance(suite, Mapping):
        data, origin = dict(suite), "suite"
    else:
        data = read_yaml_mapping(Path(suite), "suite file", "give a YAML run spec without checkpoints")
        origin = str(suite)
    if data.get("checkpoints") or data.get("checkpoints_dir"):
        raise FtbenchError(f"{origin}: a suite names no checkpoints (training saves them); remove checkpoints")
    return parse_spec({**data, "checkpoints": ["checkpoint-0"]}, origin)


def suite_settings(suite: RunSpec) -> dict[str, Any]:
    """What the suite decides about every evaluation (its fields but those of ``NOT_SUITE``)."""
    return suite.model_dump(mode="json", exclude=set(NOT_SUITE))


StepUpdate = Callable[[Evaluated], TrainingCurve]
"""The curve with what one evaluated checkpoint found."""


class StepResult(NamedTuple):
    """A checkpoint's step record and its evaluations."""

    step: StepRecord
    evaluations: list[EvalRecord]


class StepEvaluator:
    """Evaluates the checkpoints of one training run into ``out`` and keeps its training curve, and the records of
    the run so far, in memory: nothing it stored is read back.

    Args:
        suite: what every checkpoint is evaluated on (see ``load_suite``).
        out: the results directory; a curve stored there is resumed (it must be of the same suite and baseline).
        name: the run's name in its records.
        gate: the baseline and policy each checkpoint is judged by (None: no gate).
        base: the base model of adapter checkpoints, when their adapter config does not name a local one.

    Raises:
        FtbenchError: ``out`` holds the curve of another suite or baseline, or a record it lists that is not what
            it lists.
    """

    def __init__(
        self, suite: RunSpec, out: Path, name: str, gate: StepGate | None = None, base: Path | None = None
    ) -> None:
        self.suite, self.out, self.gate, self.base = suite, Path(out), gate, base
        baseline = gate.baseline.label if gate else None
        stored = load_curve(self.out)
        if stored is not None and (stored.suite != suite_settings(suite) or stored.baseline != baseline):
            raise FtbenchError(
                f"{self.out} holds the training curve of another suite or baseline; give another results directory"
            )
        self.curve = stored or TrainingCurve(name=name, suite=suite_settings(suite), baseline=baseline)
        self.state: SequentialState | None = None
        """The last sequential evaluation's judgements (a gate whose policy asks for sequential evaluation)."""
        self.records: dict[str, EvalRecord] = {}
        """Every evaluation of the run so far, as stored (with its digest), by key."""
        self.run: RunRecord | None = None
        """The run record as last stored."""
        if stored is not None and (self.out / RUN_FILE).is_file():
            self.records = {r.key: r for r in load_run_evals(self.out)}  # a resumed run: verified once, here
            if gate is not None and not gate.records and stored.baseline_name:
                gate.records = [self.records[key] for key in stored.baseline_evaluations if key in self.records]

    def restart(self) -> None:
        """Begin a new curve (a training run starting at step 0); stored evaluations stay in the cache."""
        self.curve = TrainingCurve(name=self.curve.name, suite=self.curve.suite, baseline=self.curve.baseline)
        if self.gate is not None and self.gate.baseline.kind != "stored":
            self.gate.records = []

    def _checkpoint_spec(self, checkpoint: Path) -> RunSpec:
        return self.suite.model_copy(
            update={
                "name": f"{self.curve.name}-{checkpoint.name}",
                "checkpoints": [checkpoint],
                "checkpoints_dir": None,
                "base": self.base,
                "out": self.out,
            }
        )

    def _evaluate(
        self,
        checkpoint: Path,
        on_event: EventSink | None,
        record_step: StepUpdate,
        sequential: SequentialPlan | None = None,
    ) -> Evaluated:
        """Evaluate the checkpoint's suite (every item, or with a sequential plan chunk by chunk until each
        evaluation is decided), update the curve with what it found, and store the curve and the run once, under
        the results directory's lock."""
        with planned_run(self._checkpoint_spec(checkpoint)) as planned, results_lock(self.out):
            if sequential is None:
                done = evaluate_planned(planned, on_event=on_event)
            else:
                done = self._sequentially(planned, sequential, on_event)
            self.records.update({record.key: record for record in done.records})
            self.curve = record_step(done)
            self._store(done)
        return done

    def _sequentially(self, planned: Planned, plan: SequentialPlan, on_event: EventSink | None) -> Evaluated:
        """Stream the checkpoint's chunks to the gate's decision; its records are those of the items evaluated."""
        started = time.perf_counter()
        state = evaluate_sequentially(planned, plan, on_event or ignore)
        self.state = state
        records = [store_eval(self.out, record) for record in merged_records(state, recorded_task)]
        keys = [record.key for record in records]
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return Evaluated(records, keys, [], planned.device, at, time.perf_counter() - started)

    def evaluate_baseline(self, checkpoint: Path, on_event: EventSink | None = None) -> list[EvalRecord]:
        """Evaluate the checkpoint the run is gated against (``initial``, a base model) and hold its records."""

        def record_step(done: Evaluated) -> TrainingCurve:
            keys = [record.key for record in done.records]
            update = {"baseline_name": checkpoint.name, "baseline_checkpoint": str(checkpoint)}
            return self.curve.model_copy(update={**update, "baseline_evaluations": keys})

        done = self._evaluate(checkpoint, on_event, record_step)
        if self.gate is not None:
            self.gate.records = done.records
        return done.records

    def evaluate(self, step: int, checkpoint: Path, on_event: EventSink | None = None) -> StepResult:
        """Evaluate the checkpoint of training step ``step`` and, with a gate, judge it against the baseline."""
        found: list[StepRecord] = []

        gate = self.gate
        look = 1 + sum(1 for s in self.curve.steps if s.outcome is not None and s.step < step)
        plan = gate.sequential_plan(look, self.suite.seed) if gate is not None else None

        def record_step(done: Evaluated) -> TrainingCurve:
            judgement = None
            if gate is not None and plan is not None and self.state is not None:
                judgement = gate.judge_sequential(self.state, look)
            elif gate is not None and gate.records:
                judgement = gate.judge(done.records, look)
            record = StepRecord(
                step=step,
                checkpoint=str(checkpoint),
                name=checkpoint.name,
                evaluations=[r.key for r in done.records],
                eval_seconds=round(done.seconds, 3),
                outcome=judgement.outcome if judgement else None,
                reason=judgement.reason if judgement else None,
                regressions=judgement.regressions if judgement else [],
                alpha=judgement.alpha if judgement else None,
            )
            found.append(record)
            return self.curve.with_step(record)

        done = self._evaluate(checkpoint, on_event, record_step, plan)
        return StepResult(found[0], done.records)

    def record_failure(self, step: int, checkpoint: Path, reason: str) -> StepRecord:
        """Record that the checkpoint of ``step`` could not be evaluated, and why (a later look may retry it)."""
        record = StepRecord(step=step, checkpoint=str(checkpoint), name=checkpoint.name, evaluations=[],
                            eval_seconds=0.0, failed=reason)  # fmt: skip
        self.curve = self.curve.with_step(record)
        save_curve(self.out, self.curve)
        return record

    def mark_stopped(self) -> None:
        """Record that training was asked to stop at the first regression."""
        self.curve = self.curve.model_copy(update={"stopped": True})
        save_curve(self.out, self.curve)

    def _store(self, done: Evaluated) -> None:
        """Write the curve, then a ``run.json`` listing every evaluation of the curve (the baseline's first)."""
        curve = self.curve
        paths = ([curve.baseline_checkpoint] if curve.baseline_checkpoint else []) + [s.checkpoint for s in curve.steps]
        spec = self.suite.model_copy(
            update={"name": curve.name, "checkpoints": [Path(p) for p in paths], "base": self.base, "out": self.out}
        )
        run = RunRecord(
            name=curve.name,
            spec=spec.model_dump(mode="json"),
            provenance=collect_provenance(done.device),
            evaluations=curve.evaluation_keys(),
            reused=[],
            seed=self.suite.seed,
            started_at=curve.started_at,
            wall_seconds=round(sum(s.eval_seconds for s in curve.steps), 3),
        )
        save_curve(self.out, curve)
        self.run = store_run(self.out, run, {key: str(record.digest) for key, record in self.records.items()})

    def run_records(self) -> list[EvalRecord]:
        """The records the stored run lists, in its order."""
        return [self.records[key] for key in self.run.evaluations] if self.run is not None else []
