"""Variants as reports label and order them: a checkpoint at a precision, in stage order, widest precision first."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftbench.harness.core.checkpoints import stage_rank
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.records import EvalRecord


@dataclass(frozen=True)
class Variant:
    """A checkpoint at a precision, as labelled in reports."""

    checkpoint: str
    stage: str
    precision: Precision

    @property
    def label(self) -> str:
        """``checkpoint@precision``."""
        return f"{self.checkpoint}@{self.precision}"


def variant_of(record: EvalRecord) -> Variant:
    """The variant a record evaluates."""
    return Variant(record.variant.name, record.variant.stage, record.variant.precision)


def _natural(name: str) -> tuple[str | int, ...]:
    """A sort key that puts ``checkpoint-9`` before ``checkpoint-10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def variant_order(variant: Variant) -> tuple[int, tuple[str | int, ...], tuple[str | int, ...], int]:
    """Stage order (training steps in numeric order), then checkpoint, then precision from widest to narrowest."""
    rank, name = stage_rank(variant.stage)
    return (rank, _natural(name), _natural(variant.checkpoint), variant.precision.rank)
