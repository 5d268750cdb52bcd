"""FtbenchCallback in a real TRL run on the tiny model: one record per save, metrics in MLflow and TensorBoard at
the saves' steps, training exactly as without it, a planted regression that stops training, bad input refused
before any step."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ftbench import FtbenchCallback
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.core.training_curve import StepRecord, TrainingCurve, load_curve
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec
from tests.training_runs import perplexity_suite, sft_trainer, short_documents, weights

METRIC = "ftbench/perplexity_ultrafeedback/bits_per_byte"


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_documents(tmp_path_factory.mktemp("documents"))


class StateProbe(TrainerCallback):
    """Records, at every save, what the training process holds: generators, grad mode, the model's modes,
    devices, dtypes and gradient flags. One probe runs before FtbenchCallback and one after."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        model = kwargs["model"]
        self.seen.append(
            (
                torch.get_rng_state().tolist(),
                random.getstate(),
                np.random.get_state()[1].tolist(),
                torch.is_grad_enabled(),
                [(name, m.training) for name, m in model.named_modules()],
                [(name, p.device, p.dtype, p.requires_grad) for name, p in model.named_parameters()],
            )
        )


class ProbeBefore(StateProbe):
    """Runs before FtbenchCallback."""


class ProbeAfter(StateProbe):
    """Runs after FtbenchCallback."""


class Reseed(TrainerCallback):
    """What an evaluation does to the process when nothing restores it: lm-eval seeds torch's generator."""

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        torch.manual_seed(1234)


def test_each_save_is_evaluated_logged_to_both_trackers_and_training_is_unchanged(
    tmp_path: Path, tiny_model_dir: Path, documents: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store, read back below
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "ftbench-callback")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tensorboard"))
    trainer = sft_trainer(tiny_model_dir, tmp_path / "run", save_steps=1, report_to=["mlflow", "tensorboard"])
    before, after = ProbeBefore(), ProbeAfter()
    trainer.add_callback(before)
    trainer.add_callback(FtbenchCallback(trainer, perplexity_suite(documents), tmp_path / "results"))
    trainer.add_callback(after)
    trainer.train()

    curve = load_curve(tmp_path / "results")
    assert curve is not None and [s.step for s in curve.steps] == [1, 2]
    records = load_run_evals(tmp_path / "results")
    assert [r.variant.name for r in records] == ["checkpoint-1", "checkpoint-2"]
    assert [r.variant.checkpoint for r in records] == [str(tmp_path / "run" / f"checkpoint-{s}") for s in (1, 2)]
    values = {r.variant.name: r.metrics["bits_per_byte"].value for r in records}

    client = MlflowClient((tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("ftbench-callback").experiment_id])
    history = client.get_metric_history(run.info.run_id, METRIC)
    assert [(m.step, m.value) for m in history] == [(1, values["checkpoint-1"]), (2, values["checkpoint-2"])]
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    tag = f"train/{METRIC}"  # transformers' TensorBoard, W&B and Trackio callbacks prefix every training key
    assert tag in events.Tags()["scalars"]
    scalars = [(e.step, e.value) for e in events.Scalars(tag)]
    assert scalars == [(1, pytest.approx(values["checkpoint-1"])), (2, pytest.approx(values["checkpoint-2"]))]

    assert len(before.seen) == 2 and before.seen == after.seen  # nothing the evaluation touched was left changed
    plain = sft_trainer(tiny_model_dir, tmp_path / "plain", save_steps=1)
    plain.train()
    trained, untouched = weights(trainer), weights(plain)
    assert all(torch.equal(trained[name], untouched[name]) for name in untouched)
    disturbed = sft_trainer(tiny_model_dir, tmp_path / "disturbed", save_steps=1)
    disturbed.add_callback(Reseed())
    disturbed.train()
    assert not all(torch.equal(weights(disturbed)[name], untouched[name]) for name in untouched)  # the check bites


def test_a_planted_regression_stops_training_and_names_the_last_good_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, documents: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"min_samples": 8}))
    trainer = sft_trainer(tiny_model_dir, tmp_path / "run", learning_rate=1.0, max_steps=8)  # destroys the model
    callback = FtbenchCallback(
        trainer,
        perplexity_suite(documents),
        tmp_path / "results",
        baseline="initial",
        policy=policy,
        stop_on_regression=True,
    )
    trainer.add_callback(callback)
    with caplog.at_level(logging.WARNING, logger="ftbench"):
        trainer.train()

    assert trainer.state.global_step == 2  # stopped at the first save, not at step 8
    curve = load_curve(tmp_path / "results")
    assert curve is not None and curve.stopped and curve.first_regression == 2
    assert curve.baseline_name == "initial" and curve.last_good == str(tmp_path / "results" / "initial")
    (step,) = curve.steps
    (regression,) = step.regressions
    assert (step.outcome, regression.task, regression.metric) == (
        "regression",
        "perplexity_ultrafeedback",
        "bits_per_byte",
    )
    assert regression.delta > 0 and regression.p_value < 0.05
    assert "checkpoint-2 (step 2) regressed against initial" in caplog.text
    assert "bits_per_byte@fp32" in caplog.text and f"last good checkpoint: {curve.last_good}" in caplog.text
    logged = [entry for entry in trainer.state.log_history if METRIC in entry]
    # the model before step 0 is logged at step 0, so the curve starts at the baseline
    assert [(e["step"], e.get("ftbench/gate/regressions")) for e in logged] == [(0, None), (2, 1.0)]
    names = sorted(r.variant.name for r in load_run_evals(tmp_path / "results"))
    assert names == ["checkpoint-2", "initial"]


def test_adapter_checkpoints_are_evaluated_on_their_base_at_each_precision(
    tmp_path: Path, tiny_model_dir: Path, documents: Path
) -> None:
    trainer = sft_trainer(tiny_model_dir, tmp_path / "run", max_steps=2, lora=True)
    adapter_flags = [(n, p.requires_grad) for n, p in trainer.model.named_parameters()]
    suite = perplexity_suite(documents, precisions=("fp32", "bf16"))
    trainer.add_callback(FtbenchCallback(trainer, suite, tmp_path / "results", baseline="initial"))
    trainer.train()

    records = load_run_evals(tmp_path / "results")
    assert sorted((r.variant.name, r.variant.kind, r.request.precision.value) for r in records) == [
        ("checkpoint-2", "lora", "bf16"),
        ("checkpoint-2", "lora", "fp32"),
        ("initial", "lora", "bf16"),
        ("initial", "lora", "fp32"),
    ]
    assert {r.variant.base for r in records} == {str(tiny_model_dir.resolve())}
    logged = next(
        entry
        for entry in trainer.state.log_history
        if "step" in entry and entry["step"] == 2 and any(key.startswith("ftbench/") for key in entry)
    )
    assert "ftbench/perplexity_ultrafeedback/bf16/bits_per_byte" in logged
    assert "ftbench/perplexity_ultrafeedback/fp32/bits_per_byte" in logged
    assert [(n, p.requires_grad) for n, p in trainer.model.named_parameters()] == adapter_flags
    assert trainer.model.active_adapters == ["default"]


@pytest.fixture(scope="module")
def idle_trainer(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Any:
    return sft_trainer(tiny_model_dir, tmp_path_factory.mktemp("idle"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tasks": ["nope"]}, "unknown task 'nope'"),
        ({"tasks": [{"name": "arc_easy", "options": {"colour": 1}}]}, "colour"),
        ({"checkpoints": ["x"]}, "a suite names no checkpoints"),
        ({"baseline": "missing-baseline"}, "baseline missing-baseline does not exist"),
        ({"baseline": "initial", "policy": "{bad_policy}"}, "is not valid YAML"),
        ({"policy": "{bad_policy}"}, "needs a baseline"),
        ({"baseline": "initial", "policy": "{other_policy}"}, "no task 'my_qb' is built in or in the baseline"),
        ({"every": 0}, "every must be 1 or more"),
        ({"stop_on_regression": True}, "stop_on_regression needs a baseline"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_training(
    tmp_path: Path, idle_trainer: Any, documents: Path, change: dict[str, Any], message: str
) -> None:
    bad_policy = tmp_path / "policy.yaml"
    bad_policy.write_text("alpha: [0.05\n")
    other_policy = tmp_path / "other.yaml"
    other_policy.write_text("tasks: {my_qb: {exact_match: {max_drop: 0.05}}}\n")
    suite = perplexity_suite(documents)
    options = {key: change.pop(key) for key in ("baseline", "policy", "every", "stop_on_regression") if key in change}
    options = {
        k: v.format(bad_policy=bad_policy, other_policy=other_policy) if isinstance(v, str) else v
        for k, v in options.items()
    }
    with pytest.raises(FtbenchError) as caught:
        FtbenchCallback(idle_trainer, suite | change, tmp_path / "results", **options)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "results").exists() and idle_trainer.state.global_step == 0


def test_a_stored_baseline_must_fit_the_suite(
    tmp_path: Path, tiny_model_dir: Path, idle_trainer: Any, documents: Path
) -> None:
    suite = perplexity_suite(documents)
    run_spec(parse_spec({**suite, "checkpoints": [str(tiny_model_dir)], "out": str(tmp_path / "stored")}, "test"))
    FtbenchCallback(idle_trainer, suite, tmp_path / "results", baseline=tmp_path / "stored")  # fits
    with pytest.raises(FtbenchError, match=r"differs from baseline .* in limit"):
        FtbenchCallback(idle_trainer, {**suite, "limit": 4}, tmp_path / "results", baseline=tmp_path / "stored")
    with pytest.raises(FtbenchError, match="the suite has no perplexity_ultrafeedback at fp32"):
        FtbenchCallback(
            idle_trainer, {**suite, "precisions": ["bf16"]}, tmp_path / "results", baseline=tmp_path / "stored"
        )


def test_only_the_main_process_evaluates(tmp_path: Path, idle_trainer: Any, documents: Path) -> None:
    callback = FtbenchCallback(idle_trainer, perplexity_suite(documents), tmp_path / "results", baseline="initial")
    control = TrainerControl()
    callback.on_train_begin(
        idle_trainer.args, TrainerState(is_world_process_zero=False), control, model=idle_trainer.model
    )
    callback.on_save(
        idle_trainer.args, TrainerState(is_world_process_zero=False, global_step=2), control, model=idle_trainer.model
    )
    assert not (tmp_path / "results").exists() and not control.should_training_stop


def test_the_curve_names_the_last_checkpoint_before_the_first_regression() -> None:
    curve = TrainingCurve(name="run", suite={}, baseline="initial", baseline_checkpoint="out/initial")
    for step, outcome in [(4, "regression"), (2, "pass"), (6, "pass"), (8, "regression")]:
        name = f"checkpoint-{step}"
        curve = curve.with_step(
            StepRecord(
                step=step, checkpoint=f"run/{name}", name=name, evaluations=[], eval_seconds=1.0, outcome=outcome
            )
        )
    assert [s.step for s in curve.steps] == [2, 4, 6, 8]
    assert (curve.first_regression, curve.last_good) == (4, "run/checkpoint-2")
    curve = curve.with_step(
        StepRecord(step=2, checkpoint="x", name="checkpoint-2", evaluations=[], eval_seconds=1.0, outcome="regression")
    )
    assert (curve.first_regression, curve.last_good) == (
        2,
        "out/initial",
    )  # the baseline, when the first step regressed
    steps = {"checkpoint-4": "checkpoint-2", "checkpoint-6": "checkpoint-4", "checkpoint-8": "checkpoint-6"}
    assert curve.parents() == steps  # no baseline evaluated here: the first step has no parent
    with_initial = curve.model_copy(update={"baseline_name": "initial"})
    assert with_initial.parents() == {"checkpoint-2": "initial", **steps}
