"""``FtbenchCallback``: evaluate every checkpoint a transformers or TRL trainer saves, log the results through the
trainer's own logging, and stop a run that regresses against its baseline.

It evaluates in the training process, on the main process only, from the checkpoint as saved (full model or
adapter): the trained model itself is never used, and the random generators, grad mode and train flags are put
back afterwards (``isolation.training_state_kept``). The other processes wait for the main one, which tells them
whether to stop; under DDP keep ``ddp_timeout`` above one evaluation's time. The libraries' messages and progress
bars go to the results folder's log file, as the command line's do, not to the training script's console.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ftbench.harness.app.best_link import BestLink
from ftbench.harness.app.display import LOG_FILE, library_output
from ftbench.harness.app.leak import audit_trainer, check_training_rows, keep_training_rows
from ftbench.harness.app.training_run import TrainingRun
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.evaluation.isolation import training_state_kept
from ftbench.harness.evaluation.step_gate import load_gate
from ftbench.harness.evaluation.steps import StepEvaluator, StepResult, load_suite

logger = logging.getLogger("ftbench")


def metric_logs(records: list[EvalRecord]) -> dict[str, float]:
    """Every metric of the records as ``ftbench/<task>/<metric>`` (``ftbench/<task>/<precision>/<metric>`` when
    they hold several precisions), averaged over repeats."""
    several = len({record.request.precision for record in records}) > 1
    values: dict[str, list[float]] = {}
    for record in records:
        where = f"{record.task}/{record.request.precision}" if several else record.task
        for metric, value in record.metrics.items():
            values.setdefault(f"ftbench/{where}/{metric}", []).append(value.value)
    return {name: sum(found) / len(found) for name, found in values.items()}


def _main_process_says(flag: bool) -> bool:
    """The main process's ``flag`` on every process; the others wait here while it evaluates."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    box = [flag]
    torch.distributed.broadcast_object_list(box, src=0)
    return bool(box[0])


class FtbenchCallback(TrainerCallback):
    """Evaluates each checkpoint the trainer saves on an ftbench suite and logs ``ftbench/<task>/<metric>``.

    Add it to a trainer (``trainer.add_callback(FtbenchCallback(trainer, ...))``), as TRL's own evaluation
    callbacks are added. Bad input is refused here, before any training step.

    Args:
        trainer: the trainer whose saves are evaluated and whose logging (its ``report_to``) gets the metrics.
        suite: a run spec without checkpoints (a YAML file or a mapping): tasks, limits, precisions.
        out: the results directory (records, ``run.json``, ``training_curve.json``); a run resumed into it
            continues its curve.
        every: evaluate every N-th save.
        baseline: gate each checkpoint against ``initial`` (the model before step 0, evaluated when training
            begins), a checkpoint, or a stored baseline directory; None: no gate.
        policy: the gate's policy file (None: the default policy).
        stop_on_regression: stop training at the first checkpoint the gate finds regressed.
        base: the base model of adapter checkpoints, when their adapter config names none on this machine.
        keep_best: keep a link here to the best checkpoint so far (``ftbench select``'s choice on the suite's first
            task), or a copy where the trainer deletes old checkpoints (``save_total_limit``).
        leakage: check ``trainer.train_dataset`` (the text the tokenizer saw) against the suite's items before the
            first step: ``warn`` logs the items found, ``fail`` refuses to start; the rows' fingerprints are kept in
            ``out`` for ``ftbench leak`` (``off``: no check, nothing kept).

    Raises:
        FtbenchError: an invalid suite (unknown task or option), a missing baseline, a policy that does not
            parse, or a suite a stored baseline cannot be compared with.
    """

    def __init__(
        self,
        trainer: Trainer,
        suite: Path | str | Mapping[str, Any],
        out: Path | str,
        *,
        every: int = 1,
        baseline: str | Path | None = None,
        policy: Path | str | None = None,
        stop_on_regression: bool = False,
        base: Path | str | None = None,
        keep_best: Path | str | None = None,
        leakage: Literal["off", "warn", "fail"] = "warn",
    ) -> None:
        _check_arguments(suite, out, every, stop_on_regression, baseline, base)
        if leakage not in ("off", "warn", "fail"):
            raise FtbenchError(f"leakage must be off, warn or fail, not {leakage!r}")
        spec = load_suite(suite)
        base_path = Path(base) if base is not None else None
        gate = load_gate(baseline, Path(policy) if policy is not None else None, spec, base_path)
        self.trainer = trainer
        self.evaluator = StepEvaluator(spec, Path(out), spec.name, gate, base_path)
        self.training_rows = audit_trainer(trainer, spec) if leakage != "off" else None
        if self.training_rows is not None:
            check_training_rows(self.training_rows, leakage)
        best = None
        if keep_best is not None:  # a copy where the trainer deletes old checkpoints (save_total_limit)
            copy = getattr(getattr(trainer, "args", None), "save_total_limit", None) is not None
            best = BestLink(Path(keep_best), copy, [task.definition for task in spec.tasks])
        self.loop = TrainingRun(self.evaluator, best)
        self.every, self.stop_on_regression, self.saves = every, stop_on_regression, 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Begin a new curve at step 0; evaluate the baseline checkpoint, or save and evaluate the model before
        step 0 (``initial``), and log it at step 0 so the curve starts at the baseline."""
        if state.global_step == 0 and state.is_world_process_zero:
            self.evaluator.restart()
        if self.training_rows is not None and state.is_world_process_zero:
            keep_training_rows(self.training_rows, self.evaluator.out)
        gate = self.evaluator.gate
        if gate is None or gate.baseline.kind == "stored":
            return
        if state.global_step > 0 and gate.records:
            return  # resumed: the baseline was evaluated by the run that started at step 0
        if gate.baseline.kind == "initial" and state.global_step > 0:
            raise FtbenchError(
                f"baseline initial is the model before step 0, and this run resumes at step {state.global_step} "
                f"with none evaluated in {self.evaluator.out}; give that run's results directory or another baseline"
            )
        if state.is_world_process_zero:
            model = kwargs.get("model")
            with training_state_kept(model), library_output(self.evaluator.out / LOG_FILE, verbose=False):
                path = gate.baseline.path or self._save_initial(model, kwargs.get("processing_class"))
                records = self.loop.baseline(path)
            self._send_logs(args, state, control, metric_logs(records))
        _main_process_says(False)

    def _save_initial(self, model: Any, processing_class: Any) -> Path:
        """The model as it is now (full, or its adapter), with its tokenizer, saved to ``OUT/initial``."""
        path = self.evaluator.out / "initial"
        model.save_pretrained(path)
        if processing_class is not None and hasattr(processing_class, "save_pretrained"):
            processing_class.save_pretrained(path)
        return path

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        """Evaluate the checkpoint just written, log its metrics and, when it regressed, maybe stop training."""
        self.saves += 1
        if self.saves % self.every:
            return
        stop = False
        if state.is_world_process_zero:
            checkpoint = Path(str(args.output_dir)) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            with training_state_kept(kwargs.get("model")), library_output(self.evaluator.out / LOG_FILE, False):
                result = self.loop.checkpoint(state.global_step, checkpoint)
            self._log(args, state, control, result)
            stop = self.stop_on_regression and result.step.outcome == "regression"
            if stop:
                self.evaluator.mark_stopped()
        if _main_process_says(stop):
            control.should_training_stop = True

    def _send_logs(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict[str, float]
    ) -> None:
        """``logs`` through the trainer's callbacks (every ``report_to`` integration) at the current global step."""
        # Not trainer.log(): TRL's trainers flush their running averages there, which would cut their window short.
        state.log_history.append({**logs, "step": state.global_step})
        self.trainer.control = self.trainer.callback_handler.on_log(args, state, control, logs)

    def _log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, result: StepResult) -> None:
        """The step's metrics through the trainer's callbacks at its global step, and a regression as a warning
        naming what regressed and the last good checkpoint."""
        logs = metric_logs(result.evaluations) | {"ftbench/eval_seconds": result.step.eval_seconds}
        if result.step.outcome is not None:
            logs["ftbench/gate/regressions"] = float(len(result.step.regressions))
        self._send_logs(args, state, control, logs)
        if result.step.outcome == "regression":
            what = "; ".join(r.describe() for r in result.step.regressions)
            logger.warning(
                "ftbench: %s (step %d) regressed against %s: %s; last good checkpoint: %s%s",
                result.step.name,
                result.step.step,
                self.evaluator.curve.baseline,
                what,
                self.evaluator.curve.last_good,
                "; stopping training" if self.stop_on_regression else "",
            )


def _check_arguments(
    suite: object, out: object, every: object, stop_on_regression: bool, baseline: object, base: object
) -> None:
    """Refuse, when the callback is made, arguments that would otherwise fail at the first save.

    Raises:
        FtbenchError: naming the argument and the fix.
    """
    if suite is None or not isinstance(suite, str | Path | Mapping):
        raise FtbenchError(f"suite must be a YAML run spec file or a mapping, not {type(suite).__name__}")
    if not isinstance(out, str | Path) or not str(out):
        raise FtbenchError(f"out must be a results directory path, not {out!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise FtbenchError(f"out {out} is a file; give a results directory (absent, or one of this training run)")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise FtbenchError(f"every must be 1 or more, a whole number (evaluate every N-th save), not {every!r}")
    if stop_on_regression and baseline is None:
        raise FtbenchError("stop_on_regression needs a baseline to gate against; give baseline='initial' or one")
    if base is not None and not Path(str(base)).exists():
        raise FtbenchError(
            f"base {base} does not exist; give the base model of the adapter checkpoints, or leave it out"
        )
