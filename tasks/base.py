"""What a task is: one typed description that each task folder exports and the registry collects.

A task folder holds an lm-eval YAML file (the prompt and lm-eval's view of the task), a ``task.py`` with the
hooks the YAML names and the task's ``Options``, a scoring module, and optionally a ``training.py`` with
the rows trainers draw from the task's training split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ftbench.harness.core.errors import FtbenchError, first_error
from ftbench.harness.core.records import SampleRecord
from ftbench.harness.core.request import EvalRequest
from ftbench.tasks.judging import Judging
from ftbench.tasks.training_side import TrainingSide

MetricKind = Literal["binary", "continuous", "corpus"]
"""``binary``: each sample scores 0 or 1; ``continuous``: a mean of per-sample scores; ``corpus``: computed over
the whole corpus (no per-sample value; paired comparisons resample samples)."""

OutputType = Literal["generate_until", "multiple_choice", "loglikelihood_rolling"]
CorpusMetric = Callable[[Sequence[SampleRecord]], float]

LM_EVAL_METADATA = frozenset({"version", "config_source", "_metadata"})
"""Keys lm-eval adds to a task's metadata besides the options it is given."""
LM_EVAL_MAX_GEN_TOKS = 256
"""lm-eval's longest generation when a task sets none."""


class _TagsIgnored(yaml.SafeLoader):
    """Reads lm-eval YAML, whose ``!function`` tags name Python hooks, as plain data (tags read as None)."""


_TagsIgnored.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclass(frozen=True)
class Metric:
    """How to read one metric: its scale, its direction, and how samples score it."""

    scale: str
    kind: MetricKind
    higher_is_better: bool = True
    sample_score: str | None = None
    """The per-sample score behind the metric, when it is not named like the metric."""
    corpus: CorpusMetric | None = None
    """Recomputes a corpus-level metric from stored samples (bootstrap intervals, paired tests)."""
    bounds: tuple[float, float] | None = None
    """The range every per-sample score lies in (``(0, 1)``, ``(0, 100)``), when it is bounded; 0/1 metrics are
    bounded by their kind. A sequential gate covers only bounded per-sample metrics."""

    @property
    def score_bounds(self) -> tuple[float, float] | None:
        """The range of a per-sample score: ``bounds``, (0, 1) for a 0/1 metric; None for a corpus metric or an
        unbounded score."""
        if self.kind == "corpus":
            return None
        return (0.0, 1.0) if self.kind == "binary" else self.bounds


class TaskOptions(BaseModel):
    """A task's options (``options:`` in a run spec; lm-eval metadata). Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_name: ClassVar[str] = "task"

    @classmethod
    def parse(cls, task: str, values: dict[str, Any]) -> Self:
        """Validate the options of ``task``.

        Raises:
            FtbenchError: one line naming the task, the bad option and the valid names.
        """
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            spot = first_error(exc)
            if spot.kind == "extra_forbidden":
                valid = ", ".join(sorted(cls.model_fields)) or "none"
                raise FtbenchError(f"task {task}: unknown option {spot.where!r}; valid options are {valid}") from exc
            raise FtbenchError(f"task {task}: option {spot.where}: {spot.message}") from exc

    @classmethod
    def from_metadata(cls, task: str, metadata: dict[str, Any]) -> Self:
        """The options inside lm-eval's task metadata (which also carries lm-eval's own keys)."""
        return cls.parse(task, {k: v for k, v in metadata.items() if k not in LM_EVAL_METADATA})


def _no_data(options: Any) -> list[Path]:
    return []


@dataclass(frozen=True)
class Task:
    """One task: lm-eval's definition in ``folder``, its metrics, options and data."""

    name: str
    folder: Path
    output: OutputType
    headline: str
    metrics: dict[str, Metric]
    options: type[TaskOptions] = TaskOptions
    items: Callable[[Any], list[dict[str, Any]]] = lambda options: []
    """The evaluation items these options select, checked before any work."""
    lm_eval_row: Callable[[dict[str, Any]], dict[str, Any]] = lambda item: item
    """The row lm-eval receives for an item (its dataset hook's; by default the item itself)."""
    data_paths: Callable[[Any], list[Path]] = _no_data
    """The local files an evaluation with these options reads (hashed into the request)."""
    judging: Judging | None = None
    """A judged task's judge, reference and scoring (win-rate tasks): ftbench's judge step scores its responses."""
    chat_template: bool | None = None
    """Render prompts with the chat template by default; None: the field's convention (generative tasks yes,
    log-likelihood and perplexity tasks no, as stock lm-eval scores them)."""
    kind: str | None = None
    """The kind of a task defined in a spec under its own name (``custom``); None for the built-in tasks."""
    lm_eval_config: Callable[[], dict[str, Any]] | None = None
    """lm-eval's config of a task defined in a spec (built-in tasks are found by name in their folder)."""
    system_prompt: str | None = None
    """A system prompt for every item (rendered by the chat template)."""
    training: TrainingSide | None = None
    """What trainers may draw from the task (never an evaluated item); None: nothing."""
    leakage_text: Callable[[dict[str, Any]], str] | None = None
    """An item's content as plain text for the leakage audit; None: ``item_text`` of the row lm-eval receives."""

    @property
    def generative(self) -> bool:
        """Whether the task generates text (so generation settings change its result)."""
        return self.output == "generate_until"

    @property
    def default_chat_template(self) -> bool:
        """Whether prompts use the chat template unless a spec says otherwise."""
        return self.generative if self.chat_template is None else self.chat_template

    @property
    def corpus_metrics(self) -> dict[str, CorpusMetric]:
        """The metrics recomputed from samples."""
        return {name: metric.corpus for name, metric in self.metrics.items() if metric.corpus is not None}

    def lm_eval_definition(self) -> dict[str, Any]:
        """lm-eval's config of the task as data: a defined task's own config, else its YAML file in ``folder``
        (``!function`` hooks read as None; ``include:`` files merged under it, as lm-eval merges them)."""
        if self.lm_eval_config is not None:
            return self.lm_eval_config()
        return _read_lm_eval_yaml(self.folder / f"{self.name}.yaml")

    @cached_property
    def max_gen_toks(self) -> int:
        """The longest generation the task's lm-eval config sets (its ``generation_kwargs``), read once per task:
        schedulers ask it for every planned request."""
        settings = self.lm_eval_definition().get("generation_kwargs") or {}
        return int(settings.get("max_gen_toks", LM_EVAL_MAX_GEN_TOKS))

    def check_declaration(self) -> None:
        """Refuse a task whose metrics are not declared once: every metric its lm-eval ``metric_list`` computes must
        be in ``metrics`` (with its scale and direction), the others only where a judge computes them, and the
        headline among them. The registry checks each task it collects; an evaluation then refuses any metric its
        hooks return beyond the list.

        Raises:
            FtbenchError: naming the task, the metric and the fix.
        """
        listed = [entry["metric"] for entry in self.lm_eval_definition().get("metric_list") or []]
        where = f"task {self.name} ({self.folder})"
        if len(listed) != len(set(listed)):
            raise FtbenchError(f"{where} lists a metric twice in its lm-eval metric_list; list each once")
        undeclared = [name for name in listed if name not in self.metrics]
        if undeclared:
            raise FtbenchError(
                f"{where} lists {undeclared[0]!r} in its lm-eval metric_list but not in Task.metrics; declare it there "
                "with its scale and direction"
            )
        unlisted = [name for name in self.metrics if name not in listed]
        if unlisted and self.judging is None:
            raise FtbenchError(
                f"{where} declares {unlisted[0]!r}, which neither its lm-eval metric_list nor a judge computes; list "
                "it in the YAML or drop it"
            )
        if self.headline not in self.metrics:
            raise FtbenchError(f"{where} has headline {self.headline!r}, which it does not declare; declare it")

    def lm_eval_task(self, options: TaskOptions) -> dict[str, Any]:
        """lm-eval's config of the task for one evaluation: its definition with the hooks resolved, whose dataset
        hook hands lm-eval the items ``options`` select. The options are parsed once, where the evaluation was
        planned, and handed on here rather than parsed again from lm-eval's metadata (which stock ``lm_eval`` runs
        of the YAML still do)."""
        from lm_eval.tasks._yaml_loader import load_yaml

        if self.lm_eval_config is not None:
            config = self.lm_eval_config()
        else:
            config = load_yaml(self.folder / f"{self.name}.yaml", resolve_func=True)
        config["custom_dataset"] = partial(_dataset, self, options)
        return config

    def dataset_hook(self) -> Callable[..., dict[str, Any]]:
        """The task's lm-eval ``custom_dataset`` hook for stock ``lm_eval`` runs of its YAML: the options read from
        lm-eval's metadata, then the same items as an ftbench evaluation (``lm_eval_task``) hands lm-eval."""

        def load(**metadata: Any) -> dict[str, Any]:
            return _dataset(self, self.options.from_metadata(self.name, metadata))

        return load

    def parse_options(self, values: dict[str, Any] | TaskOptions) -> TaskOptions:
        """The task's typed options (see ``TaskOptions.parse``)."""
        return values if isinstance(values, TaskOptions) else self.options.parse(self.name, values)

    def check_items(self, options: TaskOptions) -> int:
        """How many items ``options`` select.

        Raises:
            FtbenchError: the data cannot be read or a row is malformed (naming the file, row and field), or the
                selection is empty.
        """
        count = len(self.items(options))
        if count == 0:
            raise FtbenchError(f"task {self.name} selected no items; check its data options (source, data_dir, count)")
        return count

    def audit_text(self, item: dict[str, Any]) -> str:
        """The plain text the leakage audit compares with training rows: ``leakage_text``, else the strings and
        numbers of the row lm-eval receives (``tasks.item_text``), without the prompt's wording."""
        from ftbench.tasks.item_text import item_text

        return self.leakage_text(item) if self.leakage_text is not None else item_text(self.lm_eval_row(item))

    def definition_hash(self) -> str:
        """sha256 of the files that define the task (its YAML and Python), so an edit invalidates its results."""
        digest = hashlib.sha256()
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and path.suffix in (".yaml", ".py") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(self.folder).as_posix().encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()


def _dataset(task: Task, options: TaskOptions, **metadata: Any) -> dict[str, Any]:
    """lm-eval's ``custom_dataset`` hook of one evaluation: the items its options select, as the ``test`` split
    (lm-eval's metadata is not read: the options are already typed)."""
    from ftbench.tasks.data import test_split

    return test_split(task.name, [task.lm_eval_row(item) for item in task.items(options)])


TaskOf = Callable[[EvalRequest], Task]
"""The task a stored request evaluated (the registry's ``recorded_task``): what the application hands the layers that
read stored records but know no task registry (the store, the statistics)."""


def _read_lm_eval_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    config: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_TagsIgnored) or {}
    included = config.pop("include", None)
    return {**_read_lm_eval_yaml(path.parent / included), **config} if included else config
