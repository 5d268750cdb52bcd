"""Where the results store lives and how to speak to it: an SQLite file beside the results (the default) or a
PostgreSQL server chosen by URL, behind one small connection type.

Statements are written once, with ``?`` placeholders, and run on either database. Writers take the store's one
write lock for the length of a transaction (SQLite's ``BEGIN IMMEDIATE``; a PostgreSQL advisory lock), so several
processes adding at once queue rather than collide. A read-only store refuses every write at the database; an
SQLite store in a folder that cannot be written (a read-only mount, a CI artifact) is read as an immutable file.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from ftbench.harness.core.errors import FtbenchError, first_line

STORE_ENV = "FTBENCH_STORE"
"""The store every command uses unless ``--store`` names another: a file path or a ``postgresql://`` URL."""
STORE_FILE = "ftbench.db"
DEFAULT_STORE = Path("results") / STORE_FILE
"""The default store: an SQLite file in ``results/``, beside the runs that ``ftbench run`` writes there."""
NO_STORE = "none"
"""``FTBENCH_STORE=none``: ``ftbench run`` indexes nothing."""
BUSY_SECONDS = 120.0
"""How long a writer waits for another's transaction before giving up."""
WRITE_LOCK = 0x66746273
"""The PostgreSQL advisory lock that serializes the store's writers."""


class Dialect(StrEnum):
    """The database behind a store."""

    SQLITE = "sqlite"
    POSTGRES = "postgresql"


@dataclass(frozen=True)
class StoreLocation:
    """A store's database and address: a file path (SQLite) or a URL (PostgreSQL)."""

    dialect: Dialect
    target: str

    @property
    def label(self) -> str:
        """The address as messages show it, without a password."""
        if self.dialect is Dialect.SQLITE:
            return self.target
        parts = urlsplit(self.target)
        host = parts.hostname or ""
        netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class QueryResult(NamedTuple):
    """The rows of a query and the names of its columns."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def _result(cursor: Any) -> QueryResult:
    if not cursor.description:
        return QueryResult([], [])
    return QueryResult([column[0] for column in cursor.description], [tuple(row) for row in cursor.fetchall()])


def _reads_only(action: int, *names: str | None) -> int:
    """An SQLite authorizer that admits reading and nothing else (no ``ATTACH``, no ``VACUUM INTO``, no pragma)."""
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def _without_secrets(url: str) -> str:
    """A URL as a message may quote it: no password, no query (which may carry one)."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1@", url.split("?", 1)[0])


def _checked_url(text: str) -> str:
    """A PostgreSQL URL that parses, with a port in range.

    Raises:
        FtbenchError: naming the URL (without its password) and the form to give.
    """
    try:
        urlsplit(text).port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise FtbenchError(
            f"store {_without_secrets(text)!r} is not a valid URL ({first_line(exc)}); give "
            "postgresql://USER@HOST[:PORT]/DB with a port in 1-65535 (an IPv6 host in brackets: [::1])"
        ) from exc
    return text


def store_location(given: str | Path | None = None, beside: Path | None = None) -> StoreLocation:
    """The store to use: ``given``, else ``FTBENCH_STORE``, else ``ftbench.db`` in ``beside`` (the folder holding a
    run's results directory), else ``results/ftbench.db``.

    Raises:
        FtbenchError: a URL of a database other than SQLite or PostgreSQL, or one that does not parse.
    """
    text = str(given or os.environ.get(STORE_ENV) or (beside / STORE_FILE if beside else DEFAULT_STORE))
    try:
        scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    except ValueError:
        scheme = text.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return StoreLocation(Dialect.POSTGRES, _checked_url(text))
    if scheme == "sqlite":
        return StoreLocation(Dialect.SQLITE, text.split("://", 1)[1] or str(DEFAULT_STORE))
    if scheme:
        raise FtbenchError(
            f"store {text!r} is neither a file nor a postgresql:// URL; give a path such as results/ftbench.db "
            "or postgresql://USER@HOST/DB"
        )
    return StoreLocation(Dialect.SQLITE, text)


class Store:
    """An open store: statements with ``?`` placeholders, the write lock, read-only where asked."""

    def __init__(self, location: StoreLocation, connection: Any, read_only: bool) -> None:
        self.location, self.connection, self.read_only = location, connection, read_only

    @property
    def dialect(self) -> Dialect:
        """The database behind the store."""
        return self.location.dialect

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect is Dialect.POSTGRES else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (none for a statement that returns none)."""
        cursor = self.connection.execute(self._sql(statement), tuple(params))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def execute_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""
        if not rows:
            return
        if self.dialect is Dialect.SQLITE:
            self.connection.executemany(statement, rows)
        else:
            with self.connection.cursor() as cursor:
                cursor.executemany(self._sql(statement), rows)

    def query(self, statement: str) -> QueryResult:
        """Run one statement given as is (a person's query) and return its columns and rows. On a read-only store
        it runs as one statement only, in a read-only transaction that is rolled back (PostgreSQL), or under an
        authorizer that admits reads only (SQLite)."""
        if self.dialect is Dialect.POSTGRES and self.read_only:
            with self.connection.transaction(force_rollback=True):
                self.connection.execute("SET TRANSACTION READ ONLY")
                return _result(self.connection.execute(statement, prepare=True))  # prepared: one statement only
        return _result(self.connection.execute(statement))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One transaction holding the store's write lock: committed whole, or rolled back on any failure."""
        if self.read_only:
            raise FtbenchError(f"the store {self.location.label} is open read-only here")
        if self.dialect is Dialect.POSTGRES:
            with self.connection.transaction():
                self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield
            return
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.connection.in_transaction:  # SQLite ends it itself on some errors (a full disk)
                self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def _read_only_sqlite(path: Path) -> sqlite3.Connection:
    """A read-only connection; where the folder cannot be written (so a WAL store cannot make its shared-memory
    file), the file opened as immutable, which is sound only while no write-ahead log holds changes."""
    uri = path.resolve().as_uri()
    connection = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=BUSY_SECONDS)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master")
        return connection
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc):
            return connection  # the store's own checks say what is wrong
        connection.close()
        reason = first_line(exc)
    except sqlite3.DatabaseError:
        return connection  # not a database: ``schema.stored_version`` says so
    wal = Path(f"{path}-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise FtbenchError(
            f"cannot read the store {path} ({reason}): its folder cannot be written and its write-ahead log {wal} "
            "holds changes; open it once where it can be written, or copy it with that file to a writable folder"
        )
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, timeout=BUSY_SECONDS)


def _open_sqlite(location: StoreLocation, read_only: bool) -> Any:
    path = Path(location.target)
    if read_only and not path.is_file():
        raise FtbenchError(
            f"no store at {path}; index results with `ftbench store add DIR` first, or give --store "
            f"(or {STORE_ENV}) naming an existing one"
        )
    if not read_only and not path.parent.is_dir():
        raise FtbenchError(f"cannot make the store {path}: the folder {path.parent} does not exist; create it first")
    try:
        connection = _read_only_sqlite(path) if read_only else sqlite3.connect(path, timeout=BUSY_SECONDS)
        if read_only:
            connection.execute("PRAGMA query_only = ON")
        connection.isolation_level = None  # transactions are explicit: see ``Store.writing``
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
        connection.execute("PRAGMA foreign_keys = ON")
        if not read_only:  # readers never block the writer, nor it them; set once, kept by the file
            connection.execute("PRAGMA journal_mode = WAL")
        else:
            connection.set_authorizer(_reads_only)
    except sqlite3.Error as exc:
        if read_only:
            raise FtbenchError(f"cannot read the store {path} ({first_line(exc)}); check that the file and its "
                               "folder can be read") from exc  # fmt: skip
        raise FtbenchError(f"cannot open the store {path} ({first_line(exc)}); give a writable SQLite file") from exc
    return connection


def _open_postgres(location: StoreLocation, read_only: bool) -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise FtbenchError(
            f"the store {location.label} is a PostgreSQL server, which needs the psycopg package; "
            "run `pip install 'psycopg[binary]'`"
        ) from exc
    try:
        connection = psycopg.connect(location.target, autocommit=True, connect_timeout=10)
        if read_only:
            connection.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raise FtbenchError(
            f"cannot reach the store {location.label} ({first_line(exc, 160)}); check the URL, that the server is "
            "running and that it accepts this user"
        ) from exc
    return connection


def open_store(location: StoreLocation, read_only: bool = False) -> Store:
    """Connect to a store (its schema is checked by ``schema.open_checked``, not here).

    Raises:
        FtbenchError: a missing file (read-only), a folder that does not exist, an unreachable server.
    """
    opener = _open_postgres if location.dialect is Dialect.POSTGRES else _open_sqlite
    return Store(location, opener(location, read_only), read_only)


def database_errors() -> tuple[type[Exception], ...]:
    """The exception types a store's database raises for a failed statement (psycopg's only when installed)."""
    errors: list[type[Exception]] = [sqlite3.Error]
    try:
        import psycopg
    except ImportError:
        return tuple(errors)
    return (*errors, psycopg.Error)
