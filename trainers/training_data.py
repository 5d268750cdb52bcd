"""Training rows for each method, drawn through the tasks' training sides and from extra files, each checked
against the evaluation items.

Rows are chat conversations, the format TRL's trainers read: ``prompt`` (the user turn) and ``completion`` /
``chosen`` / ``rejected`` (the assistant turn), so the loss and the preference cover the assistant's tokens only.
The data settings name the tasks (``DataSettings.dataset_draws``, ``task_draws``); each task's training side
chooses its rows and never hands out an evaluation item; extra files pass every drawn task's check here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedTokenizerBase

from ftbench.harness.core.checkpoints import DataSource
from ftbench.harness.core.errors import FtbenchError
from ftbench.tasks.data import read_rows
from ftbench.tasks.training_side import Drawn, RewardedPrompts
from ftbench.trainers.config import DataSettings, TaskDraw

Message = dict[str, str]
Row = dict[str, Any]
RowFilter = Callable[[Row], bool]
OnPolicy = Callable[[RewardedPrompts, list[Row]], list[Row]]
"""Samples answers to prompt rows from the policy and returns preference pairs ranked by the prompts' reward."""


class RowPlace(NamedTuple):
    """Where one training row came from: a file and its 1-based line, or a draw and the row's 0-based position."""

    source: str
    line: int | None = None
    position: int | None = None


class TrainingRows(NamedTuple):
    """A method's rows, the source each row came from, the sources' manifest entries, and the split check."""

    rows: list[Row]
    origins: list[str]
    """The ``DataSource.name`` of each row."""
    sources: list[DataSource]
    split: dict[str, str | int | bool]
    places: tuple[RowPlace, ...] = ()
    """Where each row came from (its file and line, or its draw and position), for the rows' fingerprints."""


def evaluation_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[Message], prefix: str) -> str:
    """The prompt exactly as the evaluation renders it: the chat template, then the task's response prefix.

    Completions then continue after the prefix (Countdown's ``<think>``) as they do in the evaluation, and the
    reward scores the continuation.
    """
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)) + prefix


def data_files(data: DataSettings) -> list[Path]:
    """The files a stage's data is read from, for the stage's input hash."""
    # UltraFeedback's files before Countdown's: the order earlier versions hashed, so their stages are reused.
    draws = [*reversed(data.dataset_draws()), *data.task_draws()]
    return [path for draw in draws for path in draw.side.data_files(draw.options)] + list(data.files)


def prompt_draw(data: DataSettings) -> TaskDraw:
    """The draw RL prompts come from: the first dataset setting whose task has rewarded prompts (Countdown's).

    Raises:
        FtbenchError: no dataset setting has rewarded prompts.
    """
    draw = next((draw for draw in data.dataset_draws() if draw.side.prompts is not None), None)
    if draw is None:
        raise FtbenchError("no task behind the data settings has rewarded prompts; RLOO needs one")
    return draw


class _MessagesRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    messages: list[dict[str, str]] = Field(min_length=1)


class _PreferenceRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: str
    chosen: str
    rejected: str


def _evaluation_item(row: Row, draws: list[TaskDraw]) -> str | None:
    """What evaluation item ``row`` is, if it is one of a drawn task's."""
    return next((found for draw in draws if (found := draw.side.evaluation_item(draw.options, row))), None)


def extra_rows(data: DataSettings, row: type[BaseModel]) -> dict[Path, list[Row]]:
    """Rows of each of ``data.files``, validated as ``row`` and checked against the evaluation items.

    Raises:
        FtbenchError: a missing file or field, or a row that is an evaluation item.
    """
    draws = [*data.dataset_draws(), *data.task_draws()]
    found: dict[Path, list[Row]] = {}
    for path in data.files:
        if not path.is_file():
            raise FtbenchError(f"data file {path} does not exist; fix data.files")
        found[path] = [item.model_dump() for item in read_rows(path, row)]
        for index, item in enumerate(found[path]):
            leak = _evaluation_item(item, draws)
            if leak:
                raise FtbenchError(f"{path} row {index} is {leak}; remove it from the training data")
    return found


def _file_source(path: Path, rows: int) -> DataSource:
    return DataSource(name=path.name, source=str(path), split="train", rows=rows)


def _keep_all(row: Row) -> bool:
    return True


def _split_record(draws: list[TaskDraw], dropped: dict[str, int]) -> dict[str, str | int | bool]:
    """Each dataset setting's training split, and the items left out as evaluation items where a side counts them."""
    record: dict[str, str | int | bool] = {}
    for draw in draws:
        record[draw.name] = draw.side.split
        if draw.side.counts_dropped:
            record[f"{draw.name}_dropped_as_evaluation_{draw.side.items}"] = dropped.get(draw.name, 0)
    return {**record, "checked": True}


class _Collector:
    """Rows gathered source by source, with each row's origin and each source's manifest entry."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.origins: list[str] = []
        self.sources: list[DataSource] = []
        self.dropped: dict[str, int] = {}
        self.places: list[RowPlace] = []

    def add(self, name: str, source: str, rows: list[Row], file: Path | None = None) -> None:
        if not rows:
            return
        self.rows += rows
        self.origins += [name] * len(rows)
        lines = _row_lines(file, len(rows)) if file else [None] * len(rows)
        self.places += [
            RowPlace(source, line=line, position=None if line else index) for index, line in enumerate(lines)
        ]
        self.sources.append(
            _file_source(file, len(rows))
            if file
            else DataSource(name=name, source=source, split="train", rows=len(rows))
        )

    def drawn(self, draw: TaskDraw, drawn: Drawn) -> None:
        self.dropped[draw.name] = self.dropped.get(draw.name, 0) + drawn.dropped
        self.add(draw.name, drawn.source, drawn.rows)

    def done(self, draws: list[TaskDraw], empty: str) -> TrainingRows:
        if not self.rows:
            raise FtbenchError(empty)
        split = _split_record(draws, self.dropped)
        return TrainingRows(self.rows, self.origins, self.sources, split, tuple(self.places))


def _take(draw: TaskDraw, fetch: Callable[[int | None], Drawn], fits: RowFilter) -> Drawn:
    """``draw.rows`` rows from ``fetch`` (count -> rows); when they count rows within the length limit, the first
    ``draw.rows`` that pass ``fits``."""
    if not draw.within_length:
        return fetch(draw.rows)
    drawn = fetch(None)
    return drawn._replace(rows=list(islice(filter(fits, drawn.rows), draw.rows)))


def _sft(draw: TaskDraw, seed: int, fits: RowFilter) -> Drawn:
    sft = draw.side.sft
    if sft is None:
        raise FtbenchError(f"task {draw.task.name} has no SFT rows; set {draw.setting}=0")
    return _take(draw, lambda count: sft(draw.options, draw.split, count, seed), fits)


def sft_rows(data: DataSettings, seed: int, fits: RowFilter = _keep_all) -> TrainingRows:
    """Prompt-completion conversations from each drawn task's training side (Countdown solver traces,
    UltraFeedback chosen responses, ``data.tasks``), then extra files.

    ``data.ultrafeedback_rows`` counts rows that pass ``fits`` (a length limit), so that many are trained on.

    Raises:
        FtbenchError: bad extra files, or no rows at all.
    """
    dataset = data.dataset_draws()
    collected = _Collector()
    for draw in [*dataset, *data.task_draws()]:
        if draw.rows:
            collected.drawn(draw, _sft(draw, seed, fits))
    for path, file_rows in extra_rows(data, _MessagesRow).items():
        collected.add(path.name, str(path), [_messages_row(row["messages"], path) for row in file_rows], path)
    settings = ", ".join(draw.setting for draw in dataset if draw.side.sft is not None)
    return collected.done(dataset, f"SFT has no training rows; set {settings}, data.tasks or data.files")


def _pairs(draw: TaskDraw, seed: int, fits: RowFilter, on_policy: OnPolicy | None) -> Drawn:
    """A draw's offline preference pairs, or pairs sampled on-policy for its rewarded prompts."""
    side, preference = draw.side, draw.side.preference
    if preference is not None:
        return _take(draw, lambda count: preference(draw.options, count, seed), fits)
    if on_policy is None:
        raise FtbenchError(f"{draw.name} preference pairs are sampled on-policy (train dpo); set {draw.setting}=0")
    prompts = draw.prompts.draw(draw.options, draw.rows, seed)
    sampled = on_policy(draw.prompts, prompts.rows) if prompts.rows else []
    where = f"{side.source(draw.options)}; on-policy pairs from {len(prompts.rows)} {side.items}"
    return Drawn(sampled, where, prompts.dropped)


def preference_rows(
    data: DataSettings, seed: int, fits: RowFilter = _keep_all, on_policy: OnPolicy | None = None
) -> TrainingRows:
    """Preference pairs: on-policy pairs for a task's rewarded prompts (``on_policy`` samples and ranks them:
    Countdown), offline chosen/rejected pairs (``data.ultrafeedback_rows`` of those that pass ``fits``), extra files.

    Raises:
        FtbenchError: rewarded prompts without on-policy sampling, bad extra files, or no pairs at all.
    """
    dataset = data.dataset_draws()
    extra = extra_rows(data, _PreferenceRow)  # checked before any sampling
    collected = _Collector()
    for draw in dataset:
        if draw.rows:
            collected.drawn(draw, _pairs(draw, seed, fits, on_policy))
    for path, file_rows in extra.items():
        collected.add(path.name, str(path), [_preference_row(r) for r in file_rows], path)
    offline = " or ".join(draw.setting for draw in dataset if draw.side.preference is not None)
    sampled = " or ".join(draw.setting for draw in dataset if draw.side.preference is None and draw.side.prompts)
    return collected.done(
        dataset, f"no preference pairs; set {offline} or data.files (DPO: raise sampling.samples or {sampled})"
    )


def rloo_rows(data: DataSettings, seed: int) -> TrainingRows:
    """Prompts with the columns the reward function reads, from the task with rewarded prompts and extra files
    of its items.

    Raises:
        FtbenchError: bad extra files, or no prompts at all.
    """
    draw = prompt_draw(data)
    collected = _Collector()
    if draw.rows:
        collected.drawn(draw, draw.prompts.draw(draw.options, draw.rows, seed))
    for path, found in extra_rows(data, draw.prompts.item).items():
        collected.add(path.name, str(path), [draw.prompts.prompt(row) for row in found], path)
    return collected.done(data.dataset_draws(), f"RLOO has no prompts; set {draw.setting} or data.files")


def _preference_row(row: dict[str, Any]) -> dict[str, list[Message]]:
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


def _messages_row(messages: list[dict[str, str]], path: Path) -> dict[str, Any]:
    if not messages or messages[-1].get("role") != "assistant":
        raise FtbenchError(f"{path}: every row's messages must end with an assistant message")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def length_filter(tokenizer: PreTrainedTokenizerBase, limit: int | None, responses: tuple[str, ...]) -> RowFilter:
    """Whether a row's prompt plus each response fits in ``limit`` tokens, as the chat template renders chat rows."""

    def length(row: dict[str, Any], response: str) -> int:
        if isinstance(row["prompt"], str):  # plain text rows (a task's own format) are trained as written
            text = row["prompt"] + row[response]
        else:
            text = tokenizer.apply_chat_template(row["prompt"] + row[response], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def fits(row: dict[str, Any]) -> bool:
        return limit is None or max(length(row, response) for response in responses) <= limit

    return fits


def within_length(data: TrainingRows, fits: RowFilter) -> TrainingRows:
    """The rows that pass ``fits``; the sources' row counts become the rows kept.

    Trainers truncate long rows, which would cut answers off before they end; leaving them out keeps every
    trained answer whole.
    """
    keep = [i for i, row in enumerate(data.rows) if fits(row)]
    counts = Counter(data.origins[i] for i in keep)
    return TrainingRows(
        [data.rows[i] for i in keep],
        [data.origins[i] for i in keep],
        [source.model_copy(update={"rows": counts[source.name]}) for source in data.sources],
        data.split,
        tuple(data.places[i] for i in keep) if data.places else (),
    )


def _row_lines(path: Path, count: int) -> list[int | None]:
    """The 1-based line of each of a JSON-lines file's ``count`` rows (blank lines are skipped as ``read_rows``
    skips them); None for each row of a JSON array file."""
    if path.suffix == ".json":
        return [None] * count
    numbers = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    return list(numbers[:count]) + [None] * (count - len(numbers))
