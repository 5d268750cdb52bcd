"""The results store on a real PostgreSQL server (started here, in a database this test creates and drops): the
same answers as on SQLite, concurrent writers, read-only queries, migration."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.index.comparison import compare_stored
from ftbench.harness.index.connection import Dialect, open_store, store_location
from ftbench.harness.index.history import metric_history
from ftbench.harness.index.schema import SCHEMA_VERSION, ensure_schema, opened_store
from ftbench.harness.index.sql import read_only_query
from ftbench.tasks.registry import recorded_task
from tests.postgres_server import postgres_server
from tests.store_records import COUNTS, add_dirs, add_shuffled, pipeline_runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture
def database(server: str) -> Iterator[str]:
    """A database of its own on the server, dropped afterwards."""
    name = f"ftbench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _counts(url: str) -> tuple[int, ...]:
    with opened_store(store_location(url), read_only=True) as store:
        return tuple(store.execute(COUNTS)[0])


def test_postgres_store_answers_as_sqlite_does(database: str, tmp_path: Path) -> None:
    runs = pipeline_runs(tmp_path / "results")
    location = store_location(database)
    assert location.dialect is Dialect.POSTGRES
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=add_shuffled, args=(database, [str(r) for r in runs], s)) for s in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [writer.exitcode for writer in writers] == [0, 0, 0, 0]
    add_dirs(location, runs)  # and once more: nothing changes
    assert _counts(database) == (4, 8, 8 * 32, 8, 8)
    lite = store_location(tmp_path / "s.db")
    add_dirs(lite, runs)
    answers = []
    for each in (location, lite):
        with opened_store(each, read_only=True) as store:
            compared = compare_stored(store, "initial@fp32", "sft@nf4", recorded_task, task="countdown")
            history = metric_history(store, "countdown", recorded_task)
            answers.append((compared.metrics, compared.items, [p._replace(run="") for p in history]))
    assert answers[0] == answers[1]
    with opened_store(location, read_only=True) as store:
        assert read_only_query(store, "SELECT count(*) AS n FROM samples").rows == [(8 * 32,)]
        for writing in ("DELETE FROM samples", "SELECT 1; DELETE FROM samples", "COMMIT; DELETE FROM samples"):
            with pytest.raises(FtbenchError, match="the query failed"):
                read_only_query(store, writing)
        read_only_query(store, "SET TRANSACTION READ WRITE")  # one statement only, rolled back
        with pytest.raises(FtbenchError, match="read-only transaction"):
            read_only_query(store, "DELETE FROM samples")
    assert _counts(database)[2] == 8 * 32


def test_postgres_migration_and_newer_schema(database: str, tmp_path: Path) -> None:
    runs = pipeline_runs(tmp_path / "results")
    location = store_location(database)
    add_dirs(location, runs[:2])
    query = "SELECT eval_id, metric, low, high FROM metrics ORDER BY eval_id"
    with psycopg.connect(database, autocommit=True) as connection:
        before = connection.execute(query).fetchall()
        connection.execute("ALTER TABLE metrics DROP COLUMN low")
        connection.execute("ALTER TABLE metrics DROP COLUMN high")
        connection.execute("UPDATE store_meta SET value = '1' WHERE name = 'schema_version'")
    store = open_store(location)
    try:
        assert ensure_schema(store, recorded_task) == 1
        assert store.execute(query) == [tuple(row) for row in before]
        store.execute("UPDATE store_meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    finally:
        store.close()
    with pytest.raises(FtbenchError, match="newer than this ftbench reads"):
        add_dirs(location, runs)


def test_postgres_rows_changed_in_the_database_are_refused(database: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ftbench.harness.app.cli import app
    from ftbench.harness.viewer.pages import home_page
    from ftbench.harness.viewer.routes import LiveLinks

    runs = pipeline_runs(tmp_path / "results")
    add_dirs(store_location(database), runs)
    with psycopg.connect(database, autocommit=True) as connection:
        found = connection.execute(
            "SELECT eval_id, key FROM evaluations WHERE checkpoint = 'sft' AND precision = 'nf4'"
        ).fetchone()
        assert found is not None
        eval_id, key = found
        connection.execute("UPDATE samples SET scores = '{\"accuracy\":1.0}' WHERE eval_id = %s", (eval_id,))
        connection.execute("UPDATE metrics SET value = 1.0 WHERE eval_id = %s", (eval_id,))
    runner = CliRunner()
    for args in (["compare", "initial@fp32", "sft@nf4", "--task", "countdown"], ["history", "--task", "countdown"]):
        result = runner.invoke(app, [*args, "--store", database])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and f"evaluation {key}" in lines[0], result.output
        assert f"ftbench store add --reindex {runs[1]}" in lines[0]
    check = runner.invoke(app, ["store", "check", "--store", database])
    assert check.exit_code == 2 and f"tampered: evaluation {key} (countdown sft@nf4)" in check.stdout
    with opened_store(store_location(database), read_only=True) as store, pytest.raises(FtbenchError, match=key):
        home_page(store, LiveLinks(), "stamp", [])
    repaired = runner.invoke(app, ["store", "add", "--reindex", str(runs[1]), "--store", database])
    assert repaired.exit_code == 0, repaired.output
    assert runner.invoke(app, ["store", "check", "--store", database]).exit_code == 0


def test_postgres_sql_is_bounded_in_time_and_rows(database: str, tmp_path: Path) -> None:
    from ftbench.harness.index.sql import QueryLimits

    add_dirs(store_location(database), pipeline_runs(tmp_path / "results")[:1])
    with opened_store(store_location(database), read_only=True) as store:
        with pytest.raises(FtbenchError, match=r"ran past --timeout 0\.5 s"):
            read_only_query(store, "SELECT pg_sleep(5)", QueryLimits(seconds=0.5))
        with pytest.raises(FtbenchError, match=r"more than 100 rows \(--max-rows\)"):
            read_only_query(store, "SELECT x FROM generate_series(1, 10000000) AS x", QueryLimits(rows=100))
        with pytest.raises(FtbenchError, match=r"more than 1 MiB \(--max-mib\)"):
            read_only_query(store, "SELECT repeat('x', 1000) FROM generate_series(1, 5000)", QueryLimits(mib=1))
        assert read_only_query(store, "SELECT count(*) AS n FROM samples").rows == [(64,)]  # still usable
        empty = read_only_query(store, "SELECT key FROM evaluations WHERE false")
        assert (empty.columns, empty.rows) == (["key"], [])
