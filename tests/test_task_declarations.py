"""Each task declares its metrics once: its lm-eval YAML list, its ``Task.metrics`` and the keys its hooks (or its
judge's scoring) return must agree; judged and generic code never names a particular task."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import SampleRecord
from ftbench.tasks.base import Task, TaskOptions
from ftbench.tasks.judging import JudgedItems
from ftbench.tasks.registry import TASKS, resolve_task

ROOT = Path(__file__).resolve().parents[1]
RESULTS = {"generate_until": ["Let me think. <answer> 1 + 2 </answer> A"], "loglikelihood_rolling": [-42.0]}
"""A plausible model result per output type, as lm-eval hands it to ``process_results``."""


def _yaml_metrics(task: Task) -> list[str]:
    return [entry["metric"] for entry in task.lm_eval_definition().get("metric_list") or []]


def _yaml_lines(path: Path) -> list[str]:
    """A task YAML's lines, then those of the file it includes (its own keys come first, as lm-eval merges)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    included = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("include:")), None)
    return lines + (_yaml_lines(path.parent / included) if included else [])


def _hook(task: Task, key: str) -> Any:
    """The function the task's YAML names under ``key`` (``!function task.NAME``), if any."""
    line = next((line for line in _yaml_lines(task.folder / f"{task.name}.yaml") if line.startswith(f"{key}:")), None)
    if line is None:
        return None
    module = importlib.import_module(f"ftbench.tasks.{task.folder.name}.task")
    return getattr(module, line.split("task.", 1)[1].strip())


def _judged_metrics(task: Task) -> set[str]:
    if task.judging is None:
        return set()
    samples = [
        SampleRecord(doc_id=i, doc_hash=str(i), prompt="p", response="a b c"[: 2 * i + 1], target="t", scores={})
        for i in range(3)
    ]
    scored = task.judging.score(JudgedItems(samples, ["x y", "z", "w v u"], [1.0, 0.5, 0.0], [0.3, 0.0, -0.2]))
    assert all("win" in s.scores for s in scored.samples)
    return set(scored.metrics)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_yaml_hooks_and_declaration_agree(name: str) -> None:
    task = TASKS[name]
    listed = _yaml_metrics(task)
    judged = _judged_metrics(task)
    assert len(listed) == len(set(listed)), "a metric listed twice in the YAML"
    assert set(listed) | judged == set(task.metrics), "declare each metric in Task.metrics and nowhere else"
    assert not set(listed) & judged, "a metric computed by lm-eval and by the judge"
    assert task.headline in task.metrics
    hook = _hook(task, "process_results")
    if hook is not None:
        doc = _hook(task, "custom_dataset")()["test"][0]  # the first row lm-eval would score
        returned = hook(doc, RESULTS[task.output])
        assert set(returned) == set(listed), "process_results returns exactly the YAML's metrics"


def test_a_custom_task_declares_the_metrics_it_chooses(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "2+2?", "answer": "4"}\n{"question": "3+3?", "answer": "6"}\n')
    options = {"data": str(data), "prompt": "Q: {{question}}", "reference": "answer", "metrics": ["f1", "bleu"]}
    task = resolve_task("my_qa", "custom", options)
    assert set(_yaml_metrics(task)) == set(task.metrics) == {"f1", "bleu"} and task.headline == "f1"
    assert resolve_task("my_qa", "custom", options) is task  # built once per definition, no global registry


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


@pytest.mark.parametrize("folder", ["harness/evaluation", "harness/compare", "trainers"])
def test_generic_code_imports_no_particular_task(folder: str) -> None:
    particular = {f"ftbench.tasks.{path.parent.name}" for path in (ROOT / "tasks").glob("*/task.py")}
    offenders = [
        f"{path.relative_to(ROOT)} -> {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if any(name == package or name.startswith(package + ".") for package in particular)
    ]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(TASKS))
def test_an_evaluation_and_stock_lm_eval_read_the_same_items(name: str) -> None:
    task = TASKS[name]
    options = task.parse_options({})
    ours = task.lm_eval_task(options)["custom_dataset"]()["test"]
    stock = _hook(task, "custom_dataset")(**options.model_dump())["test"]
    assert len(ours) == len(stock) == task.check_items(options) and ours[0] == stock[0] and ours[-1] == stock[-1]


TINY_TASK = """
from pathlib import Path
from ftbench.tasks.base import Metric, Task

def process_results(doc, results):
    return {"match": float(results[0].strip() == doc["answer"])}

TASKS = (
    Task(
        name="echo_words",
        folder=Path(__file__).parent,
        output="generate_until",
        headline="match",
        metrics={"match": Metric("0-1 (share answered exactly)", "binary")},
        items=lambda options: [{"id": 0, "question": "Say yes.", "answer": "yes"}],
    ),
)
load = TASKS[0].dataset_hook()
"""
TINY_YAML = """task: echo_words
custom_dataset: !function task.load
output_type: generate_until
test_split: test
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
process_results: !function task.process_results
metric_list:
  - metric: match
    aggregation: mean
    higher_is_better: true
"""


def _task_folder(root: Path, yaml_text: str) -> Path:
    folder = root / "echo_words"
    folder.mkdir(parents=True)
    (folder / "task.py").write_text(TINY_TASK)
    (folder / "echo_words.yaml").write_text(yaml_text)
    return root


def test_a_new_task_folder_enters_with_no_edit_elsewhere(tmp_path: Path) -> None:
    from ftbench.tasks.registry import BUILT_IN, discover

    found = discover([BUILT_IN, _task_folder(tmp_path / "mine", TINY_YAML)])
    assert set(TASKS) < set(found.tasks) and found.tasks["echo_words"].headline == "match"
    assert set(found.kinds) == {"custom"}
    rows = found.tasks["echo_words"].lm_eval_task(TaskOptions())["custom_dataset"]()["test"]
    assert [row["question"] for row in rows] == ["Say yes."]
    script = "from ftbench.tasks.registry import TASKS; print(TASKS['echo_words'].metrics['match'].scale)"
    env = {**os.environ, "FTBENCH_TASK_PATH": str(tmp_path / "mine")}
    shown = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and shown.stdout.strip() == "0-1 (share answered exactly)", shown.stderr


def test_a_metric_declared_in_one_place_only_is_refused(tmp_path: Path) -> None:
    from ftbench.tasks.registry import discover

    extra = TINY_YAML + "  - metric: extra\n    aggregation: mean\n    higher_is_better: true\n"
    with pytest.raises(FtbenchError, match=r"lists .extra. in its lm-eval metric_list but not in Task\.metrics"):
        discover([_task_folder(tmp_path / "mine", extra)])
    with pytest.raises(FtbenchError, match="exports 'countdown', which another task folder has"):
        clash = tmp_path / "clash" / "countdown"
        clash.mkdir(parents=True)
        (clash / "task.py").write_text("from ftbench.tasks.registry import TASKS as _T\nTASKS = (_T['countdown'],)\n")
        from ftbench.tasks.registry import BUILT_IN

        discover([BUILT_IN, tmp_path / "clash"])
