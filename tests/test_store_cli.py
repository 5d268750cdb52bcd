"""The store's commands: answers in md, csv and json, and bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import eval_path, load_run_evals
from ftbench.harness.index.schema import SCHEMA_VERSION
from tests.store_records import PAYLOAD, pipeline_runs

runner = CliRunner()


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[list[Path], Path]:
    runs = pipeline_runs(tmp_path / "results")
    db = tmp_path / "results" / "ftbench.db"
    result = runner.invoke(app, ["store", "add", *map(str, runs), "--store", str(db)])
    assert result.exit_code == 0, result.output
    assert "indexed 4 runs (0 unchanged): 8 evaluations added" in result.stdout
    return runs, db


def test_adding_the_results_folder_finds_every_run_below(indexed: tuple[list[Path], Path]) -> None:
    _, db = indexed
    result = runner.invoke(app, ["store", "add", str(db.parent), "--store", str(db)])
    assert result.exit_code == 0 and "indexed 0 runs (4 unchanged)" in result.stdout


def test_history_in_three_formats(indexed: tuple[list[Path], Path]) -> None:
    _, db = indexed
    base = ["history", "--task", "countdown", "--precision", "fp32", "--store", str(db)]
    markdown = runner.invoke(app, [*base, "--format", "md"])
    assert markdown.exit_code == 0, markdown.output
    assert "countdown accuracy: 4 evaluations" in markdown.stdout and "0.375 [" in markdown.stdout
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*base, "--format", "csv"]).stdout)))
    assert [row["stage"] for row in rows] == ["initial", "sft", "dpo", "rloo"]
    points = json.loads(runner.invoke(app, [*base, "--format", "json"]).stdout)
    assert [p["value"] for p in points] == [0.375, 0.625, 0.875, 0.875] and points[0]["low"] < 0.375


def test_compare_shows_flips_and_both_responses(indexed: tuple[list[Path], Path]) -> None:
    _, db = indexed
    args = ["compare", "initial@fp32", "sft@nf4", "--task", "countdown", "--store", str(db)]
    markdown = runner.invoke(app, args)
    assert markdown.exit_code == 0, markdown.output
    assert "| accuracy | 32 |" in markdown.stdout and "mcnemar_exact" in markdown.stdout
    assert "wrong → right" in markdown.stdout and "right → wrong" in markdown.stdout
    assert "initial@fp32 answer 1" in markdown.stdout and PAYLOAD in markdown.stdout
    data = json.loads(runner.invoke(app, [*args, "--format", "json", "--items", "0"]).stdout)
    metric = data["metrics"][0]
    assert metric["gained"] + metric["lost"] == len(data["changed_items"]) > 0
    assert {item["change"] for item in data["changed_items"]} == {"gained", "lost"}
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).stdout)))
    assert rows[0]["metric"] == "accuracy" and float(rows[0]["p_value"]) == pytest.approx(metric["p_value"])


def test_sql_check_and_migrate(indexed: tuple[list[Path], Path]) -> None:
    runs, db = indexed
    query = runner.invoke(app, ["store", "sql", "SELECT count(*) AS n FROM samples", "--store", str(db), "--format",
                                "json"])  # fmt: skip
    assert json.loads(query.stdout) == [{"n": 256}]
    clean = runner.invoke(app, ["store", "check", "--store", str(db)])
    assert clean.exit_code == 0 and "checked 8 indexed files" in clean.stdout
    record = load_run_evals(runs[0])[0]
    path = eval_path(runs[0], record.key)
    path.write_text(path.read_text().replace("initial@fp32 answer 3", "initial@fp32 answer 4"))
    dirty = runner.invoke(app, ["store", "check", "--store", str(db)])
    assert dirty.exit_code == 2 and dirty.stdout.startswith(f"edited: {path}")
    assert (
        f"at schema version {SCHEMA_VERSION} already"
        in runner.invoke(app, ["store", "migrate", "--store", str(db)]).stdout
    )


def test_export_writes_tidy_parquet(indexed: tuple[list[Path], Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    _, db = indexed
    result = runner.invoke(app, ["store", "export", str(tmp_path / "tidy"), "--store", str(db)])
    assert result.exit_code == 0, result.output
    metrics = pq.read_table(tmp_path / "tidy" / "metrics.parquet").to_pylist()
    samples = pq.read_table(tmp_path / "tidy" / "samples.parquet").to_pylist()
    scores = pq.read_table(tmp_path / "tidy" / "scores.parquet").to_pylist()
    assert len(metrics) == 8 and len(samples) == len(scores) == 8 * 32
    first = next(m for m in metrics if m["checkpoint"] == "initial" and m["precision"] == "fp32")
    assert (first["metric"], first["value"], first["n"]) == ("accuracy", 0.375, 32) and first["low"] < 0.375
    assert sum(s["value"] for s in scores if s["key"] == first["key"]) == 12
    assert PAYLOAD in {s["response"] for s in samples}


def _newer_copy(db: Path) -> Path:
    """A copy of the store as a later ftbench (schema version 7) would have written it."""
    newer = db.parent / "newer.db"
    with sqlite3.connect(db) as source, sqlite3.connect(newer) as copy:
        source.backup(copy)
        copy.execute("UPDATE store_meta SET value = '7' WHERE name = 'schema_version'")
    return newer


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "--task", "countdown", "--store", "postgresql://nobody@127.0.0.1:1/nowhere"],
         "cannot reach the store postgresql://nobody@127.0.0.1:1/nowhere"),
        (["store", "add", "{run}", "--store", "postgresql://nobody:secret@127.0.0.1:1/nowhere"],
         "cannot reach the store postgresql://nobody@127.0.0.1:1/nowhere"),
        (["history", "--task", "countdown", "--store", "{newer}"], "schema version 7, newer than this ftbench"),
        (["store", "add", "{run}", "--store", "{newer}"], "schema version 7, newer than this ftbench"),
        (["compare", "0123abcd", "sft@fp32", "--task", "countdown", "--store", "{db}"], "no evaluation '0123abcd'"),
        (["history", "--task", "arc_easy", "--store", "{db}"], "holds no evaluation of task 'arc_easy'"),
        (["history", "--task", "countdown", "--store", "{missing}"], "no store at"),
        (["store", "add", "{missing_run}", "--store", "{missing}"], "holds no run.json"),
        (["store", "sql", "DROP TABLE samples", "--store", "{db}"], "the query failed"),
        (["store", "add", "{run}", "--store", "mysql://x/y"], "neither a file nor a postgresql:// URL"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(indexed: tuple[list[Path], Path], args: list[str], message: str) -> None:
    runs, db = indexed
    missing = db.parent / "missing.db"
    newer = _newer_copy(db) if any("{newer}" in a for a in args) else None
    before = db.read_bytes()
    values = {"run": runs[0], "db": db, "newer": newer, "missing": missing, "missing_run": db.parent / "nothing"}
    result = runner.invoke(app, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert "secret" not in result.stderr
    assert not missing.exists() and db.read_bytes() == before
    if newer is not None:
        with sqlite3.connect(newer) as connection:
            assert connection.execute("SELECT value FROM store_meta").fetchone() == ("7",)


def test_ftbench_run_adds_to_the_store_and_refuses_an_unreachable_one(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftbench.harness.app.runs import run_and_store
    from ftbench.harness.evaluation.spec import parse_spec

    spec = {"checkpoints": [str(tiny_model_dir)], "precisions": ["fp32"], "limit": 2, "batch_size": 2,
            "tasks": [{"name": "countdown", "options": {"source": "generated", "count": 2, "seed": 5}}],
            "generation": {"max_gen_toks": 4}, "device": "cpu", "out": str(tmp_path / "results" / "mine")}  # fmt: skip
    monkeypatch.setenv("FTBENCH_STORE", "postgresql://nobody@127.0.0.1:1/nowhere")
    with pytest.raises(FtbenchError, match="cannot reach the store"):
        run_and_store(parse_spec(spec, "test"))
    assert not (tmp_path / "results").exists()  # refused before any work
    monkeypatch.delenv("FTBENCH_STORE")
    outcome = run_and_store(parse_spec(spec, "test"))
    db = tmp_path / "results" / "ftbench.db"
    history = runner.invoke(app, ["history", "--task", "countdown", "--store", str(db), "--format", "json"])
    assert [point["key"] for point in json.loads(history.stdout)] == outcome.run.evaluations
