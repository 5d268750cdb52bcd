"""The tidy results table: one row per checkpoint × stage × precision × task × metric.

This table is the stable interface for scripts, reports and the gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.names import terminal_text
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import load_run_evals

TableFormat = Literal["json", "csv", "md"]
COLUMNS = [
    "checkpoint",
    "stage",
    "precision",
    "task",
    "metric",
    "value",
    "stderr",
    "n",
    "scale",
    "footprint_bytes",
    "tokens_per_second",
    "peak_memory_bytes",
    "wall_seconds",
    "key",
]


def tidy_rows(records: list[EvalRecord]) -> pd.DataFrame:
    """Flatten evaluation records into the tidy table, in stage order."""
    rows = [
        {
            "checkpoint": record.variant.name,
            "stage": record.variant.stage,
            "precision": record.variant.precision,
            "task": record.task,
            "metric": metric,
            "value": value.value,
            "stderr": value.stderr,
            "n": value.n,
            "scale": value.scale,
            "footprint_bytes": record.variant.footprint_bytes,
            "tokens_per_second": record.performance.tokens_per_second,
            "peak_memory_bytes": record.performance.peak_memory_bytes,
            "wall_seconds": record.performance.wall_seconds,
            "key": record.key,
        }
        for record in sorted(records, key=lambda r: stage_rank(r.variant.stage))
        for metric, value in record.metrics.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def tidy_table(results_dir: Path) -> pd.DataFrame:
    """The tidy table of the run stored in ``results_dir``."""
    return tidy_rows(load_run_evals(results_dir))


def format_table(table: pd.DataFrame, fmt: TableFormat) -> str:
    """Render the table as JSON records, CSV or a markdown table; in CSV and markdown every text cell has its control
    characters written out (``terminal_text``: JSON escapes them itself)."""
    if fmt == "json":
        return table.to_json(orient="records", indent=1)
    table = table.map(lambda value: terminal_text(value) if isinstance(value, str) else value)
    if fmt == "csv":
        return table.to_csv(index=False)
    return table.to_markdown(index=False, floatfmt=".4g")
