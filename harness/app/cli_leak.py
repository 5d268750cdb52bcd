"""``ftbench leak``: every evaluated item against every training row of a checkpoint's lineage, a results
directory's checkpoints or a training file; what a leak did to each stage's gain; the membership check on request."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ftbench.harness.app.cli_common import VerboseOption, guarded, split_flag
from ftbench.harness.core.errors import FtbenchError

if TYPE_CHECKING:
    from ftbench.harness.leakage.audit_models import AuditThresholds

leak_app = typer.Typer()


@leak_app.command()
@guarded
def leak(
    target: Annotated[
        Path | None,
        typer.Argument(metavar="[CHECKPOINT | RESULTS]", help="A checkpoint (its lineage) or a results directory."),
    ] = None,
    train_data: Annotated[
        list[Path] | None, typer.Option(help="A training file to check too (JSON lines, TRL's formats); repeatable.")
    ] = None,
    fields: Annotated[
        list[str] | None, typer.Option(help="The training file's fields to read, comma-separated (default: TRL's).")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="A suite or run spec naming the tasks (needed for a checkpoint).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="md or json.")] = "md",
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
    jaccard: Annotated[float | None, typer.Option(help="MinHash Jaccard at which an item is a near-duplicate.")] = None,
    substring_chars: Annotated[int | None, typer.Option(help="Length of a common substring that flags.")] = None,
    substring_rule: Annotated[str | None, typer.Option(help="proven or possible.")] = None,
    short_item_words: Annotated[int | None, typer.Option(help="Items under this many words use 8-grams.")] = None,
    short_min_share: Annotated[float | None, typer.Option(help="Share of a short item's 8-grams a row needs.")] = None,
    long_min_share: Annotated[float | None, typer.Option(help="Share of a long item's 13-grams a row needs.")] = None,
    max_matches: Annotated[int | None, typer.Option(help="Training rows listed per flagged item.")] = None,
    membership: Annotated[
        bool, typer.Option(help="Also the model-based check (slow: loads each checkpoint, two passes per item).")
    ] = False,
    score: Annotated[str, typer.Option(help="Membership score: reference (against the base) or min-k.")] = "reference",
    reference: Annotated[Path | None, typer.Option(help="The base to score against (default: the lineage's).")] = None,
    control: Annotated[
        int | None, typer.Option(help="Unused items per task as the control (default: as many).")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Was the gain learned or leaked? Check every evaluated item against every training row (exact copies after
    normalisation, shared word n-grams, long common substrings, near-duplicates), and split each stage's gain into
    flagged and clean items."""
    from ftbench.harness.app.display import library_output
    from ftbench.harness.app.leak import LeakInputs, leak_audit, leak_json, leak_markdown, leak_membership
    from ftbench.harness.core.store import write_atomic

    if format not in ("md", "json") or score not in ("reference", "min-k"):
        raise FtbenchError(f"unknown format {format!r} or score {score!r}; use md or json, and reference or min-k")
    thresholds = _thresholds(
        jaccard, substring_chars, substring_rule, short_item_words, short_min_share, long_min_share, max_matches
    )
    names = split_flag(fields)
    outcome = leak_audit(LeakInputs(target, tuple(train_data or ()), tuple(names) if names else None, spec), thresholds)
    if membership:
        with library_output(None, verbose):
            found = leak_membership(outcome, "min_k" if score == "min-k" else "reference", reference, control)
        outcome = outcome._replace(membership=tuple(found))
    document = leak_json(outcome)
    if out is not None:
        write_atomic(out, document + "\n")
    sys.stdout.write(document + "\n" if format == "json" else leak_markdown(outcome))


def _thresholds(
    jaccard: float | None,
    substring_chars: int | None,
    substring_rule: str | None,
    short_item_words: int | None,
    short_min_share: float | None,
    long_min_share: float | None,
    max_matches: int | None,
) -> AuditThresholds:
    """The thresholds the flags set over the defaults (a value outside its range: one line, exit 2)."""
    from ftbench.harness.leakage.audit_models import AuditThresholds

    given = {
        "jaccard": jaccard,
        "substring_chars": substring_chars,
        "substring_rule": substring_rule,
        "short_item_words": short_item_words,
        "short_min_share": short_min_share,
        "long_min_share": long_min_share,
        "max_matches": max_matches,
    }
    return AuditThresholds.model_validate({key: value for key, value in given.items() if value is not None})
