"""``ftbench gate --sequential`` as one library call: evaluate the candidate on the baseline's items a chunk at a
time in a seeded order, judge every gated metric with its anytime-valid confidence sequence after each chunk, stop
once each has its verdict (or its budget is spent), and write the candidate's run, the sequences' paths and the
gate's outputs.

Everything is checked before any model loads: the metrics the sequential gate cannot cover, a budget beyond a
baseline's items, a chunk of 0, a baseline too small for any verdict. A run killed midway resumes from the chunks
it stored, in the same order, and reaches the verdict an uninterrupted run reaches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from ftbench.harness.app.baseline import candidate_spec
from ftbench.harness.app.gate import EXIT_CODES, append_step_summary, check_gate_paths, is_results_dir, leakage_warning
from ftbench.harness.compare.policy import GateDecision, SequentialSettings, load_policy
from ftbench.harness.compare.sequential_gate import SequentialJudgement, decide_sequential
from ftbench.harness.compare.sequential_plan import SequentialPlan, SequentialState, plan_sequential
from ftbench.harness.core.events import EventSink, ignore
from ftbench.harness.core.records import EvalRecord, RunRecord
from ftbench.harness.core.request import ItemOrder
from ftbench.harness.core.store import load_run, load_run_evals, store_eval, store_run, write_atomic
from ftbench.reports.analysis import SEQUENTIAL_FILE
from ftbench.tasks.registry import recorded_task


class SequentialOutcome(NamedTuple):
    """The sequential gate's decision, each metric's judgement, the summary, and where the candidate's run is."""

    decision: GateDecision
    judgements: list[SequentialJudgement]
    summary: str
    candidate: Path
    plan: SequentialPlan
    warnings: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 could not decide."""
        return EXIT_CODES[self.decision.outcome]


def _evaluate(plan: SequentialPlan, baseline: Path, checkpoint: Path, out: Path, base: Path | None,
              on_event: EventSink) -> tuple[SequentialState, RunRecord, list[EvalRecord]]:  # fmt: skip
    """Stream the candidate's chunks to the gate's decision, then store its run: one record per evaluation of the
    items evaluated (each chunk stays stored, so a run killed midway resumes)."""
    from ftbench.harness.evaluation.lock import results_lock
    from ftbench.harness.evaluation.provenance import collect_provenance
    from ftbench.harness.evaluation.run import planned_run
    from ftbench.harness.evaluation.streaming import evaluate_sequentially, merged_records

    spec = candidate_spec(baseline, checkpoint, out, base)
    with planned_run(spec) as planned, results_lock(spec.out):
        state = evaluate_sequentially(planned, plan, on_event)
        merged = [store_eval(out, record) for record in merged_records(state, recorded_task)]
        provenance = collect_provenance(planned.device)
        run = RunRecord(name=spec.name, spec=spec.model_dump(mode="json"), provenance=provenance,
                        evaluations=[r.key for r in merged], seed=spec.seed, started_at=merged[0].created_at,
                        wall_seconds=sum(r.performance.wall_seconds for r in merged))  # fmt: skip
        stored = store_run(out, run, {r.key: str(r.digest) for r in merged})
    return state, stored, merged


def _replay(plan: SequentialPlan, candidate: Path) -> SequentialState:
    """A candidate already evaluated on every item: its items taken in the gate's seeded order, chunk by chunk."""
    judge = SequentialState(plan)
    for record in load_run_evals(candidate):
        place = (record.task, str(record.variant.precision))
        if place not in plan.gated:
            continue
        order = ItemOrder(seed=plan.seed, start=0, stop=plan.budgets[place]).positions(len(record.samples))
        ordered = [record.samples[i] for i in order]
        for start in range(0, len(ordered), plan.chunk):
            if not judge.open(place):
                break
            judge.add(place, record.model_copy(update={"samples": ordered[start : start + plan.chunk]}))
    return judge


def paths_data(outcome: SequentialOutcome) -> dict[str, object]:
    """The gate's JSON: for every gated metric the verdict, the items used and the budget, the interval at the
    stop, the margin, and the confidence sequence's path."""
    plan = outcome.plan
    metrics = []
    for j in outcome.judgements:
        g, v = j.gated, j.verdict
        metrics.append({
            "task": g.task.name, "metric": g.metric, "precision": g.precision, "mode": g.mode, "verdict": j.status,
            "items": v.items, "evaluated": len(j.lower), "budget": plan.budgets[(g.task.name, g.precision)],
            "estimate": v.estimate, "interval": [v.lower, v.upper], "margin": g.margin, "alpha": plan.alpha,
            "detectable_drop": v.detectable_drop, "bound": g.bound,
            "path": {"lower": j.lower, "upper": j.upper, "estimate": j.estimate},
        })  # fmt: skip
    decision = {"outcome": outcome.decision.outcome, "reason": outcome.decision.reason}
    return {"kind": "sequential", "decision": decision, "chunk": plan.chunk, "seed": plan.seed, "metrics": metrics}


def run_sequential_gate(
    baseline: Path,
    candidate: Path,
    policy_path: Path | None = None,
    settings: SequentialSettings | None = None,
    junit: Path | None = None,
    json_path: Path | None = None,
    candidate_out: Path = Path("results/gate-candidate"),
    base: Path | None = None,
    on_event: EventSink | None = None,
) -> SequentialOutcome:
    """Gate ``candidate`` (a checkpoint, evaluated a chunk at a time; or a results directory, read in the same
    order) against ``baseline`` sequentially.

    Raises:
        FtbenchError: bad input of any kind, before any model loads.
    """
    from ftbench.harness.index.indexing import run_indexer
    from ftbench.reports.sequential_summary import render_sequential_junit, render_sequential_markdown

    check_gate_paths(baseline, candidate, policy_path, junit, candidate_out, base)
    records = load_run_evals(baseline)
    policy = load_policy(policy_path)
    chosen = settings or policy.sequential or SequentialSettings()
    seed = chosen.seed if chosen.seed is not None else load_run(baseline).seed
    plan = plan_sequential(records, policy, chosen, seed, recorded_task)
    if is_results_dir(candidate):
        judge, where = _replay(plan, candidate), candidate
    else:
        add_to_store = run_indexer(candidate_out, recorded_task)
        judge, run, merged = _evaluate(plan, baseline, candidate, candidate_out, base, on_event or ignore)
        add_to_store(run, merged)
        where = candidate_out
    leaked = leakage_warning(where, policy.leakage)
    judgements = judge.judgements()
    decision = decide_sequential(judgements)
    outcome = SequentialOutcome(decision, judgements, "", where, plan)
    data = paths_data(outcome)
    if where == candidate_out:  # a results directory given as the candidate is an input: never written
        write_atomic(where / SEQUENTIAL_FILE, json.dumps(data, indent=1))
    summary = render_sequential_markdown(outcome.judgements, plan.budgets, str(baseline), str(where), decision)
    if json_path is not None:
        write_atomic(json_path, json.dumps(data, indent=1))
    if junit is not None:
        write_atomic(junit, render_sequential_junit(outcome.judgements, decision))
    warning = append_step_summary(summary)
    return outcome._replace(summary=summary, warnings=tuple(w for w in (leaked, warning) if w))
