"""``ftbench gate`` as one library call: evaluate a candidate like the baseline if needed, judge every metric under
the policy, decide, and write the job summary and JUnit report. The CLI prints the outcome and exits with its code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import RUN_FILE, load_run_evals, write_atomic

if TYPE_CHECKING:
    from ftbench.harness.compare.policy import GateDecision, Verdict
    from ftbench.harness.core.events import EventSink

EXIT_CODES = {"pass": 0, "regression": 1, "undecided": 2}
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


class GateOutcome(NamedTuple):
    """The gate's decision, its verdicts, the summary it wrote, and warnings that do not change the decision."""

    decision: GateDecision
    verdicts: list[Verdict]
    summary: str
    candidate: Path
    warnings: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 could not decide."""
        return EXIT_CODES[self.decision.outcome]


def is_results_dir(path: Path) -> bool:
    """Whether ``path`` holds a run (so the gate compares it as it is rather than evaluating it first)."""
    return (path / RUN_FILE).is_file()


def _check_writable(path: Path) -> None:
    """Refuse an output file that cannot be written (its folder must exist), before any evaluation."""
    folder = path.parent
    blocked = path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK)
    if blocked or (path.exists() and not os.access(path, os.W_OK)):
        raise FtbenchError(f"cannot write {path}; give a writable file path")


def _relation(output: Path, given: Path) -> str | None:
    """How an output path overlaps an input path: ``is``, ``holds``, ``lies inside``, or None."""
    out, inp = output.expanduser().resolve(), given.expanduser().resolve()
    if out == inp:
        return "is"
    if out in inp.parents:
        return "holds"
    return "lies inside" if inp in out.parents else None


def check_gate_paths(
    baseline: Path,
    candidate: Path,
    policy_path: Path | None = None,
    junit: Path | None = None,
    candidate_out: Path | None = None,
    base: Path | None = None,
) -> None:
    """Refuse, before anything is read or written, an output that is, holds or lies inside one of the gate's inputs
    (``--candidate-out`` matters only when the candidate is a checkpoint to evaluate).

    Raises:
        FtbenchError: naming the output, the input and the fix.
    """
    inputs = {"--baseline": baseline, "--candidate": candidate, "--policy": policy_path, "--base": base}
    outputs = {"--junit": junit}
    if not is_results_dir(candidate):
        outputs["--candidate-out"] = candidate_out
    for out_flag, output in outputs.items():
        for in_flag, given in inputs.items():
            relation = None if output is None or given is None else _relation(output, given)
            if relation is not None:
                raise FtbenchError(
                    f"{out_flag} {output} {relation} the {in_flag} {given}, so writing it would change an input; "
                    f"give {out_flag} a path of its own"
                )


def append_step_summary(summary: str) -> str | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY``; a warning (not an error) when that fails."""
    step_summary = os.environ.get(STEP_SUMMARY_ENV)
    if not step_summary:
        return None
    try:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(summary)
    except OSError as exc:
        return f"cannot append the summary to {STEP_SUMMARY_ENV} {step_summary} ({exc.strerror}); the decision stands"
    return None


def leakage_warning(candidate: Path, mode: str) -> str | None:
    """The policy's leakage check of a candidate's evaluated items against its lineage's training rows: a warning
    (``warn``), a refusal (``fail``), or nothing (``off``, or nothing found).

    Raises:
        FtbenchError: ``fail`` and items were found, naming them (exit 2, never 1).
    """
    if mode == "off":
        return None
    from ftbench.harness.app.leak import audit_results, leak_summary, refuse_leaks

    audit = audit_results([candidate])
    if mode == "fail":
        refuse_leaks(audit)
    return leak_summary(audit)


def run_gate(
    baseline: Path,
    candidate: Path,
    policy_path: Path | None = None,
    junit: Path | None = None,
    candidate_out: Path = Path("results/gate-candidate"),
    base: Path | None = None,
    on_event: EventSink | None = None,
) -> GateOutcome:
    """Gate ``candidate`` (a results directory, or a checkpoint evaluated first with the baseline's settings)
    against ``baseline``.

    Raises:
        FtbenchError: bad input of any kind (a baseline without evaluations, an edited record, a candidate that
            cannot be loaded or was evaluated otherwise, an output that overlaps an input or cannot be written),
            before anything is written where possible.
    """
    check_gate_paths(baseline, candidate, policy_path, junit, candidate_out, base)
    baseline_records = load_run_evals(baseline)
    from ftbench.harness.compare.policy import decide, gate_records, load_policy  # scipy: after the cheap checks
    from ftbench.reports.gate_summary import render_gate_markdown, render_junit
    from ftbench.tasks.registry import TASKS, recorded_task

    policy = load_policy(policy_path)
    if junit is not None:
        _check_writable(junit)
    if not is_results_dir(candidate):
        from ftbench.harness.app.baseline import evaluate_like_baseline

        resolve_checkpoint(candidate, base)
        candidate = evaluate_like_baseline(baseline, candidate, candidate_out, base, on_event).results_dir
    leaked = leakage_warning(candidate, policy.leakage)
    verdicts = gate_records(baseline_records, load_run_evals(candidate), policy, recorded_task, TASKS)
    decision = decide(verdicts, policy)
    summary = render_gate_markdown(verdicts, str(baseline), str(candidate), decision)
    warning = append_step_summary(summary)
    if junit is not None:
        write_atomic(junit, render_junit(verdicts, decision))
    return GateOutcome(decision, verdicts, summary, candidate, tuple(w for w in (leaked, warning) if w))
