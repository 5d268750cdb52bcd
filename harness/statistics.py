"""Statistics over stored samples: bootstrap standard errors for corpus-level metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def bootstrap_stderr(
    metric: Callable[[Sequence[T]], float], samples: Sequence[T], iters: int = 1000, seed: int = 0
) -> float | None:
    """The standard deviation of ``metric`` over ``iters`` resamples (with replacement) of ``samples``.

    Returns None for fewer than two samples.
    """
    if len(samples) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = [metric([samples[i] for i in rng.integers(0, len(samples), len(samples))]) for _ in range(iters)]
    return float(np.std(values, ddof=1))
