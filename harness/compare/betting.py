"""Wealth processes of bets on bounded paired differences: the test martingales behind the sequential gate.

Differences are scaled to y = d / B in [−1, 1]. To test "the mean is below m" a bettor stakes a share s of its
wealth on each item, which multiplies it by 1 + s(m − y); while the true mean is at least m each factor has
expectation at most 1, so the wealth is a nonnegative supermartingale and by Ville's inequality it ever reaches
1 / alpha with probability at most alpha, however often it is looked at (Waudby-Smith & Ramdas, "Estimating means
of bounded random variables by betting", JRSS-B 2024; Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Stat. 2021). Betting that the mean is above m is the
same bet on −y below −m.

The bettor does not pick one stake: its wealth is the average of the wealths of the constant stakes ``BETS`` (a
log-spaced grid, equal weights), each capped at ``CAP`` / (1 − m) so that no item can take more than 95% of it.
This is Robbins' method of mixtures, as in the universal-portfolio bettor of Orabona & Jun ("Tight concentrations
and confidence sequences from the regret of universal portfolio", IEEE Trans. Inf. Theory 2024): an average of
supermartingales is one, and by Laplace's method it trails the best constant stake s in hindsight by about
ln(ln(largest / smallest stake)) + ½·ln(t·s²·v / 2π) nats (v the items' variance), under 2 nats when a verdict
is reached (t·s²·v near 9) whatever the effect's size. Each stake's wealth is nondecreasing in m (with the cap
too, as Waudby-Smith & Ramdas show for theirs), so the means a bet rejects form a ray and a confidence bound is
its end, found by safeguarded Newton steps.

A stake's log-wealth after t items is t·ln(1 + s·m) + G_t(u) with u = s / (1 + s·m) and G_t(u) = Σ ln(1 − u·y_i),
one concave function of one variable per prefix. For 0/1 metrics G_t is exact from the counts gained and lost (at
m = 0 unchanged items multiply by 1 and the test is a mixture martingale on the discordant pairs' split, McNemar's
conditional view). For bounded scores it is tabulated on ``U_GRID`` and read along chords, which lie below a
concave function, so a bound from the table is a hair wider than the exact one and never narrower (measured over
2,000 items: at most 2e-5 of B, for differences spread with sd B/2); the wealth at one given mean, which the
verdicts read, is exact.

Measured on 0/1 items (``calibration_sequential.py``): 16 stakes over [1/128, 0.95] need as few items as 32 do;
a grid from 1/32 needs about 8% fewer at a 500-item design's effect but puts no weight on the small stakes that
drops detectable only over tens of thousands of items need; a plug-in stake fitted to the mean tested (aGRAPA,
Waudby-Smith & Ramdas 2024) needs 2-6% fewer, but depends on that mean, so each bound would need its own pass
over the items. On bounded scores (sd 0.16 of B) the exact wealth needed 41-57% fewer items than the
empirical-Bernstein bound of the wealth (Howard et al. 2021; Waudby-Smith & Ramdas' predictable plug-in version),
whose stakes must stay below 1/2 on this scale.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

Side = Literal["below", "above"]
"""``below``: betting that the mean is below m (it rejects larger means: an upper bound); ``above``: the mirror."""

BETS = np.geomspace(1 / 128, 0.95, 16)
"""The constant stakes the bettor averages over, on the [−1, 1] scale."""
CAP = 0.95
"""A stake betting below m is at most ``CAP`` / (1 − m): an item at y = 1 keeps at least 5% of the wealth."""
TABLE_POINTS = 384
"""Points of ``U_GRID`` on each side of 0."""


def _table_grid(points: int) -> np.ndarray:
    """0 and ±u for 1 − u falling geometrically from 1 to 1 − ``CAP`` in ``points`` steps."""
    positive = 1 - (1 - CAP) ** (np.arange(1, points + 1) / points)
    return np.concatenate([-positive[::-1], [0.0], positive])


U_GRID = _table_grid(TABLE_POINTS)
"""Where a bounded score's G_t(u) is tabulated: |u| up to ``CAP``, denser towards ±``CAP`` where G bends most."""
TOLERANCE = 1e-9
"""How far beyond the root (on the [−1, 1] scale) the root-finding aims, so the bound it returns is rejected."""
NEWTON_STEPS = 60
"""The most root-finding steps behind a confidence bound; a handful usually suffice."""


def stakes(m: np.ndarray | float) -> np.ndarray:
    """Each constant stake betting below ``m``, after the cap: shape ``np.shape(m) + (len(BETS),)``."""
    room = np.maximum(1.0 - np.asarray(m, dtype=float)[..., None], 1e-12)
    return np.minimum(BETS, CAP / room)


def _mixture(per_stake: np.ndarray) -> np.ndarray:
    """The log of the average over stakes (last axis) of the wealths whose logs are given."""
    top = per_stake.max(axis=-1, keepdims=True)
    return np.log(np.exp(per_stake - top).mean(axis=-1)) + top[..., 0]


def log_wealth(scaled: np.ndarray, m: float, side: Side, binary: bool) -> np.ndarray:
    """The log of the bettor's wealth after each prefix of ``scaled`` (items along the last axis; any leading
    axes are independent sequences), betting on ``side`` of the mean ``m``; exact."""
    values, tested = (scaled, m) if side == "below" else (-scaled, -m)
    stake = stakes(tested)
    if binary:
        factors = np.log1p(stake * (tested - np.array([1.0, -1.0, 0.0]))[:, None])
        gained, lost = np.cumsum(values > 0.5, axis=-1), np.cumsum(values < -0.5, axis=-1)
        same = np.arange(1, values.shape[-1] + 1) - gained - lost
        per_stake = gained[..., None] * factors[0] + lost[..., None] * factors[1] + same[..., None] * factors[2]
    else:
        per_stake = np.cumsum(np.log1p(stake * (tested - values[..., None])), axis=-2)
    return _mixture(per_stake)


def weighted_log_wealth(values: np.ndarray, weights: np.ndarray, m: float) -> float:
    """The log-wealth betting below ``m`` after a sample in which each of ``values`` (scaled) counts ``weights``
    times (fractional counts allowed): the wealth a projected outcome would reach."""
    per_stake = weights @ np.log1p(stakes(m) * (m - np.asarray(values, dtype=float)[:, None]))
    return float(_mixture(per_stake))


class _Profile(NamedTuple):
    """G_t(u) = Σ ln(1 − u·y_i) over each prefix t, with what it is read from."""

    items: np.ndarray
    mean: np.ndarray
    counts: np.ndarray | None
    """0/1 metrics: gained and lost after each item."""
    table: np.ndarray | None
    """Bounded scores: G_t at each point of ``U_GRID``, one row per prefix."""

    def at(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """G_t(u) and its slope in u, for u of shape (prefixes, stakes): exact, or along the table's chords."""
        if self.counts is not None:
            gained, lost = self.counts[:, :1], self.counts[:, 1:]
            return gained * np.log1p(-u) + lost * np.log1p(u), lost / (1 + u) - gained / (1 - u)
        assert self.table is not None
        cell = np.clip(np.searchsorted(U_GRID, u, side="right") - 1, 0, len(U_GRID) - 2)
        left = np.take_along_axis(self.table, cell, axis=-1)
        chord = (np.take_along_axis(self.table, cell + 1, axis=-1) - left) / (U_GRID[cell + 1] - U_GRID[cell])
        return left + chord * (u - U_GRID[cell]), chord


def _profile(values: np.ndarray, binary: bool) -> _Profile:
    items = np.arange(1, len(values) + 1, dtype=float)
    mean = np.cumsum(values) / items
    if binary:
        counts = np.stack([np.cumsum(values > 0.5), np.cumsum(values < -0.5)], axis=-1).astype(float)
        return _Profile(items, mean, counts, None)
    return _Profile(items, mean, None, np.cumsum(np.log1p(-values[:, None] * U_GRID), axis=0))


def _below(profile: _Profile, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The log-wealth betting below ``m`` (one mean per prefix) and its slope in m."""
    m = m[:, None]
    stake = stakes(m[:, 0])
    growth = np.where(stake < BETS, stake / np.maximum(1.0 - m, 1e-12), 0.0)  # d stake / dm where capped
    base = 1 + stake * m
    u = stake / base
    inner, inner_slope = profile.at(u)
    per_stake = profile.items[:, None] * np.log(base) + inner
    slopes = profile.items[:, None] * (growth * m + stake) / base + inner_slope * (growth - stake**2) / base**2
    weights = np.exp(per_stake - per_stake.max(axis=-1, keepdims=True))
    return _mixture(per_stake), (weights * slopes).sum(axis=-1) / weights.sum(axis=-1)


def confidence_bound(scaled: np.ndarray, alpha: float, side: Side, binary: bool) -> np.ndarray:
    """After each prefix of ``scaled`` (one sequence), the end of the means the ``side`` bet has not rejected at
    ``alpha``, before any running intersection: for ``below`` the smallest m whose wealth reaches 1 / alpha (an
    upper bound; 1 where none does), for ``above`` the mirror (a lower bound; −1 where none does). Never narrower
    than the exact bound.

    The root lies between the prefix's mean, where every stake's wealth is at most 1, and 1; safeguarded Newton
    steps (a bisection wherever a step would leave the bracket) find it, each aimed ``TOLERANCE`` beyond the
    root, and the answer is the smallest m seen to reject.
    """
    if side == "above":
        return -confidence_bound(-scaled, alpha, "below", binary)
    profile, threshold = _profile(scaled, binary), np.log(1 / alpha)
    kept, rejected = profile.mean.copy(), np.ones_like(profile.mean)
    settled = _below(profile, rejected)[0] < threshold  # nothing below 1 is rejected
    point = np.minimum((kept + 1) / 2, kept + 2 * np.sqrt(threshold / profile.items))
    for _ in range(NEWTON_STEPS):
        value, slope = _below(profile, point)
        rejects = (value >= threshold) & ~settled
        kept = np.where(rejects | settled, kept, point)
        rejected = np.where(rejects, point, rejected)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = point - (value - threshold) / slope + TOLERANCE
        settled |= (rejected - kept <= 2 * TOLERANCE) | (rejects & (point - step <= TOLERANCE))
        if np.all(settled):
            break
        inside = np.isfinite(step) & (step > kept) & (step < rejected)
        point = np.where(settled, point, np.where(inside, step, (kept + rejected) / 2))
    return rejected
