"""The run spec: a YAML file validated by pydantic, or the same fields from CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.errors import FtbenchError, read_yaml_mapping, validated
from harness.variants import PRECISIONS
from tasks.registry import get_task


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    """One task of a run, with its options (passed to the task as lm-eval metadata)."""

    name: str
    limit: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    generation: GenerationSpec = Field(default_factory=lambda: GenerationSpec())
    precisions: list[str] | None = None
    """Evaluate this task only at these of the run's precisions (None: all of them)."""

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            get_task(name)
        except FtbenchError as exc:
            raise ValueError(str(exc)) from None
        return name


class RunSpec(_Strict):
    """What to evaluate: checkpoints × precisions × tasks, and how."""

    name: str = "run"
    checkpoints: list[Path] = Field(default_factory=list)
    checkpoints_dir: Path | None = None
    base: Path | None = None
    precisions: list[str] = Field(default_factory=lambda: ["fp32"], min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    limit: int | None = Field(default=None, ge=1)
    apply_chat_template: bool = True
    batch_size: int = Field(default=8, ge=1)
    seed: int = 1234
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out: Path = Path("results/latest")

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_names(cls, tasks: Any) -> Any:
        if isinstance(tasks, list):
            return [{"name": task} if isinstance(task, str) else task for task in tasks]
        return tasks

    @field_validator("precisions")
    @classmethod
    def _known_precisions(cls, precisions: list[str]) -> list[str]:
        for precision in precisions:
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        return list(dict.fromkeys(precisions))

    @model_validator(mode="after")
    def _some_checkpoint(self) -> RunSpec:
        if not self.checkpoints and self.checkpoints_dir is None:
            raise ValueError("give checkpoints (a list of paths) or checkpoints_dir (a folder of them)")
        for task in self.tasks:
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


def parse_spec(data: dict[str, Any], origin: str) -> RunSpec:
    """Validate ``data`` as a run spec.

    Raises:
        FtbenchError: one line naming ``origin``, the offending key and the problem.
    """
    return validated(RunSpec, data, origin)


def load_spec(path: Path, overrides: dict[str, Any] | None = None) -> RunSpec:
    """Read a YAML run spec and apply CLI ``overrides`` (defaults < file < flags).

    Raises:
        FtbenchError: the file is missing, is not YAML, or does not validate.
    """
    data = read_yaml_mapping(path, "spec file", "give the path of a YAML run spec")
    data.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return parse_spec(data, str(path))
