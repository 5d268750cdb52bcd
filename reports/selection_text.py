"""Which checkpoint to ship, as text: the selection on each task (markdown or JSON) and each metric's
signal-to-noise, saying plainly which tasks cannot rank the run's checkpoints."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from ftbench.harness.compare.choice import CheckpointChoice, MetricSignal
from ftbench.reports.mdtext import inline, plain, table

CHOICE_HEADER = ["task", "metric", "selected", "mean vs baseline", "gain, naive CI", "gain, adjusted CI", "shrunk gain",
                 "P(best)", "could be best", "items"]  # fmt: skip
SIGNAL_HEADER = ["task", "metric", "SNR", "signal", "noise", ""]


def signal_row(signal: MetricSignal) -> list[str]:
    """One metric's signal-to-noise as a table row."""
    ratio = "∞" if math.isinf(signal.signal.snr) else f"{signal.signal.snr:.2f}"
    verdict = "cannot rank" if signal.signal.cannot_rank else "ranks"
    return [signal.task, signal.metric, ratio, f"{signal.signal.signal:.4g}", f"{signal.signal.noise:.4g}", verdict]


def _interval(low: float, high: float) -> str:
    return f"[{low:+.4g}, {high:+.4g}]"


def choice_row(choice: CheckpointChoice) -> list[str]:
    """One task's selection as a table row."""
    s = choice.selection
    best = ", ".join(choice.labels[i] for i in s.could_be_best)
    return [
        choice.task,
        choice.metric,
        choice.selected,
        f"{s.means[s.selected]:.4g} vs {s.baseline:.4g}",
        f"{s.delta:+.4g} {_interval(*s.naive_interval)}",
        f"{_interval(*s.adjusted_interval)}",
        f"{s.shrunken_delta:+.4g}",
        f"{s.p_selected_best:.2f}",
        best,
        str(choice.items),
    ]


def signal_sentence(signal: MetricSignal) -> str:
    """``arc_easy acc_norm cannot rank these checkpoints (SNR 0.41 < 1); choice_logprob ranks them better``."""
    ratio = "∞" if math.isinf(signal.signal.snr) else f"{signal.signal.snr:.2f}"
    if not signal.signal.cannot_rank:
        return f"{signal.task} {signal.metric} ranks these checkpoints (SNR {ratio})"
    better = f"; {signal.continuous_alternative} ranks them better" if signal.continuous_alternative else ""
    return f"{signal.task} {signal.metric} cannot rank these checkpoints (SNR {ratio} < 1){better}"


def selection_markdown(
    choices: Sequence[CheckpointChoice], signals: Sequence[MetricSignal], precision: str, terminal: bool = False
) -> str:
    """The selection and the signal-to-noise as markdown (or plain text for a terminal)."""
    text = plain if terminal else inline
    if not choices:
        return ""
    alpha = choices[0].selection.alpha
    lines = [
        f"## Which checkpoint to ship ({text(precision)}, against {text(choices[0].baseline)})",
        "",
        f"The best checkpoint's gain is biased upward (the winner's curse): beside the naive {1 - alpha:.0%} interval, "
        f"the selection-adjusted one holds the chosen checkpoint's true gain with probability ≥ {1 - alpha:.0%} "
        "(simultaneous over every checkpoint), and the shrunk gain takes the curse out of the estimate. P(best): "
        "the chance it is truly the best; could be best: the checkpoints the items cannot tell from it "
        f"(holds the true best with probability ≥ {1 - alpha:.0%}).",
        "",
    ]
    lines += table(CHOICE_HEADER, [choice_row(c) for c in choices], text)
    weak = [signal_sentence(s) for s in signals if s.signal.cannot_rank]
    lines += ["", "**Signal and noise** (the spread of the checkpoints' means against the spread item sampling alone "
              "would give them; below 1 the items cannot rank the checkpoints):", ""]  # fmt: skip
    lines += table(SIGNAL_HEADER, [signal_row(s) for s in signals], text)
    lines += [""] + [f"- {text(sentence)}" for sentence in weak]
    return "\n".join(lines).rstrip() + "\n"


def selection_data(choices: Sequence[CheckpointChoice], signals: Sequence[MetricSignal], precision: str) -> str:
    """The selection and the signal-to-noise as JSON."""

    def choice(c: CheckpointChoice) -> dict[str, Any]:
        s = c.selection
        return {
            "task": c.task, "metric": c.metric, "baseline": c.baseline, "selected": c.selected, "items": c.items,
            "checkpoints": [{"label": label, "step": step, "mean": mean, "p_best": p,
                             "adjusted_interval": list(s.adjusted_intervals[i])}
                            for i, (label, step, mean, p) in enumerate(zip(c.labels, c.steps, s.means, s.p_best,
                                                                           strict=True))],
            "baseline_mean": s.baseline, "gain": s.delta, "naive_interval": list(s.naive_interval),
            "adjusted_interval": list(s.adjusted_interval), "shrunk_gain": s.shrunken_delta,
            "p_best": s.p_selected_best, "could_be_best": [c.labels[i] for i in s.could_be_best], "alpha": s.alpha,
        }  # fmt: skip

    def signal(s: MetricSignal) -> dict[str, Any]:
        snr = None if math.isinf(s.signal.snr) else s.signal.snr
        return {"task": s.task, "metric": s.metric, "snr": snr, "signal": s.signal.signal, "noise": s.signal.noise,
                "cannot_rank": s.signal.cannot_rank, "better_metric": s.continuous_alternative}  # fmt: skip

    data = {"precision": precision, "choices": [choice(c) for c in choices], "signals": [signal(s) for s in signals]}
    return json.dumps(data, indent=1)
