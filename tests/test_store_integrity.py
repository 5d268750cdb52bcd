"""The store serves only what it indexed: rows changed in the database are refused by compare, history, the viewer
and ``store check`` (and repaired by adding the run again with ``--reindex``); a changed source file is a note; a
store in a read-only folder can be read; an unwritable one is refused before a run; ``store sql`` is bounded in
time, rows and bytes; malformed input is one line; one unreadable folder does not stop the others being added."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import RUN_FILE, eval_path, load_run, load_run_evals
from ftbench.harness.index.connection import store_location
from ftbench.harness.index.indexing import run_indexer
from ftbench.harness.index.schema import SCHEMA_VERSION, opened_store
from ftbench.harness.viewer.server import make_server
from ftbench.tasks.registry import recorded_task
from tests.store_records import add_dirs, pipeline_runs

runner = CliRunner()
COMPARE = ["compare", "initial@fp32", "sft@nf4", "--task", "countdown"]
HISTORY = ["history", "--task", "countdown"]


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[list[Path], Path]:
    runs = pipeline_runs(tmp_path / "results")
    db = tmp_path / "results" / "ftbench.db"
    add_dirs(store_location(db), runs)
    return runs, db


def _invoke(db: Path | str, *args: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the non-empty lines of stderr of one command on the store ``db``."""
    result = runner.invoke(app, [*args, "--store", str(db)])
    return result.exit_code, result.stdout, [line for line in result.stderr.splitlines() if line.strip()]


def _sft_nf4(db: Path) -> tuple[int, str]:
    with sqlite3.connect(db) as connection:
        row = connection.execute(
            "SELECT eval_id, key FROM evaluations WHERE checkpoint = 'sft' AND precision = 'nf4'"
        ).fetchone()
    return int(row[0]), str(row[1])


def _forge(db: Path, *statements: str) -> str:
    """Run ``statements`` (``{id}``: the sft@nf4 evaluation) with sqlite3, as someone editing the file would; returns
    the key of the evaluation they change."""
    eval_id, key = _sft_nf4(db)
    with sqlite3.connect(db) as connection:
        for statement in statements:
            connection.execute(statement.format(id=eval_id))
    return key


FORGERIES = {
    "scores and metric set to 1": (
        ["UPDATE samples SET scores = '{{\"accuracy\":1.0}}' WHERE eval_id = {id}",
         "UPDATE metrics SET value = 1.0 WHERE eval_id = {id}"], {"compare", "history"}),
    "metric only": (["UPDATE metrics SET value = 1.0, high = 0.2 WHERE eval_id = {id}"], {"compare", "history"}),
    "a response only": (["UPDATE samples SET response = 'forged' WHERE eval_id = {id} AND position = 3"],
                        {"compare"}),
    "precision label swapped": (["UPDATE evaluations SET precision = 'int8' WHERE eval_id = {id}"],
                                {"compare", "history"}),
    "garbage in a top-k column": (["UPDATE samples SET token_topk = 'GARBAGE' WHERE eval_id = {id}"], {"compare"}),
}  # fmt: skip


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_rows_changed_in_the_database_are_refused(indexed: tuple[list[Path], Path], forgery: str) -> None:
    runs, db = indexed
    statements, refused_by = FORGERIES[forgery]
    key = _forge(db, *statements)
    compare = ["compare", "initial@fp32", key, "--task", "countdown"]
    for name, args in (("compare", compare), ("history", HISTORY)):
        code, _, errors = _invoke(db, *args)
        if name in refused_by:
            assert code == 2 and len(errors) == 1, errors
            assert f"evaluation {key}" in errors[0] and f"ftbench store add --reindex {runs[1]}" in errors[0]
        else:
            assert code == 0, errors  # what it shows was not changed
    code, out, _ = _invoke(db, "store", "check")
    assert code == 2 and f"tampered: evaluation {key} (countdown sft@" in out
    assert "checked the rows of 8 evaluations: 1 do not match their digest" in out


def test_forged_scores_no_longer_make_a_forged_comparison(indexed: tuple[list[Path], Path]) -> None:
    runs, db = indexed
    _, before, _ = _invoke(db, *COMPARE, "--format", "json")
    _forge(db, *FORGERIES["scores and metric set to 1"][0])
    code, out, errors = _invoke(db, *COMPARE, "--format", "json")
    assert code == 2 and out == "" and "were changed after indexing" in errors[0]
    code, out, errors = _invoke(db, "store", "add", "--reindex", str(runs[1]))
    assert code == 0 and "indexed 1 runs" in out, errors
    assert _invoke(db, *COMPARE, "--format", "json")[1] == before
    assert _invoke(db, "store", "check")[0] == 0


def test_the_viewer_refuses_changed_rows(indexed: tuple[list[Path], Path], tmp_path: Path) -> None:
    _, db = indexed
    key = _forge(db, *FORGERIES["metric only"][0])
    served = make_server(store_location(db), port=0)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    try:
        for path in ("/", f"/eval?key={key}", "/history?task=countdown&metric=accuracy"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{served.server_address[1]}{path}")
            assert refused.value.code == 400 and f"evaluation {key}" in refused.value.read().decode()
    finally:
        served.shutdown()
        served.server_close()
    code, _, errors = _invoke(db, "view", "--export", str(tmp_path / "site"))
    assert code == 2 and len(errors) == 1 and f"evaluation {key}" in errors[0]


def test_rows_signed_with_a_key_are_refused_without_it_or_when_resealed_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTBENCH_RECORD_KEY", "ci-secret")
    runs = pipeline_runs(tmp_path / "results")
    db = tmp_path / "keyed.db"
    add_dirs(store_location(db), runs)
    assert _invoke(db, *COMPARE)[0] == 0
    monkeypatch.delenv("FTBENCH_RECORD_KEY")
    code, _, errors = _invoke(db, *HISTORY)
    assert code == 2 and "are signed with a key; set FTBENCH_RECORD_KEY" in errors[0]
    eval_id, key = _sft_nf4(db)  # a forger without the key reseals what they changed, as an unkeyed store would
    with opened_store(store_location(db), read_only=True) as store:
        from ftbench.harness.index.integrity import SEALED_COLUMNS, SEALED_METRICS, seal_of

        row = store.execute(f"SELECT {', '.join(SEALED_COLUMNS)} FROM evaluations WHERE eval_id = ?", (eval_id,))[0]
        metrics = [list(m) for m in store.execute(f"SELECT {', '.join(SEALED_METRICS)} FROM metrics WHERE eval_id = ?",
                                                   (eval_id,))]  # fmt: skip
    metrics[0][1] = 1.0
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE metrics SET value = 1.0 WHERE eval_id = ?", (eval_id,))
        connection.execute("UPDATE evaluations SET seal = ? WHERE eval_id = ?", (seal_of(row, metrics), eval_id))
    monkeypatch.setenv("FTBENCH_RECORD_KEY", "ci-secret")
    code, _, errors = _invoke(db, *HISTORY)
    assert code == 2 and f"evaluation {key}" in errors[0] and "were indexed without the key" in errors[0]


def test_a_changed_or_deleted_source_file_is_a_note(indexed: tuple[list[Path], Path]) -> None:
    runs, db = indexed
    record = next(r for r in load_run_evals(runs[1]) if r.variant.precision == "nf4")
    path = eval_path(runs[1], record.key)
    path.write_text(path.read_text() + " ")
    code, out, errors = _invoke(db, *COMPARE, "--format", "json")
    assert code == 0 and len(json.loads(out)["notes"]) == 1, errors
    assert json.loads(out)["notes"][0].startswith(f"the record file {path} of {record.key} changed since it was")
    assert _invoke(db, *COMPARE, "--format", "csv")[2][0].startswith(f"note: the record file {path}")
    path.unlink()
    assert f"{path} of {record.key} is gone" in json.loads(_invoke(db, *COMPARE, "--format", "json")[1])["notes"][0]
    code, out, errors = _invoke(db, *HISTORY, "--format", "csv")
    assert code == 0 and len(errors) == 1 and errors[0].startswith(f"note: the record file {path}")
    assert out.count("\n") == 9  # the CSV itself is untouched: a header and eight rows


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make folders and files unwritable for this process: by their mode, or as root (whom modes do not stop) by
    the immutable attribute."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in paths}
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    done: list[Path] = []
    try:
        for path in paths:
            if (
                not shutil.which("chattr")
                or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode
            ):
                pytest.skip("this file system cannot make a folder read-only for root (chattr +i)")
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_store_in_a_read_only_folder_is_read(
    indexed: tuple[list[Path], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, db = indexed
    monkeypatch.delenv("FTBENCH_STORE", raising=False)
    folder = tmp_path / "artifact"
    folder.mkdir()
    copy = folder / "ftbench.db"
    shutil.copy(db, copy)
    connection = sqlite3.connect(copy)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()  # the last connection gone, so are the store's -wal and -shm files
    assert sorted(path.name for path in folder.iterdir()) == ["ftbench.db"]
    with read_only(folder):
        code, out, errors = _invoke(copy, "store", "sql", "SELECT count(*) AS n FROM runs", "--format", "json")
        assert code == 0 and json.loads(out) == [{"n": 4}], errors
        assert _invoke(copy, *HISTORY)[0] == 0
        assert _invoke(copy, *COMPARE)[0] == 0
        assert _invoke(copy, "store", "check")[0] == 0
        code, _, errors = _invoke(copy, "store", "add", str(runs[0]))
        assert code == 2 and len(errors) == 1 and "give a writable SQLite file" in errors[0]
        with pytest.raises(FtbenchError, match=f"cannot write the store {copy}: the folder {folder} cannot be"):
            run_indexer(folder / "run", recorded_task)


def test_a_store_with_changes_in_its_log_in_a_read_only_folder_is_refused_in_one_line(
    indexed: tuple[list[Path], Path], tmp_path: Path
) -> None:
    _, db = indexed
    folder = tmp_path / "artifact"
    folder.mkdir()
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE runs SET name = 'renamed'")
        writer.commit()
        for suffix in ("", "-wal"):
            shutil.copy(f"{db}{suffix}", folder / f"ftbench.db{suffix}")
    finally:
        writer.close()
    with read_only(folder):
        code, _, errors = _invoke(folder / "ftbench.db", *HISTORY)
    assert code == 2 and len(errors) == 1 and "its write-ahead log" in errors[0] and "not an ftbench" not in errors[0]


def test_ftbench_run_refuses_an_unwritable_store_before_any_work(
    indexed: tuple[list[Path], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, db = indexed
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FTBENCH_STORE", str(blocker / "ftbench.db"))
    with pytest.raises(FtbenchError, match=r"cannot write the store .* cannot be written"):
        run_indexer(tmp_path / "out", recorded_task)
    monkeypatch.setenv("FTBENCH_STORE", str(db))
    with read_only(db), pytest.raises(FtbenchError, match=f"cannot write the store {db} "):
        run_indexer(tmp_path / "out", recorded_task)
    run_indexer(tmp_path / "out", recorded_task)  # writable again: accepted


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", ["--timeout", "0.5"],
         "ran past --timeout 0.5 s"),
        ("SELECT length(randomblob(1000000000))", ["--max-mib", "8"], "larger than 8 MiB (--max-mib)"),
        ("SELECT a.prompt FROM samples a, samples b", ["--max-rows", "1000"], "more than 1000 rows (--max-rows)"),
        ("SELECT a.prompt, a.response, b.response FROM samples a, samples b", ["--max-mib", "1"],
         "more than 1 MiB (--max-mib)"),
        ("SELECT 1", ["--max-rows", "0"], "--max-rows 0 is not a positive number"),
    ],
)  # fmt: skip
def test_sql_is_bounded_in_time_rows_and_bytes(
    indexed: tuple[list[Path], Path], query: str, options: list[str], message: str
) -> None:
    _, db = indexed
    code, out, errors = _invoke(db, "store", "sql", query, *options, "--format", "csv")
    assert code == 2 and out == "" and len(errors) == 1 and message in errors[0], errors
    code, out, _ = _invoke(db, "store", "sql", "SELECT count(*) AS n FROM samples a, samples b", *options[:1],
                           "5", "--format", "csv")  # fmt: skip
    assert (code, out) == (0, f"n\n{256 * 256}\n")  # the connection is whole after a refusal


@pytest.mark.parametrize(
    ("url", "shown"),
    [("postgresql://u:pw@[::1/db", "postgresql://u@[::1/db"), ("postgresql://u@127.0.0.1:99999/db", ":99999/db")],
)
def test_a_malformed_store_url_is_one_line(url: str, shown: str) -> None:
    code, _, errors = _invoke(url, "store", "sql", "SELECT 1")
    assert code == 2 and len(errors) == 1 and shown in errors[0] and "postgresql://USER@HOST" in errors[0]
    assert "unexpected" not in errors[0] and "pw" not in errors[0]


def test_migrating_a_store_labelled_older_than_its_columns_completes(indexed: tuple[list[Path], Path]) -> None:
    _, db = indexed
    _, before, _ = _invoke(db, *HISTORY, "--format", "json")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE store_meta SET value = '1' WHERE name = 'schema_version'")
    code, out, errors = _invoke(db, "store", "migrate")
    assert code == 0 and f"schema version 1 -> {SCHEMA_VERSION}" in out, errors
    assert _invoke(db, *HISTORY, "--format", "json")[1] == before


def test_migration_seals_verified_rows_only(indexed: tuple[list[Path], Path]) -> None:
    _, db = indexed
    _, before, _ = _invoke(db, *COMPARE, "--format", "json")
    with sqlite3.connect(db) as connection:  # as a version-2 store, with one evaluation's scores forged
        connection.execute("ALTER TABLE evaluations DROP COLUMN seal")
        connection.execute("UPDATE store_meta SET value = '2' WHERE name = 'schema_version'")
    key = _forge(db, "UPDATE metrics SET value = 1.0 WHERE eval_id = {id}",
                 "UPDATE samples SET scores = '{{\"accuracy\":1.0}}' WHERE eval_id = {id}")  # fmt: skip
    assert "run `ftbench store migrate`" in _invoke(db, *HISTORY)[2][0]
    assert _invoke(db, "store", "migrate")[0] == 0
    for args in (HISTORY, COMPARE):
        code, _, errors = _invoke(db, *args)
        assert code == 2 and f"evaluation {key}" in errors[0] and "have no seal" in errors[0]
    code, out, _ = _invoke(db, "compare", "initial@fp32", "sft@fp32", "--task", "countdown", "--format", "json")
    assert code == 0 and json.loads(out)["metrics"][0]["baseline"] == 0.375  # the others: sealed when verified
    assert json.loads(before)["metrics"][0]["candidate"] != 1.0


def test_one_unreadable_run_does_not_stop_the_others(indexed: tuple[list[Path], Path], tmp_path: Path) -> None:
    runs, _ = indexed
    tree = tmp_path / "tree"
    shutil.copytree(runs[0], tree / "a" / "good")
    shutil.copytree(runs[1], tree / "b" / "bad")
    shutil.copytree(runs[2], tree / "c" / "edited")
    (tree / "b" / "bad" / RUN_FILE).write_text("{not json")
    edited = eval_path(tree / "c" / "edited", load_run(runs[2]).evaluations[0])
    edited.write_text(edited.read_text().replace("answer 2", "answer 3"))
    db = tmp_path / "tree.db"
    code, out, errors = _invoke(db, "store", "add", str(tree))
    assert code == 2 and "indexed 1 runs (0 unchanged): 2 evaluations added" in out
    assert "2 folders not indexed" in out and len(errors) == 2
    assert errors[0].startswith("not indexed: ") and f"{tree / 'b' / 'bad' / RUN_FILE}" in errors[0]
    assert str(edited) in errors[1]
    assert _invoke(db, "history", "--task", "countdown")[0] == 0
    code, _, errors = _invoke(tmp_path / "none.db", "store", "add", str(tree / "b"))
    assert code == 2 and len(errors) == 1 and not (tmp_path / "none.db").exists()


def test_dataframes_refuse_changed_rows(indexed: tuple[list[Path], Path]) -> None:
    from ftbench import evaluations_df, metrics_df, samples_df

    _, db = indexed
    assert len(samples_df(db, task="countdown")) == 8 * 32
    key = _forge(db, *FORGERIES["a response only"][0])
    assert len(metrics_df(db, task="countdown")) == 8  # its metrics are as indexed
    with pytest.raises(FtbenchError, match=f"evaluation {key}"):
        samples_df(db, task="countdown")
    _forge(db, *FORGERIES["metric only"][0])
    for frame in (evaluations_df, metrics_df):
        with pytest.raises(FtbenchError, match=f"evaluation {key}"):
            frame(db, precision="nf4")


def test_export_refuses_changed_rows(indexed: tuple[list[Path], Path], tmp_path: Path) -> None:
    _, db = indexed
    key = _forge(db, *FORGERIES["a response only"][0])
    code, _, errors = _invoke(db, "store", "export", str(tmp_path / "tidy"))
    assert code == 2 and len(errors) == 1 and f"evaluation {key}" in errors[0]


def test_migration_under_the_wrong_key_is_refused_before_sealing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTBENCH_RECORD_KEY", "ci-secret")
    db = tmp_path / "keyed.db"
    add_dirs(store_location(db), pipeline_runs(tmp_path / "results")[:1])
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE store_meta SET value = '2' WHERE name = 'schema_version'")
    monkeypatch.delenv("FTBENCH_RECORD_KEY")
    code, _, errors = _invoke(db, "store", "migrate")
    assert code == 2 and len(errors) == 1 and "set FTBENCH_RECORD_KEY to that key" in errors[0]
    monkeypatch.setenv("FTBENCH_RECORD_KEY", "ci-secret")
    assert _invoke(db, "store", "migrate")[0] == 0
    assert _invoke(db, *HISTORY)[0] == 0
