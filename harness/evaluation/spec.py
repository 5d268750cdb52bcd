"""The run spec: a YAML file validated by pydantic, the same fields from CLI flags, and how flags win.

Precedence lives here alone: defaults < spec file < flags; a ``--limit`` or ``--max-gen-toks`` flag also wins
over the values a spec sets per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ftbench.harness.core.errors import FtbenchError, validated
from ftbench.harness.core.names import check_name
from ftbench.harness.core.precision import Precision, parse_precisions
from ftbench.harness.core.request import Engine, ItemOrder
from ftbench.harness.core.store import RUN_FILE, load_run
from ftbench.harness.core.yamlfile import read_yaml_mapping
from ftbench.tasks.base import Task, TaskOptions
from ftbench.tasks.registry import resolve_task


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _precision_list(value: Any) -> Any:
    """A spec's or flags' precisions, read by ``parse_precisions`` (anything else is left for pydantic to refuse)."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str | Precision) for v in value)):
        return parse_precisions(value)
    return value


CLUSTER_ADDRESSES = "auto, local or ray://HOST:PORT"
MAX_REPEATS = 100
"""The most repeats of one evaluation a spec may ask for (each is a full evaluation of the task)."""


def check_cluster_address(address: str) -> str:
    """``address`` when it is one of ``CLUSTER_ADDRESSES``.

    Raises:
        FtbenchError: any other form.
    """
    if address in ("auto", "local"):
        return address
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "ray" or not parts.hostname or port is None:
        raise FtbenchError(f"cluster {address!r} is not a Ray address; use {CLUSTER_ADDRESSES}")
    return address


class GenerationSpec(_Strict):
    """Overrides of a generative task's own generation settings; unset fields keep the task's values."""

    max_gen_toks: int | None = Field(default=None, ge=1)
    do_sample: bool | None = None
    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)

    def overrides(self) -> dict[str, int | float | bool]:
        """The fields that are set."""
        return self.model_dump(exclude_none=True)


class TaskSpec(_Strict):
    """One task of a run, with its options (validated by the task; unknown options are refused)."""

    name: str
    task: str | None = None
    """The kind of a task defined here under its own name (``custom``); unset for a built-in task."""
    limit: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    generation: GenerationSpec = Field(default_factory=lambda: GenerationSpec())
    precisions: list[Precision] | None = None
    """Evaluate this task only at these of the run's precisions (None: all of them)."""
    chat_template: bool | None = None
    """Render prompts with the chat template (None: the run's setting, else the task's convention)."""
    engine: Engine | None = None
    """The engine for this task's unquantized and bitsandbytes precisions (None: the run's)."""
    repeats: int | None = Field(default=None, ge=1, le=MAX_REPEATS)
    """Evaluate this many times with derived seeds (None: the run's ``repeats``)."""

    @field_validator("precisions", mode="before")
    @classmethod
    def _precision_names(cls, value: Any) -> Any:
        return _precision_list(value)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return check_name(name, "task name")

    _definition: Task = PrivateAttr()
    _parsed: TaskOptions = PrivateAttr()

    @model_validator(mode="after")
    def _known_task_and_options(self) -> TaskSpec:
        try:
            self._definition = resolve_task(self.name, self.task, self.options)
            self._parsed = self._definition.parse_options(self.options)
        except FtbenchError as exc:
            raise ValueError(str(exc)) from None
        self.options = self._parsed.model_dump(mode="json")
        return self

    @property
    def definition(self) -> Task:
        """The task this entry names, resolved once when the spec was read."""
        return self._definition

    @property
    def parsed_options(self) -> TaskOptions:
        """The task's typed options (``options`` holds the same values, defaults written out, as data)."""
        return self._parsed


class RunSpec(_Strict):
    """What to evaluate: checkpoints × precisions × tasks, and how."""

    name: str = "run"
    checkpoints: list[Path] = Field(default_factory=list)
    checkpoints_dir: Path | None = None
    base: Path | None = None
    precisions: list[Precision] = Field(default_factory=lambda: [Precision.FP32], min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    limit: int | None = Field(default=None, ge=1)
    chat_template: bool | None = None
    """Render every task's prompts with the chat template, or none (None: each task's convention)."""
    engine: Literal[Engine.HF, Engine.VLLM] = Engine.HF
    """What runs unquantized and bitsandbytes precisions; ``gguf*`` precisions always run on llama.cpp."""
    repeats: int = Field(default=1, ge=1, le=MAX_REPEATS)
    batch_size: int = Field(default=8, ge=1)
    seed: int = Field(default=1234, ge=0, lt=2**32)  # numpy and torch take 32-bit seeds
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cluster: str | None = None
    """Spread the run over a Ray cluster: ``auto``, ``local`` or ``ray://HOST:PORT`` (None: this process)."""
    out: Path = Path("results/latest")
    order: ItemOrder | None = None
    """Evaluate only a slice of each task's items in a seeded random order (a sequential gate's chunk)."""

    @field_validator("precisions", mode="before")
    @classmethod
    def _precision_names(cls, value: Any) -> Any:
        return _precision_list(value)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return check_name(name, "run name")

    @field_validator("cluster")
    @classmethod
    def _cluster_address(cls, address: str | None) -> str | None:
        if address is None:
            return None
        try:
            return check_cluster_address(address)
        except FtbenchError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_names(cls, tasks: Any) -> Any:
        if isinstance(tasks, list):
            return [{"name": task} if isinstance(task, str) else task for task in tasks]
        return tasks

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        if not self.checkpoints and self.checkpoints_dir is None:
            raise ValueError("give checkpoints (a list of paths) or checkpoints_dir (a folder of them)")
        seen: set[str] = set()
        for index, task in enumerate(self.tasks):
            if task.name in seen:
                raise ValueError(f"task {task.name} is listed twice (tasks.{index}); list each task once")
            seen.add(task.name)
            extra = sorted(set(task.precisions or []) - set(self.precisions))
            if extra:
                raise ValueError(
                    f"task {task.name} asks for precision {extra[0]}, which is not in the run's precisions"
                )
        return self

    def task_limit(self, task: TaskSpec) -> int | None:
        """The item limit of ``task``: its own, else the run's."""
        return task.limit if task.limit is not None else self.limit

    def task_generation(self, task: TaskSpec) -> dict[str, int | float | bool]:
        """The generation overrides of ``task``: the run's, then the task's own on top."""
        return self.generation.overrides() | task.generation.overrides()

    def task_chat_template(self, task: TaskSpec) -> bool:
        """Whether ``task``'s prompts use the chat template: the task's setting, the run's, else the convention."""
        for setting in (task.chat_template, self.chat_template):
            if setting is not None:
                return setting
        return task.definition.default_chat_template

    def task_repeats(self, task: TaskSpec) -> int:
        """How many times ``task`` is evaluated per variant."""
        return task.repeats if task.repeats is not None else self.repeats


class RunFlags(NamedTuple):
    """The command line's simple values; None leaves the spec's (or the default) in place."""

    checkpoints: list[Path] | None = None
    checkpoints_dir: Path | None = None
    base: Path | None = None
    precisions: list[str] | None = None
    """Precision names as given; the spec parses them (once) into ``Precision``."""
    tasks: list[str] | None = None
    limit: int | None = None
    out: Path | None = None
    batch_size: int | None = None
    seed: int | None = None
    device: str | None = None
    max_gen_toks: int | None = None
    engine: str | None = None
    cluster: str | None = None


def parse_spec(data: dict[str, Any], origin: str) -> RunSpec:
    """Validate ``data`` as a run spec.

    Raises:
        FtbenchError: one line naming ``origin``, the offending key and the problem.
    """
    return validated(RunSpec, data, origin)


def resolve_spec(path: Path | None, flags: RunFlags | None = None) -> RunSpec:
    """The run spec from a YAML file (or the flags alone), with the flags over it: defaults < file < flags.

    A ``tasks`` flag picks tasks: one the file lists keeps the file's settings for it (its limit, its generation),
    another comes at its defaults. A ``limit`` or ``max_gen_toks`` flag also replaces the per-task values the file
    sets.

    Raises:
        FtbenchError: the file is missing, is not YAML, or the result does not validate.
    """
    flags = flags or RunFlags()
    data: dict[str, Any] = {}
    origin = "command line"
    if path is not None:
        data, origin = read_yaml_mapping(path, "spec file", "give the path of a YAML run spec"), str(path)
    simple = flags._asdict()
    max_gen_toks = simple.pop("max_gen_toks")
    listed = data.get("tasks")
    data.update({key: value for key, value in simple.items() if value is not None})
    if flags.tasks is not None and isinstance(listed, list):
        data["tasks"] = _picked_tasks(listed, flags.tasks)
    if flags.limit is not None or max_gen_toks is not None:
        data["tasks"] = [_without_task_overrides(task, flags.limit, max_gen_toks) for task in data.get("tasks") or []]
    if max_gen_toks is not None:
        data["generation"] = {**(data.get("generation") or {}), "max_gen_toks": max_gen_toks}
    return parse_spec(data, origin)


def refuse_other_run(spec: RunSpec) -> None:
    """Refuse to write ``spec`` into a results directory that holds another run: a ``run.json`` of another name or
    another spec (its output folder aside; settings only one of them knows aside), whose listed evaluations the new
    run would no longer list.

    Raises:
        FtbenchError: ``spec.out`` holds another run (or a run record that cannot be read), before any work.
    """
    if not (spec.out / RUN_FILE).is_file():
        return
    stored = load_run(spec.out)
    ours = spec.model_dump(mode="json")
    if stored.name == spec.name and _agrees({**stored.spec, "out": None}, {**ours, "out": None}):
        return
    what = f"the run {stored.name!r}" if stored.name != spec.name else f"the run {stored.name!r} of another spec"
    raise FtbenchError(
        f"results directory {spec.out} holds {what} ({len(stored.evaluations)} evaluations); give --out a folder of "
        "its own, or --force to replace that run"
    )


def _agrees(stored: Any, ours: Any) -> bool:
    """Whether a stored spec and ours ask for the same: equal, but for keys only one of them has (a setting a
    version of ftbench added or dropped since, at its default)."""
    if isinstance(stored, dict) and isinstance(ours, dict):
        return all(_agrees(stored[key], ours[key]) for key in stored.keys() & ours.keys())
    if isinstance(stored, list) and isinstance(ours, list):
        return len(stored) == len(ours) and all(_agrees(a, b) for a, b in zip(stored, ours, strict=True))
    return bool(stored == ours)


def _picked_tasks(listed: list[Any], names: list[str]) -> list[Any]:
    """The named tasks, each as the file lists it where it does (with its settings), else by its name alone."""
    entries: dict[str, Any] = {}
    for entry in listed:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str):
            entries.setdefault(name, entry)
    return [entries.get(name, name) for name in names]


def _without_task_overrides(task: Any, limit: int | None, max_gen_toks: int | None) -> Any:
    """A task entry without the per-task values that a flag replaces."""
    if not isinstance(task, dict):
        return task
    task = dict(task)
    if limit is not None:
        task.pop("limit", None)
    if max_gen_toks is not None and isinstance(task.get("generation"), dict):
        task["generation"] = {k: v for k, v in task["generation"].items() if k != "max_gen_toks"}
    return task


def load_spec(path: Path, overrides: dict[str, Any] | None = None) -> RunSpec:
    """Read a YAML run spec with ``overrides`` (a mapping of simple flags) over it.

    Raises:
        FtbenchError: the file is missing, is not YAML, or does not validate.
    """
    return resolve_spec(path, RunFlags(**{k: v for k, v in (overrides or {}).items() if v is not None}))
