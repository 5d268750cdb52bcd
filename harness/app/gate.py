"""``ftbench gate`` as one library call: evaluate a candidate like the baseline if needed, judge every metric under
the policy, decide, and write the job summary and JUnit report. The CLI prints the outcome and exits with its code."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from harness.app.baseline import evaluate_like_baseline
from harness.compare.policy import GateDecision, Verdict, decide, gate_records, load_policy
from harness.core.checkpoints import resolve_checkpoint
from harness.core.errors import FtbenchError
from harness.core.store import RUN_FILE, load_run_evals, write_atomic
from harness.evaluation.run import RunEvent
from reports.gate_summary import render_gate_markdown, render_junit

EXIT_CODES = {"pass": 0, "regression": 1, "undecided": 2}


class GateOutcome(NamedTuple):
    """The gate's decision, its verdicts, and the summary it wrote."""

    decision: GateDecision
    verdicts: list[Verdict]
    summary: str
    candidate: Path

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 could not decide."""
        return EXIT_CODES[self.decision.outcome]


def _check_writable(path: Path) -> None:
    """Refuse an output file that cannot be written (its folder must exist), before any evaluation."""
    folder = path.parent
    blocked = path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK)
    if blocked or (path.exists() and not os.access(path, os.W_OK)):
        raise FtbenchError(f"cannot write {path}; give a writable file path")


def run_gate(
    baseline: Path,
    candidate: Path,
    policy_path: Path | None = None,
    junit: Path | None = None,
    candidate_out: Path = Path("results/gate-candidate"),
    base: Path | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
) -> GateOutcome:
    """Gate ``candidate`` (a results directory, or a checkpoint evaluated first with the baseline's settings)
    against ``baseline``.

    Raises:
        FtbenchError: bad input of any kind (a baseline without evaluations, a candidate that cannot be loaded or
            was evaluated otherwise, an unwritable output), before anything is written where possible.
    """
    policy = load_policy(policy_path)
    baseline_records = load_run_evals(baseline)
    if junit is not None:
        _check_writable(junit)
    if not (candidate / RUN_FILE).is_file():
        resolve_checkpoint(candidate, base)
        candidate = evaluate_like_baseline(baseline, candidate, candidate_out, base, on_event).results_dir
    verdicts = gate_records(baseline_records, load_run_evals(candidate), policy)
    decision = decide(verdicts, policy)
    summary = render_gate_markdown(verdicts, str(baseline), str(candidate), decision)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(summary)
    if junit is not None:
        write_atomic(junit, render_junit(verdicts, decision))
    return GateOutcome(decision, verdicts, summary, candidate)
