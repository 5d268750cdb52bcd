"""``ftbench store sql``: any query over the store, on a connection that refuses every write."""

from __future__ import annotations

from ftbench.harness.core.errors import FtbenchError, first_line
from ftbench.harness.index.connection import QueryResult, Store, database_errors


def read_only_query(store: Store, statement: str) -> QueryResult:
    """Run one SQL statement on a read-only store and return its columns and rows.

    Raises:
        FtbenchError: the store is open for writing, or the statement failed (a write among them), quoting the
            database's own message.
    """
    if not store.read_only:
        raise FtbenchError("store sql runs on a read-only connection only; open the store read-only")
    try:
        return store.query(statement)
    except database_errors() as exc:
        raise FtbenchError(
            f"the query failed ({first_line(exc, 200)}); the store is read-only here: query its tables runs, "
            "evaluations, run_evaluations, metrics and samples"
        ) from exc
