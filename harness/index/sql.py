"""``ftbench store sql``: any query over the store, on a connection that refuses every write, within a time limit
and a bound on what it fetches.

The time limit is the database's own: an SQLite progress handler that interrupts the statement once the time is
up, PostgreSQL's ``statement_timeout`` in the read-only transaction. Rows are fetched in batches (PostgreSQL: one
at a time from the server) and counted as they come, so a query that answers more rows or bytes than allowed
stops there and is refused; SQLite also refuses any single value larger than the byte bound as it is made.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError, first_line
from ftbench.harness.index.connection import Dialect, QueryResult, Store, database_errors

_BATCH = 500


class QueryLimits(NamedTuple):
    """How far a person's query may go."""

    seconds: float = 30.0
    """Wall-clock time for the query, fetching included (``--timeout``)."""
    rows: int = 100_000
    """Rows it may answer (``--max-rows``)."""
    mib: int = 64
    """MiB of values it may answer, text counted in UTF-8 (``--max-mib``)."""


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "replace"))
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return 8


def _bounded(rows: Iterable[Any], limits: QueryLimits, deadline: float) -> list[tuple[Any, ...]]:
    """The rows, fetched until a limit is passed (then refused)."""
    kept: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        kept.append(tuple(row))
        size += sum(_size(value) for value in row)
        if len(kept) > limits.rows:
            raise FtbenchError(f"the query answers more than {limits.rows} rows (--max-rows); add a LIMIT or a "
                               "WHERE, or raise --max-rows")  # fmt: skip
        if size > limits.mib * 2**20:
            raise FtbenchError(f"the query answers more than {limits.mib} MiB (--max-mib); select fewer rows or "
                               "columns, or raise --max-mib")  # fmt: skip
        if len(kept) % _BATCH == 0 and time.monotonic() > deadline:
            raise _timed_out(limits)
    return kept


def _timed_out(limits: QueryLimits) -> FtbenchError:
    return FtbenchError(f"the query ran past --timeout {limits.seconds:g} s and was stopped; narrow it, or raise "
                        "--timeout")  # fmt: skip


def _batches(cursor: Any) -> Iterable[Any]:
    while batch := cursor.fetchmany(_BATCH):
        yield from batch


def _sqlite_query(store: Store, statement: str, limits: QueryLimits, deadline: float) -> QueryResult:
    connection: sqlite3.Connection = store.connection
    connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    longest = connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(1, min(limits.mib * 2**20, 2**31 - 1)))
    try:
        cursor = connection.execute(statement)
        if not cursor.description:
            return QueryResult([], [])
        columns = [column[0] for column in cursor.description]
        return QueryResult(columns, _bounded(_batches(cursor), limits, deadline))
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_INTERRUPT":
            raise _timed_out(limits) from exc
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_TOOBIG":
            raise FtbenchError(f"the query makes a value larger than {limits.mib} MiB (--max-mib); select less, or "
                               "raise --max-mib") from exc  # fmt: skip
        raise
    finally:
        connection.set_progress_handler(None, 0)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, longest)


def _postgres_query(store: Store, statement: str, limits: QueryLimits, deadline: float) -> QueryResult:
    import psycopg

    connection = store.connection
    with connection.transaction(force_rollback=True):
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute(f"SET LOCAL statement_timeout = {max(1, int(limits.seconds * 1000))}")
        cursor = connection.cursor()
        stream = cursor.stream(statement)  # one statement only, its rows one at a time
        try:
            rows = _bounded(stream, limits, deadline)
        except psycopg.errors.QueryCanceled as exc:
            raise _timed_out(limits) from exc
        except psycopg.ProgrammingError as exc:
            if exc.sqlstate is not None:
                raise
            rows = []  # a statement that answers no rows at all (``SET ...``)
        finally:
            stream.close()  # a query stopped early is cancelled at the server
        if rows:
            return QueryResult([column.name for column in cursor.description or []], rows)
        result = connection.execute(statement, prepare=True)  # no rows: once more, for the column names
        columns = [column.name for column in result.description or []]
        return QueryResult(columns, _bounded(_batches(result), limits, deadline) if columns else [])


def read_only_query(store: Store, statement: str, limits: QueryLimits | None = None) -> QueryResult:
    """Run one SQL statement on a read-only store and return its columns and rows, within ``limits``.

    Raises:
        FtbenchError: the store is open for writing, the statement failed (a write among them, quoting the
            database's own message), or it passed a limit (naming the option that sets it).
    """
    if not store.read_only:
        raise FtbenchError("store sql runs on a read-only connection only; open the store read-only")
    limits = limits or QueryLimits()
    deadline = time.monotonic() + limits.seconds
    run = _postgres_query if store.dialect is Dialect.POSTGRES else _sqlite_query
    try:
        return run(store, statement, limits, deadline)
    except database_errors() as exc:
        raise FtbenchError(
            f"the query failed ({first_line(exc, 200)}); the store is read-only here: query its tables runs, "
            "evaluations, run_evaluations, metrics and samples"
        ) from exc
