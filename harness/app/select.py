"""``ftbench select`` as one library call: from the stored evaluations of a training run (the results of the
callback, ``ftbench watch`` or a pipeline), the checkpoint to ship on each task, its gain over the baseline with
the winner's curse taken out, the checkpoints that could be the best, and every metric's signal-to-noise
(``compare.run_choice``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ftbench.harness.compare.levels import ALPHA
from ftbench.harness.compare.run_choice import RunSelection, select_run
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.core.training_curve import load_curve
from ftbench.tasks.registry import recorded_task


def parse_weights(text: str) -> dict[str, float]:
    """``acc_norm=1,choice_logprob=0.5`` as metric → weight.

    Raises:
        FtbenchError: a part that is not METRIC=NUMBER, or a weight that is not a positive number.
    """
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, equals, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = 0.0
        if not equals or not name.strip() or not weight > 0:
            raise FtbenchError(f"--weights {part!r} is not METRIC=WEIGHT with a positive weight, e.g. acc_norm=1")
        weights[name.strip()] = weight
    if not weights:
        raise FtbenchError("--weights names no metric; give METRIC=WEIGHT pairs, e.g. acc_norm=1,choice_logprob=0.5")
    return weights


def _loaded(results: Sequence[Path]) -> tuple[list[EvalRecord], dict[str, int], str | None]:
    records: list[EvalRecord] = []
    steps: dict[str, int] = {}
    baseline = None
    for directory in results:
        records += load_run_evals(directory)
        curve = load_curve(directory)
        if curve is not None:
            steps |= {step.name: step.step for step in curve.steps}
            baseline = baseline or curve.baseline_name
    return list({r.key: r for r in records if r.request.repeat == 0}.values()), steps, baseline


def select_from_results(
    results: Sequence[Path],
    task: str | None = None,
    metrics: dict[str, float] | None = None,
    baseline: str | None = None,
    precision: str | None = None,
    alpha: float = ALPHA,
    seed: int = 0,
) -> RunSelection:
    """The checkpoint to ship on each task of the runs in ``results`` (see ``run_choice.select_run``).

    Raises:
        FtbenchError: unreadable results, or what ``select_run`` refuses.
    """
    records, steps, run_baseline = _loaded(results)
    return select_run(records, steps, recorded_task, run_baseline=run_baseline, task=task, metrics=metrics,
                      baseline=baseline, precision=precision, alpha=alpha, seed=seed)  # fmt: skip
