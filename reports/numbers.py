"""How reports write numbers: values with their intervals, deltas, p-values, flips and agreement."""

from __future__ import annotations

from ftbench.harness.compare.agreement import Agreement
from ftbench.harness.compare.statistics import PairedComparison
from ftbench.reports.analysis import Cell


def fmt(value: float | None, like: float | None = None) -> str:
    """A metric value: two decimals at 10 and above (BLEU, perplexities), else three; ``like`` picks the
    decimals from another value, so an interval reads like its estimate."""
    if value is None:
        return "–"
    scale = abs(like if like is not None else value)
    return f"{value:.2f}" if scale >= 10 else f"{value:.3f}"


def fmt_p(p: float) -> str:
    """A p-value."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cell_text(cell: Cell | None) -> str:
    """A value with its 95% interval, or mean ± sd over repeats with each repeat's value."""
    if cell is None:
        return "–"
    if cell.repeats > 1:
        each = ", ".join(fmt(v) for v in cell.repeat_values)
        return f"{fmt(cell.value)} ± {fmt(cell.repeat_sd)} (mean ± sd, {cell.repeats} runs: {each})"
    if cell.interval is None:
        return fmt(cell.value)
    return f"{fmt(cell.value)} [{fmt(cell.interval.low, cell.value)}, {fmt(cell.interval.high, cell.value)}]"


def delta_text(delta: float) -> str:
    """A signed difference."""
    return f"{delta:+.3f}" if abs(delta) < 10 else f"{delta:+.2f}"


def detects_text(comparison: PairedComparison) -> str:
    """The smallest change the paired test detects with 80% power at the comparison's alpha: ``0.449``, ``cannot
    decide at 4 items`` (no change can be significant at this n), or ``–`` (nothing varies to size one)."""
    if not comparison.decides(comparison.alpha):
        return f"cannot decide at {comparison.n} items"
    return f"{comparison.mde:.3g}" if comparison.mde is not None else "–"


def flips_text(comparison: PairedComparison | None) -> str:
    """Items wrong → right and right → wrong: ``+3 / −1``."""
    if comparison is None or comparison.flips is None:
        return "–"
    return f"+{len(comparison.flips.gained)} / −{len(comparison.flips.lost)}"


def agreement_text(agreement: Agreement | None) -> str:
    """How alike two variants' outputs are: ``KL 0.012 nats, top choice agrees 94%`` or ``answers changed 40%``."""
    if agreement is None:
        return "–"
    if agreement.unit == "answers":
        return f"answers changed {agreement.churn:.0%}" if agreement.churn is not None else "–"
    top = "top choice" if agreement.unit == "choices" else "top next token"
    kl = "∞" if agreement.kl == float("inf") else f"{agreement.kl:.4f}"
    return f"KL {kl} nats, {top} agrees {agreement.top_agreement:.0%} (n={agreement.n})"
