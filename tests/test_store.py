"""The results store on SQLite: idempotent adds, concurrent writers, history, comparisons equal to the report's,
migration, and records edited after indexing."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import eval_path, load_run, load_run_evals, save_eval
from ftbench.harness.index.check import check_store
from ftbench.harness.index.comparison import compare_stored
from ftbench.harness.index.connection import StoreLocation, open_store, store_location
from ftbench.harness.index.history import metric_history
from ftbench.harness.index.indexing import add_results, run_indexer
from ftbench.harness.index.lookup import find_evaluations, load_records
from ftbench.harness.index.schema import SCHEMA_VERSION, ensure_schema, opened_store
from ftbench.harness.index.sql import read_only_query
from ftbench.reports.analysis import analyse
from ftbench.reports.variants import Variant
from ftbench.tasks.registry import recorded_task
from tests.records import make_record, with_request, write_results
from tests.store_records import COUNTS, PAYLOAD, add_dirs, add_shuffled, pipeline_runs


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return pipeline_runs(tmp_path / "results")


def counts(location: StoreLocation) -> tuple[int, ...]:
    with opened_store(location, read_only=True) as store:
        return tuple(store.execute(COUNTS)[0])


def test_adding_twice_changes_nothing(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "results" / "ftbench.db")
    with opened_store(location) as store:
        first = add_results(store, runs, recorded_task)
        again = add_results(store, runs, recorded_task)
    assert (first.runs, first.added, first.linked) == (4, 8, 0)
    assert (again.runs, again.unchanged, again.added) == (0, 4, 0)
    assert counts(location) == (4, 8, 8 * 32, 8, 8)
    copy = tmp_path / "copy"  # the same records in another directory: linked, not duplicated
    copy.mkdir()
    for item in runs[0].iterdir():
        (copy / item.name).symlink_to(item)
    add_dirs(location, [copy])
    assert counts(location) == (5, 8, 8 * 32, 10, 8)


def test_rebuilt_records_equal_the_stored_json(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    stored = {record.key: record for run in runs for record in load_run_evals(run)}
    with opened_store(location, read_only=True) as store:
        rebuilt = load_records(store, [find_evaluations(store, key)[0] for key in stored])
    assert {record.key: record for record in rebuilt} == stored


def test_four_writers_at_once_lose_nothing(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    context = multiprocessing.get_context("fork")
    writers = [
        context.Process(target=add_shuffled, args=(location.target, [str(r) for r in runs], seed)) for seed in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [writer.exitcode for writer in writers] == [0, 0, 0, 0]
    assert counts(location) == (4, 8, 8 * 32, 8, 8)
    with sqlite3.connect(location.target) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_history_follows_the_pipeline_with_the_reports_intervals(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, list(reversed(runs)))
    with opened_store(location, read_only=True) as store:
        points = metric_history(store, "countdown", recorded_task, precision="fp32")
        steps = metric_history(store, "countdown", recorded_task, checkpoint="d*", order="step")
    assert [p.stage for p in points] == ["initial", "sft", "dpo", "rloo"]
    assert [p.value for p in points] == [0.375, 0.625, 0.875, 0.875]
    assert [(p.checkpoint, p.precision) for p in steps] == [("dpo", "fp32"), ("dpo", "nf4")]
    training = [make_record(f"w{step}", f"checkpoint-{step}", "fp32", {"accuracy": [1.0, 0.0]}) for step in (500, 50)]
    add_dirs(location, [write_results(tmp_path / "steps", training)])
    with opened_store(location, read_only=True) as store:
        by_step = metric_history(store, "countdown", recorded_task, checkpoint="checkpoint-*", order="step")
    assert [(p.checkpoint, p.step) for p in by_step] == [("checkpoint-50", 50), ("checkpoint-500", 500)]
    analysis = analyse(runs)
    for point in points:
        cell = analysis.cells[("countdown", "accuracy", Variant(point.checkpoint, point.stage, point.precision))]
        assert cell.interval is not None and (point.low, point.high) == (cell.interval.low, cell.interval.high)


def test_compare_gives_the_reports_numbers(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    with opened_store(location, read_only=True) as store:
        result = compare_stored(store, "initial@fp32", "sft@nf4", recorded_task, task="countdown")
    report = {(d.pair.reference.label, d.variant.label): d for d in analyse(runs).deltas}
    expected = report[("initial@fp32", "sft@nf4")].comparison
    ours = result.metrics[0].comparison
    assert ours == expected and ours is not None and ours.flips is not None
    flipped = [item for item in result.items if item.change != "same"]
    assert [i.doc_id for i in flipped if i.change == "gained"] == ours.flips.gained
    assert [i.doc_id for i in flipped if i.change == "lost"] == ours.flips.lost
    assert len(ours.flips.gained) > 0 and len(ours.flips.lost) > 0
    assert {i.change for i in result.items[: len(flipped)]} <= {"gained", "lost"}  # flipped first
    payload = next(i for i in result.items if i.doc_id == 1)
    assert (payload.baseline_response, payload.candidate_response) == ("initial@fp32 answer 1", PAYLOAD)


def test_lookup_refuses_unknown_and_ambiguous_names(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    with opened_store(location, read_only=True) as store:
        with pytest.raises(FtbenchError, match="no evaluation 'abcdef'"):
            find_evaluations(store, "abcdef")
        with pytest.raises(FtbenchError, match="give its task with --task"):
            find_evaluations(store, "sft@fp32")
        with pytest.raises(FtbenchError, match="no evaluation of countdown at 'sft@int8'"):
            find_evaluations(store, "sft@int8", "countdown")
        key = find_evaluations(store, "sft@fp32", "countdown")[0].key
        assert find_evaluations(store, key[:8].upper())[0].key == key


def _as_version_1(location: StoreLocation) -> None:
    """Turn a current store into the layout of schema version 1 (no metric intervals)."""
    with sqlite3.connect(location.target) as connection:
        connection.execute("ALTER TABLE metrics DROP COLUMN low")
        connection.execute("ALTER TABLE metrics DROP COLUMN high")
        connection.execute("UPDATE store_meta SET value = '1' WHERE name = 'schema_version'")


def test_migration_from_version_1_restores_the_intervals(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    query = "SELECT eval_id, metric, low, high FROM metrics ORDER BY eval_id"
    with opened_store(location, read_only=True) as store:
        before = store.execute(query)
    _as_version_1(location)
    with pytest.raises(FtbenchError, match="run `ftbench store migrate`"), opened_store(location, read_only=True):
        pass
    store = open_store(location)
    try:
        assert ensure_schema(store, recorded_task) == 1
        assert store.execute(query) == before
        assert store.execute("SELECT value FROM store_meta")[0][0] == str(SCHEMA_VERSION)
    finally:
        store.close()


def test_a_newer_store_is_refused(runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs[:1])
    with sqlite3.connect(location.target) as connection:
        connection.execute("UPDATE store_meta SET value = '99' WHERE name = 'schema_version'")
    for read_only in (True, False):
        newer = pytest.raises(FtbenchError, match="schema version 99, newer than this ftbench reads")
        with newer, opened_store(location, read_only=read_only):
            pass
    monkeypatch.setenv("FTBENCH_STORE", location.target)
    with pytest.raises(FtbenchError, match="newer than this ftbench reads"):  # `ftbench run` fails before any work
        run_indexer(runs[0], recorded_task)


def test_check_finds_records_changed_after_indexing(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    records = load_run_evals(runs[1])
    edited = eval_path(runs[1], records[0].key)
    data = json.loads(edited.read_text())
    data["samples"][0]["response"] = "a better answer"
    edited.write_text(json.dumps(data, indent=1))
    save_eval(runs[2], load_run_evals(runs[2])[0].model_copy(update={"created_at": "2026-02-01T00:00:00+00:00"}))
    eval_path(runs[3], load_run_evals(runs[3])[1].key).unlink()
    with opened_store(location, read_only=True) as store:
        checked, findings = check_store(store)
    assert checked == 8
    assert sorted((f.change, Path(f.run).name) for f in findings) == [
        ("edited", "run-sft"),
        ("missing", "run-rloo"),
        ("rewritten", "run-dpo"),
    ]
    assert "changed after ftbench wrote it" in next(f.detail for f in findings if f.change == "edited")


def test_rewritten_records_replace_their_old_content(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    records = load_run_evals(runs[0])
    newer = records[0].model_copy(update={"created_at": "2026-03-01T00:00:00+00:00"})
    write_results(runs[0], [newer, *records[1:]], name="initial")  # as `ftbench run --force` rewrites it
    add_dirs(location, [runs[0]])
    assert counts(location) == (4, 8, 8 * 32, 8, 8)
    with opened_store(location, read_only=True) as store:
        found = store.execute("SELECT created_at FROM evaluations WHERE key = ?", (newer.key,))
    assert found == [("2026-03-01T00:00:00+00:00",)]


def test_sql_is_read_only(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    add_dirs(location, runs)
    with opened_store(location, read_only=True) as store:
        result = read_only_query(store, "SELECT task, count(*) AS n FROM evaluations GROUP BY task")
        assert (result.columns, result.rows) == (["task", "n"], [("countdown", 8)])
        for writing in ("DELETE FROM samples", f"ATTACH DATABASE '{tmp_path / 'x.db'}' AS x",
                        f"VACUUM INTO '{tmp_path / 'y.db'}'", "SELECT 1; DELETE FROM samples"):  # fmt: skip
            with pytest.raises(FtbenchError, match="the query failed"):
                read_only_query(store, writing)
    assert counts(location)[2] == 8 * 32
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "y.db").exists()


def test_run_indexer_adds_beside_the_results(runs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTBENCH_STORE", raising=False)
    run_indexer(runs[0], recorded_task)(load_run(runs[0]), load_run_evals(runs[0]))
    assert counts(store_location(runs[0].parent / "ftbench.db"))[:2] == (1, 2)
    monkeypatch.setenv("FTBENCH_STORE", "none")
    run_indexer(runs[1], recorded_task)(load_run(runs[1]), load_run_evals(runs[1]))
    assert counts(store_location(runs[0].parent / "ftbench.db"))[:2] == (1, 2)


@pytest.mark.slow  # two worker processes start (seconds each)
def test_worker_processes_index_what_one_process_does(runs: list[Path], tmp_path: Path) -> None:
    tables = ["SELECT key, digest, task, step, n_samples, header FROM evaluations ORDER BY key",
              "SELECT metric, value, low, high FROM metrics ORDER BY value, metric",
              "SELECT doc_id, response, scores FROM samples ORDER BY response"]  # fmt: skip
    dumps = []
    for workers in (1, 2):
        location = store_location(tmp_path / f"{workers}.db")
        with opened_store(location) as store:
            add_results(store, runs, recorded_task, workers=workers)
            dumps.append([store.execute(query) for query in tables])
    assert dumps[0] == dumps[1] and len(dumps[0][2]) == 8 * 32


def test_compare_notes_settings_that_differ(runs: list[Path], tmp_path: Path) -> None:
    location = store_location(tmp_path / "s.db")
    base = load_run_evals(runs[0])[0]
    other = with_request(base, limit=16, weights_hash="other")
    add_dirs(location, [runs[0], write_results(tmp_path / "other", [other])])
    with opened_store(location, read_only=True) as store:
        result = compare_stored(store, base.key, other.key, recorded_task)
    assert result.notes == ["they differ in limit (8 vs 16); only the items both share are compared"]
