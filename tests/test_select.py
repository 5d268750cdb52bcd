"""``ftbench select``: the checkpoint to ship from a training run's stored evaluations, its gain with the winner's
curse taken out, the could-be-best set, the tasks that cannot rank the checkpoints, and one line for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.records import EvalRecord
from tests.records import make_record, write_results

runner = CliRunner()
ACCURACIES = (0.50, 0.52, 0.70, 0.55, 0.53)
"""The true accuracies of five checkpoints (steps 10..50); the base model's is 0.5."""


def _binary(rng: np.random.Generator, accuracy: float, count: int) -> list[float]:
    return [float(x) for x in rng.random(count) < accuracy]


def _run(folder: Path, accuracies: tuple[float, ...] = ACCURACIES, count: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    records = [make_record("base", "initial", "fp32", {"accuracy": _binary(rng, 0.5, count)})]
    for step, accuracy in enumerate(accuracies, start=1):
        scores = {"accuracy": _binary(rng, accuracy, count)}
        records.append(make_record(f"w{step}", f"checkpoint-{10 * step}", "fp32", scores))
    return write_results(folder, records)


def _choices(record: EvalRecord, rng: np.random.Generator, margin: float) -> EvalRecord:
    """An ARC-like record whose samples carry four choices' log-likelihoods, the right one (0) ahead by ``margin``
    on average."""
    samples = []
    for sample in record.samples:
        values = list(rng.normal(-10.0, 1.0, 4))
        values[0] += margin
        samples.append(sample.model_copy(update={"choice_loglikelihoods": values, "target": "0"}))
    return record.model_copy(update={"samples": samples})


def _select(*args: str) -> Any:
    return runner.invoke(app, ["select", *args])


def test_a_clear_winner_is_selected_with_an_adjusted_interval_wider_than_the_naive_one(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    plot = tmp_path / "best.svg"
    result = _select(str(run), "--format", "json", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    (choice,) = json.loads(result.stdout)["choices"]
    assert choice["selected"] == "checkpoint-30" and choice["baseline"] == "initial"  # the base is the baseline
    naive, adjusted = choice["naive_interval"], choice["adjusted_interval"]
    assert adjusted[0] <= naive[0] and naive[1] <= adjusted[1] and adjusted[0] > 0  # a real gain, selection counted
    assert choice["shrunk_gain"] < choice["gain"]  # the winner's curse shrunk out of the estimate
    assert choice["could_be_best"] == ["checkpoint-30"] and choice["p_best"] > 0.9
    assert abs(sum(c["p_best"] for c in choice["checkpoints"]) - 1) < 1e-9
    assert (tmp_path / "best-countdown.svg").read_text().startswith("<svg")
    text = _select(str(run), "--baseline", "checkpoint-10").stdout
    assert "## Which checkpoint to ship (fp32, against checkpoint-10)" in text and "checkpoint-30" in text


def _flat_run(folder: Path, rng: np.random.Generator) -> Path:
    """Five checkpoints each right on exactly half of 40 items, different items each: no checkpoint is better."""
    half = [1.0] * 20 + [0.0] * 20
    records = [make_record("base", "initial", "fp32", {"accuracy": list(rng.permutation(half))})]
    for step in range(1, 6):
        records.append(make_record(f"w{step}", f"checkpoint-{step}", "fp32", {"accuracy": list(rng.permutation(half))}))
    return write_results(folder, records)


def test_equal_checkpoints_cannot_be_ranked_and_a_continuous_metric_is_named(tmp_path: Path) -> None:
    run = _flat_run(tmp_path / "flat", np.random.default_rng(2))
    result = _select(str(run), "--format", "json")
    (choice,) = json.loads(result.stdout)["choices"]
    assert len(choice["could_be_best"]) >= 3  # the items cannot tell them apart
    (signal,) = json.loads(result.stdout)["signals"]
    assert signal["cannot_rank"] and signal["snr"] < 1
    assert "countdown accuracy cannot rank these checkpoints" in _select(str(run)).stdout
    rng = np.random.default_rng(5)
    records = [make_record("b", "initial", "fp32", {"acc": _binary(rng, 0.5, 40), "acc_norm": _binary(rng, 0.5, 40)},
                           task="arc_easy")]  # fmt: skip
    for step in range(1, 5):
        flat = {"acc": _binary(rng, 0.5, 40), "acc_norm": _binary(rng, 0.5, 40)}
        record = make_record(f"w{step}", f"checkpoint-{step}", "fp32", flat, task="arc_easy")
        records.append(_choices(record, rng, margin=2.0 * step))  # the right choice grows more likely every step
    arc = write_results(tmp_path / "arc", [_choices(records[0], rng, 0.0), *records[1:]])
    signals = {s["metric"]: s for s in json.loads(_select(str(arc), "--format", "json").stdout)["signals"]}
    assert not signals["choice_logprob"]["cannot_rank"] and signals["choice_logprob"]["snr"] > 1
    assert signals["acc_norm"]["cannot_rank"] and signals["acc_norm"]["better_metric"] == "choice_logprob"


def _one_line(result: Any, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines


def test_bad_input_is_refused_in_one_line(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    _one_line(_select(str(run), "--task", "arc_easy"), "hold no evaluation of task 'arc_easy'")
    _one_line(_select(str(run), "--metric", "nope"), "task countdown has no metric 'nope'")
    _one_line(_select(str(run), "--weights", "accuracy=x"), "--weights 'accuracy=x' is not METRIC=WEIGHT")
    _one_line(_select(str(run), "--baseline", "sft"), "baseline 'sft' is not among the evaluated checkpoints")
    single = _run(tmp_path / "single", accuracies=(0.6,))
    _one_line(_select(str(single)), "selection needs at least two checkpoints of countdown besides the baseline")
    rng = np.random.default_rng(1)
    apart = [make_record("b", "initial", "fp32", {"accuracy": _binary(rng, 0.5, 10)})]
    for step in (1, 2):
        record = make_record(f"w{step}", f"checkpoint-{step}", "fp32", {"accuracy": _binary(rng, 0.5, 10)})
        other = [s.model_copy(update={"doc_hash": f"other{s.doc_id}"}) for s in record.samples]
        apart.append(record.model_copy(update={"samples": other}))
    _one_line(_select(str(write_results(tmp_path / "apart", apart))), "share 0 items")


def test_the_report_of_a_training_run_opens_with_the_selection(tmp_path: Path) -> None:
    from ftbench.reports.report import write_report

    files = write_report([_run(tmp_path / "run")], tmp_path / "report")
    markdown = files.markdown.read_text()
    opening = markdown.index("## Which checkpoint to ship (fp32, against initial)")
    assert opening < markdown.index("## At a glance") and "| countdown | accuracy | checkpoint-30 |" in markdown
    html = files.html.read_text()
    assert html.index('<h2 id="select">Which checkpoint to ship</h2>') < html.index('<h2 id="glance">')
    two = write_results(tmp_path / "two", [make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0] * 5})])
    assert "Which checkpoint to ship" not in write_report([two], tmp_path / "r2").markdown.read_text()
