"""Trainer settings: ours (parent, output, data, LoRA) plus TRL's own config fields, defaults < file < --set."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ftbench.harness.core.errors import FtbenchError, nearest_hint, validated
from ftbench.harness.core.yamlfile import read_yaml_mapping
from ftbench.tasks.base import Task, TaskOptions
from ftbench.tasks.registry import KINDS, TASKS, resolve_task
from ftbench.tasks.training_side import RewardedPrompts, TrainingSide

ConfigT = TypeVar("ConfigT")


class LoraSettings(BaseModel):
    """LoRA adapter shape."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    layers: list[int] | None = None
    """Only these transformer layers get adapters (None: all). Adapting only the top layers keeps
    backpropagation out of the rest, which makes CPU training several times faster."""


class TaskRows(BaseModel):
    """SFT rows drawn from a task's training side: ARC's validation questions, a custom task's training split."""

    model_config = ConfigDict(extra="forbid")

    task: str
    """A task with a training side (``arc_easy``, ``arc_challenge``) or ``custom``."""
    rows: int = Field(ge=1)
    split: str | None = None
    """The split to draw from (default: the task's training split)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The task's options (a custom task's data, prompt and reference)."""


class TaskDraw(NamedTuple):
    """Rows a stage draws from one task's training side, as its data settings ask for them."""

    name: str
    """The rows' name in the manifest (``countdown``, ``ultrafeedback``, a ``data.tasks`` entry's task)."""
    task: Task
    options: TaskOptions
    rows: int
    setting: str
    """The setting that asks for the rows (``data.countdown_rows``), for error messages."""
    split: str | None = None
    within_length: bool = False
    """``rows`` counts only rows within the trainer's length limit, so that many are trained on."""

    @property
    def side(self) -> TrainingSide:
        """The task's training side.

        Raises:
            FtbenchError: the task has none.
        """
        if self.task.training is None:
            raise FtbenchError(f"task {self.task.name} has no training rows; remove it from {self.setting}")
        return self.task.training

    @property
    def prompts(self) -> RewardedPrompts:
        """The side's rewarded prompts.

        Raises:
            FtbenchError: the task has none.
        """
        if self.side.prompts is None:
            raise FtbenchError(f"task {self.task.name} has no rewarded prompts; set {self.setting}=0")
        return self.side.prompts


def setting_tasks() -> list[Task]:
    """The tasks whose training side is asked for by a data setting of its own (``data.countdown_rows``), in the
    registry's order."""
    return [task for task in TASKS.values() if task.training is not None and task.training.setting is not None]


def _entry_draw(entry: TaskRows, index: int) -> TaskDraw:
    """The draw of a ``data.tasks`` entry (a custom task is defined under a name of its own).

    Raises:
        FtbenchError: an unknown task, invalid options, or a task without SFT rows of its own.
    """
    setting = f"data.tasks.{index}"
    if entry.task in KINDS:
        task = resolve_task(f"training:{entry.task}", entry.task, entry.options)
    else:
        task = resolve_task(entry.task)
    if task.training is not None and task.training.setting is not None:
        raise FtbenchError(
            f"{setting}: task {entry.task}'s rows are set by data.{task.training.setting}; set that instead"
        )
    if task.training is None or task.training.sft is None:
        valid = [
            name
            for name, known in TASKS.items()
            if known.training and known.training.sft and not known.training.setting
        ]
        raise FtbenchError(f"task {entry.task} has no training rows; use {', '.join(valid)} or a custom task")
    return TaskDraw(entry.task, task, task.parse_options(entry.options), entry.rows, setting, entry.split)


class DataSettings(BaseModel):
    """Where training data comes from and how much of each dataset a stage uses."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["auto", "local", "hub", "generated"] = "auto"
    """auto prefers the offline copies, local requires them, hub downloads; generated draws Countdown puzzles."""
    data_dir: str | None = None
    # The settings a task's training side names (``TrainingSide.setting``); a new task's rows come through ``tasks``.
    countdown_rows: int = Field(default=0, ge=0)
    """Countdown training puzzles (SFT: solver traces; DPO: prompts sampled on-policy; RLOO: prompts)."""
    ultrafeedback_rows: int = Field(default=0, ge=0)
    """UltraFeedback training rows (SFT: chosen conversations; DPO and reward: preference pairs)."""
    tasks: list[TaskRows] = Field(default_factory=list)
    """SFT rows from tasks' training sides, never their evaluated items. With the same seed, a larger ``rows``
    draws a superset of a smaller one (nested subsets for data-size sweeps)."""
    files: list[Path] = Field(default_factory=list)
    """Extra JSON-lines files in the method's format (SFT: messages; DPO and reward: prompt, chosen, rejected;
    RLOO: target, nums); checked against the evaluation items like the built-in data."""
    eval_rows: int = Field(default=50, ge=1)
    """Held-out rows evaluated after training (reward models: test_prefs pairs)."""

    def dataset_draws(self) -> list[TaskDraw]:
        """What the tasks' own settings (``countdown_rows``, ``ultrafeedback_rows``: ``setting_tasks``) ask for,
        even none: their tasks' evaluation items are checked against extra files and their splits noted in the
        manifest. ``generated`` applies to the sides that generate their rows (the others read ``auto``)."""
        draws = []
        for task in setting_tasks():
            side = task.training
            assert side is not None and side.setting is not None and side.rows_name is not None  # setting_tasks
            source = self.source if self.source != "generated" or side.generated else "auto"
            options = task.parse_options({"source": source, "data_dir": self.data_dir})
            rows = getattr(self, side.setting)
            draws.append(
                TaskDraw(side.rows_name, task, options, rows, f"data.{side.setting}", None, side.within_length)
            )
        return draws

    def task_draws(self) -> list[TaskDraw]:
        """What ``tasks`` asks for: SFT rows of each entry's task.

        Raises:
            FtbenchError: an unknown task, invalid options, or a task without SFT rows of its own.
        """
        return [_entry_draw(entry, index) for index, entry in enumerate(self.tasks)]


class SamplingSettings(BaseModel):
    """On-policy sampling (DPO's Countdown pairs): answers drawn from the parent for each training puzzle."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(default=4, ge=2)
    max_new_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=1.0, gt=0.0)
    batch_size: int = Field(default=16, ge=1)


class TrainSettings(BaseModel):
    """One training stage: our settings, and ``trl``, the fields of the method's TRL config."""

    model_config = ConfigDict(extra="forbid")

    parent: Path = Path("checkpoints/initial")
    output: Path
    stage: str
    finetune: Literal["lora", "full"] = "lora"
    save: Literal["merged", "adapter", "both"] = "merged"
    """``merged``: LoRA merged into a full model directory; ``adapter``: the adapter alone (evaluated unmerged on
    its base, as published adapters are); ``both``: the merged model, and the adapter in ``OUTPUT-adapter``."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    seed: int = 1234
    trl: dict[str, Any] = Field(default_factory=dict)


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as a string; read such strings as the floats they are meant to be."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        return float(value)
    return value


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``key.sub=value`` strings as a nested dict, values read as YAML scalars.

    Raises:
        FtbenchError: an assignment without ``=``.
    """
    nested: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise FtbenchError(f"--set {assignment!r} is not KEY=VALUE; write for example --set trl.learning_rate=1e-4")
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _numbers(yaml.safe_load(raw))
    return nested


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def load_settings(
    defaults: dict[str, Any],
    path: Path | None,
    assignments: list[str],
    overrides: dict[str, Any] | None = None,
    origin: str = "training settings",
) -> TrainSettings:
    """Settings from ``defaults``, then the YAML file at ``path``, then ``overrides``, then ``--set`` assignments.

    Args:
        defaults: the method's defaults.
        path: a YAML training config.
        assignments: ``KEY=VALUE`` strings.
        overrides: a mapping of settings (a pipeline stage's ``settings``).
        origin: how error messages name the settings when no file is given.

    Raises:
        FtbenchError: a missing or malformed file, or an unknown or invalid key.
    """
    data = dict(defaults)
    if path is not None:
        loaded = read_yaml_mapping(path, "training config", "give a YAML file")
        data, origin = _merge(data, _numbers(loaded)), str(path)
    data = _merge(data, _numbers(overrides or {}))
    data = _merge(data, parse_assignments(assignments))
    return validated(TrainSettings, data, origin, suggest=True)


def check_trl_keys(config_class: type, settings: TrainSettings) -> None:
    """Check that every ``trl`` key is a field of the method's TRL config.

    Raises:
        FtbenchError: a key that the TRL config does not have, naming the nearest valid one.
    """
    valid = [f.name for f in dataclasses.fields(config_class)]
    for key in settings.trl:
        if key not in valid:
            raise FtbenchError(f"trl.{key} is not a field of TRL's {config_class.__name__}; {nearest_hint(key, valid)}")


def build_trl_config(config_class: type[ConfigT], settings: TrainSettings, output_dir: Path, **ours: Any) -> ConfigT:
    """The method's TRL config from ``settings.trl``, over the values ftbench sets (``ours``).

    Raises:
        FtbenchError: a key that the TRL config does not have, naming the nearest valid one.
    """
    check_trl_keys(config_class, settings)
    values = {
        "output_dir": str(output_dir),
        "seed": settings.seed,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "use_cpu": not _cuda(),
        # bf16 autocast is slow on CPUs without bf16 matmul units, and a small model needs no activation
        # checkpointing; on GPU both follow TRL's defaults unless set.
        **({} if _cuda() else {"bf16": False, "gradient_checkpointing": False}),
        **ours,
        **settings.trl,
    }
    try:
        return config_class(**values)
    except (TypeError, ValueError) as exc:
        raise FtbenchError(f"invalid TRL {config_class.__name__} settings: {exc}") from exc


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
