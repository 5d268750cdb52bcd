"""Runs spread over a local Ray cluster: the same records as a sequential run, resumed after a kill, the largest
groups first, and an unreachable address refused in one line before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.events import DoneEvent, Event, LoadingEvent, ProgressEvent
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.evaluation.cluster import _reference_groups
from ftbench.harness.evaluation.groups import expected_tokens, group_tokens, session_groups
from ftbench.harness.evaluation.plan import plan_run
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec
from tests.models import save_tiny_model

runner = CliRunner()
COUNTDOWN = {"name": "countdown", "options": {"source": "generated", "count": 3, "seed": 5}}


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory, smol_tokenizer_dir: Path) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny2") / "tiny2", smol_tokenizer_dir, seed=1)


def matrix(models: list[Path], out: Path, **changes: Any) -> dict[str, Any]:
    """2 checkpoints × fp32, bf16; Countdown at both precisions, ARC-Easy at fp32 only (larger fp32 groups)."""
    data: dict[str, Any] = {
        "checkpoints": [str(model) for model in models],
        "precisions": ["fp32", "bf16"],
        "tasks": [COUNTDOWN, {"name": "arc_easy", "precisions": ["fp32"]}],
        "generation": {"max_gen_toks": 6},
        "limit": 2,
        "batch_size": 2,
        "device": "cpu",
        "out": str(out),
    }
    return data | changes


@pytest.mark.slow
def test_cluster_run_equals_a_sequential_run_largest_groups_first(
    tiny_model_dir: Path, second_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [tiny_model_dir, second_model]
    sequential = run_spec(parse_spec(matrix(models, tmp_path / "sequential"), "test"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # --cluster local: ray.init(num_cpus=2)
    events: list[Event] = []
    spread = run_spec(parse_spec(matrix(models, tmp_path / "cluster", cluster="local"), "test"), on_event=events.append)
    assert sorted(spread.evaluated) == sorted(sequential.evaluated) and len(spread.evaluated) == 6
    for ours, theirs in zip(load_run_evals(tmp_path / "cluster"), load_run_evals(tmp_path / "sequential"), strict=True):
        assert ours.key == theirs.key and ours.samples == theirs.samples
        assert {k: v.value for k, v in ours.metrics.items()} == {k: v.value for k, v in theirs.metrics.items()}
    nodes = {event.node for event in events if isinstance(event, DoneEvent)}
    assert None not in nodes and len(nodes) == 1  # every record came from the cluster, each named by its node
    assert any(isinstance(event, ProgressEvent) and event.node in nodes and event.requests for event in events)
    loading = [event.variant for event in events if isinstance(event, LoadingEvent)]
    assert len(loading) == 4 and all(variant.endswith("@fp32") for variant in loading[:2])  # largest first


@pytest.mark.slow
def test_a_killed_cluster_run_resumes_from_what_it_stored(
    tiny_model_dir: Path, second_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    spec = tmp_path / "killed.json"
    spec.write_text(json.dumps(matrix([tiny_model_dir, second_model], out, cluster="local")))
    environment = os.environ | {"PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "ftbench.harness.app.cli", "run", "--spec", str(spec)]
    process = subprocess.Popen(command, start_new_session=True, env=environment)
    deadline = time.time() + 240
    while not list((out / "evals").glob("*.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 right after the first stored evaluation
    process.wait()
    stored = {path.stem for path in (out / "evals").glob("*.json")}
    assert not (out / "run.json").exists() and 1 <= len(stored) < 6
    resumed = run_spec(parse_spec(matrix([tiny_model_dir, second_model], out, cluster="local"), "test"))
    assert set(resumed.reused) == stored and len(resumed.evaluated) == 6 - len(stored)
    assert len(load_run_evals(out)) == 6


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("ray://127.0.0.1:9", "cannot reach Ray cluster ray://127.0.0.1:9"),
        ("ray://nowhere.invalid:10001", "cannot reach Ray cluster"),
        ("10.0.0.1:6379", "is not a Ray address; use auto, local or ray://HOST:PORT"),
    ],
)
def test_an_unreachable_or_malformed_cluster_is_refused(
    tiny_model_dir: Path, tmp_path: Path, address: str, message: str
) -> None:
    out = tmp_path / "out"
    args = ["run", "--checkpoint", str(tiny_model_dir), "--task", "countdown", "--cluster", address, "--out", str(out)]
    started = time.perf_counter()
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists() and time.perf_counter() - started < 30


def test_group_sizes_count_generated_tokens_and_scored_passes(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = parse_spec(matrix([tiny_model_dir], tmp_path / "out", generation={}), "test")
    plan = plan_run(spec)
    sizes = {(item.request.task, item.request.precision.value): expected_tokens(item) for item in plan}
    assert sizes[("countdown", "fp32")] == 2 * 256  # items × the task's own max_gen_toks
    assert sizes[("arc_easy", "fp32")] == 2 * 4  # items × choices, one pass each
    fp32, bf16 = session_groups(plan)
    assert group_tokens(fp32) == 2 * 256 + 2 * 4 and group_tokens(bf16) == 2 * 256
    limited = plan_run(parse_spec(matrix([tiny_model_dir], tmp_path / "out"), "test"))
    assert expected_tokens(limited[0]) == 2 * 6  # the run's max_gen_toks wins


def test_groups_wait_for_the_groups_holding_their_reference_variants() -> None:
    def item(key: str, reference: str | None = None) -> Any:
        return SimpleNamespace(request=SimpleNamespace(key=lambda: key), reference_key=reference)

    groups = [[item("a", "c")], [item("b", "b")], [item("c"), item("d", "a")], [item("e", "stored-earlier")]]
    assert _reference_groups(groups) == [{2}, set(), {0}, set()]  # 0 and 2 wait on each other: refused when run


def test_a_failure_the_cluster_reports_as_a_traceback_is_named_by_its_last_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    from ftbench.harness.core.errors import FtbenchError
    from ftbench.harness.evaluation.cluster import connect_cluster

    server_said = (
        'Initialization failure from server:\nTraceback (most recent call last):\n  File "proxier.py", line 765\n'
        "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.\n"
    )

    def refuse(**_: Any) -> None:
        raise ConnectionAbortedError(server_said)

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(FtbenchError) as caught:
        connect_cluster("auto", "auto")
    message = str(caught.value)
    assert "\n" not in message
    assert "Initialization failure from server: RuntimeError: Starting Ray client server failed" in message
