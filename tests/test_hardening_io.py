"""Issue 23, the I/O side: a command line that imports the heavy libraries only when a command needs them, caps on
settings files, OS errors named, decided gates that a step summary cannot undo, names escaped in every markdown
file, and no scratch or empty folders left by killed or refused work."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import write_atomic
from ftbench.harness.engines.scratch import remove_abandoned
from ftbench.reports.summary import write_summary
from tests.records import make_record, write_results
from tests.test_hardening import refused

runner = CliRunner()
HEAVY = ("torch", "transformers", "lm_eval", "ray", "datasets", "trl", "peft", "vllm", "scipy", "nltk")
PAYLOAD = '<img src=x onerror="alert(1)">\nnext | line'

LIGHT_COMMANDS = """
import sys
from ftbench.harness.app.cli import app
heavy = {heavy!r}
print("import", [m for m in heavy if m in sys.modules])
for args in {commands!r}:
    try:
        app(args)
    except SystemExit:
        pass
    print(args[0], [m for m in heavy if m in sys.modules])
"""


def test_the_command_line_imports_no_heavy_library_to_answer_help_tasks_or_a_refusal(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    commands = [
        ["--help"],
        ["tasks"],
        ["run", "--spec", f"{missing}.yaml"],
        ["gate", "--baseline", missing, "--candidate", missing],
        ["baseline", "update", missing, "--name", ".."],
        ["results", missing],
        ["report", missing],
        ["train", "sft", "--config", f"{missing}.yaml"],
        ["pipeline", "--config", f"{missing}.yaml"],
    ]
    script = LIGHT_COMMANDS.format(heavy=HEAVY, commands=commands)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    elapsed = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.endswith("]")]
    assert len(lines) == len(commands) + 1, done.stdout + done.stderr
    assert all(line.endswith(" []") for line in lines), lines
    assert elapsed < 30  # about 2 s on an idle 2-core machine; the bound only catches a heavy import


def test_oversized_and_alias_bomb_settings_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * 120_000)
    started = time.perf_counter()
    refused(["run", "--spec", str(big)], "over the 1 MiB a settings file may be")
    refused(["gate", "--baseline", str(tmp_path), "--candidate", str(tmp_path), "--policy", str(big)], "holds no")
    assert time.perf_counter() - started < 20
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]  # 10**11 values
    bomb.write_text("\n".join(lines) + "\n")
    refused(["pipeline", "--config", str(bomb)], "more than 100 aliases")


def test_a_full_disk_names_the_path_and_the_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "record.json"
    with pytest.raises(FtbenchError, match=r"cannot write .*record.json \(No space left on device; it needs 1.0 MiB\)"):
        write_atomic(target, "x" * 2**20)
    assert list(tmp_path.iterdir()) == []


def test_bad_numbers_are_refused_in_one_line(tmp_path: Path) -> None:
    results = write_results(tmp_path / "r", [make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0] * 10})])
    for delta in ("nan", "inf", "-0.1"):
        refused(["power", "--results", str(results), "--delta", delta], "must be a positive, finite change")
    args = ["run", "--checkpoint", str(tmp_path), "--task", "arc_easy", "--out", str(tmp_path / "out")]
    refused([*args, "--seed", str(2**32)], "seed: Input should be less than 4294967296")
    assert not (tmp_path / "out").exists()


def test_a_failing_step_summary_does_not_change_a_decided_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    same = write_results(tmp_path / "same", [make_record("a", "initial", "fp32", {"accuracy": [1.0] * 30})])
    worse = write_results(tmp_path / "worse", [make_record("b", "sft", "fp32", {"accuracy": [0.0] * 30})])
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a folder: cannot be appended to
    for candidate, code in ((same, 0), (worse, 1)):
        result = runner.invoke(app, ["gate", "--baseline", str(same), "--candidate", str(candidate)])
        assert result.exit_code == code, result.output
        assert "warning: cannot append the summary to GITHUB_STEP_SUMMARY" in result.stderr
        assert "the decision stands" in result.stderr


def _payload_results(tmp_path: Path) -> Path:
    record = make_record("a", PAYLOAD, "fp32", {"accuracy": [1.0, 0.0] * 10})
    record = record.model_copy(update={"variant": record.variant.model_copy(update={"notes": [PAYLOAD]})})
    return write_results(tmp_path / "r", [record], name=PAYLOAD)


def _table_lines_intact(markdown: str) -> bool:
    """Every table row has as many cells as its header."""
    counts: list[int] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            counts.append(len(line.replace("\\|", "").split("|")))
        elif counts:
            if len(set(counts)) != 1:
                return False
            counts = []
    return len(set(counts)) <= 1


def test_names_are_escaped_in_every_markdown_file(tmp_path: Path) -> None:
    results = _payload_results(tmp_path)
    summary = write_summary(results).read_text()
    result = runner.invoke(app, ["report", str(results), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "rep" / "report.md").read_text()
    odd = tmp_path / "cand<b>"
    odd.mkdir()
    os.symlink(results / "run.json", odd / "run.json")
    os.symlink(results / "evals", odd / "evals")
    step_summary = tmp_path / "step-summary.md"
    gate_args = ["gate", "--baseline", str(results), "--candidate", str(odd)]
    gate = runner.invoke(app, gate_args, env={"GITHUB_STEP_SUMMARY": str(step_summary)})
    assert gate.exit_code in (0, 2), gate.output
    for markdown in (summary, report, step_summary.read_text()):
        assert "<img" not in markdown and "<b>" not in markdown, markdown
        assert "&lt;img" in markdown or "&lt;b&gt;" in markdown, markdown
        assert _table_lines_intact(markdown), markdown
        assert "\nnext" not in markdown
    assert "cand<b>" in gate.stdout and "&lt;" not in gate.stdout and _table_lines_intact(gate.stdout)  # the terminal


def test_a_killed_export_leaves_no_scratch_on_the_next_run(tmp_path: Path) -> None:
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom ftbench.harness.engines.scratch import scratch_dir\n"
        "with scratch_dir(Path(sys.argv[1])) as folder:\n"
        "    (Path(folder) / 'f16.gguf').write_bytes(b'x' * 4096)\n    print(folder, flush=True)\n    time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    scratch = Path(process.stdout.readline().strip())
    live = tmp_path / f".export-{os.getpid()}-mine"
    live.mkdir()
    assert remove_abandoned(tmp_path) == [] and scratch.is_dir()  # its process is alive
    process.send_signal(signal.SIGKILL)
    process.wait()
    (tmp_path / "model.gguf").write_bytes(b"keep")
    assert remove_abandoned(tmp_path) == [scratch]
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "model.gguf"]


def test_a_corrupt_gguf_leaves_no_results_directory(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(2000))
    out = tmp_path / "out"
    args = ["run", "--checkpoint", str(bad), "--precision", "gguf", "--task", "arc_easy", "--limit", "2"]
    refused([*args, "--device", "cpu", "--out", str(out)], "is not a readable GGUF file")
    assert not out.exists()
