"""Run specs: validation with one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.evaluation.spec import load_spec, parse_spec


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_full_spec_with_defaults_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "checkpoints: [a, b]\nprecisions: [fp32, nf4]\ntasks:\n  - countdown\n  - name: arc_easy\n    limit: 3\n"
        "generation:\n  max_gen_toks: 64\n",
    )
    spec = load_spec(path, {"seed": 7, "out": None})
    assert spec.seed == 7
    assert spec.out == Path("results/latest")
    assert [t.limit for t in spec.tasks] == [None, 3]
    assert spec.generation.max_gen_toks == 64
    assert spec.task_limit(spec.tasks[0]) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "checkpoints: [a]\ntasks: [countdown]\nprecison: [fp32]\n",
            r"precison: unknown key; valid keys are .*precisions",
        ),
        (
            "checkpoints: [a]\ntasks: [countdown]\ngeneration: {max_tokens: 5}\n",
            r"generation.max_tokens: unknown key; valid keys are .*max_gen_toks",
        ),
        (
            "checkpoints: [a]\ntasks: [{name: countdown, generation: {max_tokens: 5}}]\n",
            r"tasks\.0\.generation\.max_tokens: unknown key; valid keys are do_sample, max_gen_toks",
        ),
        ("checkpoints: [a]\ntasks: [nope]\n", r"unknown task 'nope'; choose from .*countdown"),
        ("checkpoints: [a]\ntasks: [countdown]\nprecisions: [int3]\n", r"unknown precision 'int3'"),
        ("tasks: [countdown]\n", r"give checkpoints"),
        ("checkpoints: [a]\ntasks: [{name: countdown, limit: 0}]\n", r"tasks.0.limit"),
        ("- just\n- a list\n", r"must hold a mapping"),
        ("checkpoints: [a\n", r"is not valid YAML"),
    ],
)
def test_bad_specs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FtbenchError, match=message) as caught:
        load_spec(write(tmp_path, text))
    assert "\n" not in str(caught.value)
    assert str(tmp_path / "spec.yaml") in str(caught.value)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(FtbenchError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_flags_alone_make_a_spec() -> None:
    spec = parse_spec({"checkpoints": ["x"], "tasks": ["countdown"], "precisions": ["fp32", "fp32"]}, "command line")
    assert spec.precisions == ["fp32"]


def test_a_task_flag_picks_the_files_own_entry_with_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "checkpoints: [a]\ntasks:\n  - {name: countdown, limit: 16, generation: {max_gen_toks: 128}}\n"
        "  - {name: arc_easy, limit: 3}\n"
    )
    spec = load_spec(path, {"tasks": ["countdown", "arc_challenge"]})
    assert [t.name for t in spec.tasks] == ["countdown", "arc_challenge"]
    assert spec.tasks[0].limit == 16 and spec.task_generation(spec.tasks[0])["max_gen_toks"] == 128
    assert spec.tasks[1].limit is None and "max_gen_toks" not in spec.task_generation(spec.tasks[1])
    limited = load_spec(path, {"tasks": ["countdown"], "limit": 4})  # a limit flag still replaces the file's
    assert limited.task_limit(limited.tasks[0]) == 4 and limited.tasks[0].limit is None
