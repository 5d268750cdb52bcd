"""The fixed-n gate's verdicts as JSON (``ftbench gate --json``), in the shape the sequential gate writes: for every
gated comparison the verdict, the items used and the budget (all of them), the interval, the margin and the test's
p-value."""

from __future__ import annotations

import json

from ftbench.harness.compare.policy import GateDecision, Verdict


def fixed_gate_json(verdicts: list[Verdict], decision: GateDecision) -> str:
    """Every verdict of a fixed-n gate, with its comparison's numbers."""
    metrics = [
        {
            "task": v.task,
            "metric": v.metric,
            "precision": v.precision,
            "mode": v.mode,
            "verdict": v.status,
            "items": v.comparison.n,
            "budget": v.comparison.n,
            "estimate": v.comparison.delta,
            "interval": [v.comparison.interval.low, v.comparison.interval.high],
            "margin": v.allowed_drop,
            "alpha": v.comparison.alpha,
            "p_value": v.comparison.p_value,
            "test": v.comparison.test,
            "reason": v.reason,
        }
        for v in verdicts
    ]
    data = {"kind": "fixed", "decision": {"outcome": decision.outcome, "reason": decision.reason}, "metrics": metrics}
    return json.dumps(data, indent=1)
