"""``ftbench store add|check|sql|migrate``, ``ftbench history``, ``ftbench compare`` and ``ftbench view``: the
results store and what it answers. The store's modules load inside each command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ftbench.harness.app.cli_common import guarded
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.names import terminal_text

store_app = typer.Typer(help="The results store: an index over every stored run.", no_args_is_help=True)
query_app = typer.Typer()
"""Top-level commands over the store (registered into the main app)."""

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", help="An SQLite file or a postgresql:// URL (default: $FTBENCH_STORE, else results/ftbench.db)."
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="md, csv or json.")]


def _format(value: str) -> str:
    if value not in ("md", "csv", "json"):
        raise FtbenchError(f"unknown format {value!r}; use md, csv or json")
    return value


@store_app.command("add")
@guarded
def store_add(
    results_dirs: Annotated[
        list[Path], typer.Argument(help="Folders written by `ftbench run`, or folders holding them (e.g. results).")
    ],
    store: StoreOption = None,
    reindex: Annotated[
        bool, typer.Option("--reindex", help="Write every run's rows again from its files (repairs changed rows).")
    ] = False,
) -> None:
    """Index results directories (adding one twice changes nothing); a folder that cannot be read is named and
    skipped, the others are indexed, and the exit code is 2."""
    from ftbench.harness.core.store import load_run
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.index.indexing import add_results, run_folders
    from ftbench.harness.index.schema import opened_store
    from ftbench.tasks.registry import recorded_task

    location = store_location(store)
    folders = run_folders(results_dirs)
    readable = []
    for folder in folders:  # the store is not touched when no run can be read
        try:
            readable.append(load_run(folder))
        except FtbenchError:
            if len(folders) == 1:
                raise
    if not readable:
        raise FtbenchError(f"none of the {len(folders)} run folders can be read (the first: {folders[0]}); "
                           "give folders written by `ftbench run`")  # fmt: skip
    with opened_store(location, task_of=recorded_task) as opened:
        summary = add_results(opened, folders, recorded_task, reindex=reindex)
    for skipped in summary.skipped:
        print(terminal_text(f"not indexed: {skipped.reason}"), file=sys.stderr)
    print(
        f"indexed {summary.runs} runs ({summary.unchanged} unchanged): {summary.added} evaluations added, "
        f"{summary.linked} already held; store: {location.label}"
        + (f"; {len(summary.skipped)} folders not indexed" if summary.skipped else "")
    )
    if summary.skipped:
        raise typer.Exit(2)


@store_app.command("check")
@guarded
def store_check(store: StoreOption = None) -> None:
    """Find indexed records whose file changed or went since it was indexed, and evaluations whose rows in the
    store no longer match their digest (exit 2 if any; 1 is the gate's)."""
    from ftbench.harness.index.check import check_store
    from ftbench.harness.index.connection import database_errors, store_location
    from ftbench.harness.index.integrity import tampered_evaluations
    from ftbench.harness.index.schema import opened_store

    location = store_location(store)
    with opened_store(location, read_only=True) as opened:
        try:
            checked, findings = check_store(opened)
            evaluations = int(opened.execute("SELECT count(*) FROM evaluations")[0][0])
            tampered = list(tampered_evaluations(opened))
        except database_errors() as exc:
            raise FtbenchError(
                f"the store {location.label} cannot be read through ({exc}); it is damaged: add the "
                "runs again into a new store with `ftbench store add --store NEW RESULTS`"
            ) from exc
    for finding in findings:
        print(f"{finding.change}: {finding.file} (run {finding.run}): {finding.detail}")
    for found in tampered:
        print(terminal_text(f"tampered: evaluation {found.key} ({found.label}): its rows {found.detail}"))
    print(
        f"checked {checked} indexed files in {location.label}: {len(findings)} changed since indexing; "
        f"checked the rows of {evaluations} evaluations: {len(tampered)} do not match their digest"
    )
    if findings or tampered:
        raise typer.Exit(2)


@store_app.command("sql")
@guarded
def store_sql(
    statement: Annotated[str, typer.Argument(help="One SQL statement, run read-only.")],
    store: StoreOption = None,
    format: FormatOption = "md",
    timeout: Annotated[float, typer.Option(help="Seconds the query may take, fetching included.")] = 30.0,
    max_rows: Annotated[int, typer.Option(help="Rows the query may answer; more is refused.")] = 100_000,
    max_mib: Annotated[int, typer.Option(help="MiB of values the query may answer; more is refused.")] = 64,
) -> None:
    """Run a read-only SQL query over the store's tables (runs, evaluations, run_evaluations, metrics, samples)."""
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.index.schema import opened_store
    from ftbench.harness.index.sql import QueryLimits, read_only_query
    from ftbench.reports.store_text import rows_text

    fmt = _format(format)
    for name, value in (("--timeout", timeout), ("--max-rows", max_rows), ("--max-mib", max_mib)):
        if not value > 0:
            raise FtbenchError(f"{name} {value} is not a positive number; give one above 0")
    with opened_store(store_location(store), read_only=True) as opened:
        result = read_only_query(opened, statement, QueryLimits(timeout, max_rows, max_mib))
    sys.stdout.write(rows_text(result.columns, result.rows, fmt) + "\n")  # type: ignore[arg-type]


@store_app.command("export")
@guarded
def store_export(
    out: Annotated[Path, typer.Argument(help="Folder for metrics.parquet, samples.parquet and scores.parquet.")],
    store: StoreOption = None,
) -> None:
    """Export the store as tidy Parquet files."""
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.index.parquet import export_parquet
    from ftbench.harness.index.schema import opened_store

    with opened_store(store_location(store), read_only=True) as opened:
        written = export_parquet(opened, out)
    for file in written:
        print(f"wrote {file.path} ({file.rows} rows)")


@store_app.command("migrate")
@guarded
def store_migrate(store: StoreOption = None) -> None:
    """Bring a store written by an earlier ftbench to this version's schema."""
    from ftbench.harness.index.connection import open_store, store_location
    from ftbench.harness.index.schema import SCHEMA_VERSION, ensure_schema
    from ftbench.tasks.registry import recorded_task

    location = store_location(store)
    opened = open_store(location)
    try:
        before = ensure_schema(opened, recorded_task)
    finally:
        opened.close()
    if before == SCHEMA_VERSION:
        print(f"the store {location.label} is at schema version {SCHEMA_VERSION} already")
    else:
        print(f"the store {location.label}: schema version {before or 'none'} -> {SCHEMA_VERSION}")


@query_app.command("history")
@guarded
def history(
    task: Annotated[str, typer.Option(help="The task.")],
    metric: Annotated[str | None, typer.Option(help="The metric (default: the task's headline).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Only checkpoints matching this glob (name or path).")] = None,
    precision: Annotated[str | None, typer.Option(help="Only this precision.")] = None,
    order: Annotated[str, typer.Option(help="time, or step (stage, then training step).")] = "time",
    store: StoreOption = None,
    format: FormatOption = "md",
) -> None:
    """One metric across every evaluation in the store, with 95% intervals."""
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.index.history import ORDERS, history_notes, metric_history
    from ftbench.harness.index.schema import opened_store
    from ftbench.reports.store_text import history_text
    from ftbench.tasks.registry import recorded_task

    fmt = _format(format)
    if order not in ORDERS:
        raise FtbenchError(f"unknown order {order!r}; use time or step")
    with opened_store(store_location(store), read_only=True) as opened:
        points = metric_history(opened, task, recorded_task, metric, checkpoint, precision, order)  # type: ignore[arg-type]
        notes = history_notes(opened, points)
    sys.stdout.write(history_text(points, fmt) + "\n")  # type: ignore[arg-type]
    for note in notes:
        print(terminal_text(f"note: {note}"), file=sys.stderr)


@query_app.command("compare")
@guarded
def compare(
    baseline: Annotated[str, typer.Argument(help="An evaluation key (or its start), or CHECKPOINT@PRECISION.")],
    candidate: Annotated[str, typer.Argument(help="The other evaluation, named the same ways.")],
    task: Annotated[str | None, typer.Option(help="The task, for CHECKPOINT@PRECISION.")] = None,
    metric: Annotated[str | None, typer.Option(help="The metric the items follow (default: headline).")] = None,
    items: Annotated[int, typer.Option(help="Changed items to show (0: all).")] = 20,
    store: StoreOption = None,
    format: FormatOption = "md",
) -> None:
    """Compare two evaluations in the store on their shared items, as the report pairs them."""
    from ftbench.harness.index.comparison import compare_stored
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.index.schema import opened_store
    from ftbench.reports.store_text import comparison_text
    from ftbench.tasks.registry import recorded_task

    fmt = _format(format)
    with opened_store(store_location(store), read_only=True) as opened:
        result = compare_stored(opened, baseline, candidate, recorded_task, task, metric)
    sys.stdout.write(comparison_text(result, fmt, items) + "\n")  # type: ignore[arg-type]
    if fmt == "csv":  # the CSV holds the metric rows only
        for note in result.notes:
            print(terminal_text(f"note: {note}"), file=sys.stderr)


def _pairs(values: list[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for value in values or []:
        first, comma, second = value.partition(",")
        if not comma or not first.strip() or not second.strip():
            raise FtbenchError(f"--pair {value!r} is not two evaluations; give BASELINE_KEY,CANDIDATE_KEY")
        pairs.append((first.strip(), second.strip()))
    return pairs


@query_app.command("view")
@guarded
def view(
    store: StoreOption = None,
    host: Annotated[
        str | None, typer.Option(help="Serve on this address, not 127.0.0.1: anyone reaching it reads the store.")
    ] = None,
    port: Annotated[int, typer.Option(help="The port (0: any free one).")] = 8765,
    export: Annotated[Path | None, typer.Option(help="Write the pages as static files into this folder.")] = None,
    pair: Annotated[
        list[str] | None, typer.Option(help="With --export, also compare KEY_A,KEY_B (repeatable).")
    ] = None,
) -> None:
    """A local read-only web viewer over the store: runs, evaluations, samples, comparisons, histories."""
    from ftbench.harness.index.connection import store_location
    from ftbench.harness.viewer.server import LOCAL_HOST, make_server, serve

    location = store_location(store)
    if export is not None:
        from ftbench.harness.index.schema import opened_store
        from ftbench.harness.viewer.export import export_site

        with opened_store(location, read_only=True) as opened:
            written = export_site(opened, export, _pairs(pair))
        print(f"wrote {len(written)} pages; open {export / 'index.html'}")
        return
    server = make_server(location, host or LOCAL_HOST, port)
    note = "" if host is None else " — not only this machine can reach it"
    serve(server, lambda url: print(f"viewing {location.label} at {url} (read-only{note}; Ctrl-C stops)", flush=True))
