"""What users import is one collision-free namespace: a project of their own with ``tasks``, ``reports``,
``harness`` and ``trainers`` packages still gets ftbench's code, and ``import ftbench`` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHADOWS = ("tasks", "reports", "harness", "trainers")

SCRIPT = """
import sys
import tasks, reports
assert tasks.MINE and reports.MINE  # the user's own packages
from ftbench import FtbenchError, Precision, resolve_task
from ftbench.harness.evaluation.spec import parse_spec
spec = parse_spec({"checkpoints": ["x"], "tasks": ["countdown", "arc_easy"], "precisions": "fp32,nf4"}, "script")
assert [t.definition.headline for t in spec.tasks] == ["accuracy", "acc_norm"], spec.tasks
assert spec.precisions == [Precision.FP32, Precision.NF4]
assert resolve_task("countdown").name == "countdown"
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in ("tasks", "reports", "harness", "trainers")))
"""


def _user_project(root: Path) -> Path:
    for name in SHADOWS:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("MINE = True\n")
    (root / "script.py").write_text(SCRIPT)
    return root


def test_a_script_beside_its_own_tasks_and_reports_packages_uses_ftbench(tmp_path: Path) -> None:
    project = _user_project(tmp_path)
    result = subprocess.run(
        [sys.executable, "script.py"], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok ['reports', 'tasks']"  # only the user's own, none of ours under those names


def test_the_command_line_runs_from_such_a_directory(tmp_path: Path) -> None:
    project = _user_project(tmp_path)
    command = [sys.executable, "-m", "ftbench.harness.app.cli", "tasks"]  # -m puts the directory first on sys.path
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "countdown (headline: accuracy)" in result.stdout and "arc_easy (headline: acc_norm)" in result.stdout


def test_importing_ftbench_loads_no_heavy_library() -> None:
    code = "import sys, ftbench; print(sorted({'torch', 'transformers', 'lm_eval', 'ray'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_public_name_resolves() -> None:
    import ftbench

    assert all(getattr(ftbench, name) is not None for name in ftbench.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ftbench.nope  # type: ignore[attr-defined]


def test_importing_a_code_folder_by_its_bare_name_fails_in_one_line() -> None:
    root = Path(__file__).resolve().parents[1]
    for folder in SHADOWS:
        result = subprocess.run(
            [sys.executable, "-c", f"import {folder}"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [
            f"{folder} is ftbench's code: import it as ftbench.{folder} (or use `from ftbench import ...`)"
        ]


MISUSE = """
from ftbench import EvalRequest, FtbenchCallback, Task

def label(task: Task) -> int:
    return task.headline

request: EvalRequest = EvalRequest(checkpoint=3)
callback: FtbenchCallback = FtbenchCallback(None, "suite.yaml", "out", every="2")
"""


def test_mypy_sees_the_types_of_the_public_names(tmp_path: Path) -> None:
    from mypy import api

    snippet = tmp_path / "snippet.py"
    snippet.write_text(MISUSE)
    root = Path(__file__).resolve().parents[1]
    stdout, _, status = api.run([str(snippet), "--no-incremental", "--follow-imports=silent", "--cache-dir=/dev/null"])
    assert status == 1, stdout
    assert 'Incompatible return value type (got "str", expected "int")' in stdout
    assert 'Argument "checkpoint" to "EvalRequest" has incompatible type "int"' in stdout
    assert 'Argument "every" to "FtbenchCallback" has incompatible type "str"' in stdout
    assert root.is_dir()


def test_the_store_is_a_dataframe_for_notebooks(tmp_path: Path) -> None:
    from ftbench import evaluations_df, metrics_df, samples_df
    from ftbench.harness.index.connection import store_location
    from tests.store_records import add_dirs, pipeline_runs

    location = store_location(tmp_path / "s.db")
    add_dirs(location, pipeline_runs(tmp_path / "results"))
    evaluations = evaluations_df(location.target)
    assert len(evaluations) > 1 and {"key", "task", "checkpoint", "precision", "run"} <= set(evaluations.columns)
    only = evaluations_df(location.target, precision="nf4")
    assert len(only) and set(only["precision"]) == {"nf4"} and len(only) < len(evaluations)
    metrics = metrics_df(location.target, task="countdown", checkpoint="d*")
    assert len(metrics) and set(metrics["task"]) == {"countdown"} and all(metrics["checkpoint"].str.startswith("d"))
    assert {"metric", "value", "low", "high"} <= set(metrics.columns)
    samples = samples_df(location.target, task="countdown")
    assert "score_accuracy" in samples.columns and samples["score_accuracy"].isin([0.0, 1.0]).all()
    assert len(samples) == int(evaluations_df(location.target, task="countdown")["n_samples"].sum())
