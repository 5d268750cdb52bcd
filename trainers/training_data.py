"""Training rows for each method, composed from the tasks' training sides and extra files, each checked against
the evaluation items.

Rows are chat conversations, the format TRL's trainers read: ``prompt`` (the user turn) and ``completion`` /
``chosen`` / ``rejected`` (the assistant turn), so the loss and the preference cover the assistant's tokens only.
The tasks choose their rows: Countdown (``tasks.countdown.training``) and UltraFeedback
(``tasks.ultrafeedback.training``) never hand out an evaluation item; extra files pass the same check here.
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
from ftbench.tasks.base import Task
from ftbench.tasks.countdown import training as countdown
from ftbench.tasks.countdown.dataset import LOCAL_FILE as COUNTDOWN_FILE
from ftbench.tasks.countdown.dataset import CountdownOptions
from ftbench.tasks.countdown.traces import RESPONSE_PREFIX
from ftbench.tasks.data import DataOptions, local_file, read_rows
from ftbench.tasks.registry import KINDS, resolve_task
from ftbench.tasks.ultrafeedback import training as ultrafeedback
from ftbench.tasks.ultrafeedback.dataset import TEST_FILE, TRAIN_FILE
from ftbench.trainers.config import DataSettings, TaskRows

Message = dict[str, str]
RowFilter = Callable[[dict[str, Any]], bool]


class TrainingRows(NamedTuple):
    """A method's rows, the source each row came from, the sources' manifest entries, and the split check."""

    rows: list[dict[str, Any]]
    origins: list[str]
    """The ``DataSource.name`` of each row."""
    sources: list[DataSource]
    split: dict[str, str | int | bool]


def evaluation_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The prompt exactly as the evaluation renders it: the chat template, then the response prefix.

    Completions then continue after ``<think>`` as they do in the evaluation, and the reward scores the
    continuation, which is where the ``<answer>`` tag is.
    """
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)) + RESPONSE_PREFIX


def countdown_options(data: DataSettings) -> CountdownOptions:
    """The Countdown data options of a stage's data settings."""
    return CountdownOptions(source=data.source, data_dir=data.data_dir)


def ultrafeedback_options(data: DataSettings) -> DataOptions:
    """The UltraFeedback data options (Countdown's ``generated`` has no UltraFeedback counterpart: auto)."""
    return DataOptions(source="auto" if data.source == "generated" else data.source, data_dir=data.data_dir)


def data_files(data: DataSettings) -> list[Path]:
    """The files a stage's data is read from, for the stage's input hash."""
    built_in = [local_file(name, data.data_dir) for name in (TRAIN_FILE, TEST_FILE, COUNTDOWN_FILE)]
    from_tasks = [path for entry in data.tasks for path in _task(entry).data_paths(_options(entry))]
    return [path for path in built_in if path is not None] + from_tasks + list(data.files)


def _task(entry: TaskRows) -> Task:
    """The task an entry draws from (a custom task is defined under a name of its own)."""
    if entry.task in KINDS:
        return resolve_task(f"training:{entry.task}", entry.task, entry.options)
    return resolve_task(entry.task)


def _options(entry: TaskRows) -> Any:
    return _task(entry).parse_options(entry.options)


def task_rows(entry: TaskRows, seed: int) -> list[dict[str, Any]]:
    """An entry's SFT rows from its task's training side.

    Raises:
        FtbenchError: the task has no training side, or its rows would include evaluated items.
    """
    task = _task(entry)
    if task.sft_rows is None:
        raise FtbenchError(f"task {entry.task} has no training rows; use arc_easy, arc_challenge or a custom task")
    return task.sft_rows(_options(entry), entry.split, entry.rows, seed)


class _MessagesRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    messages: list[dict[str, str]] = Field(min_length=1)


class _PreferenceRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: str
    chosen: str
    rejected: str


class _PuzzleRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    target: int
    nums: list[int]


def _countdown_evaluation_puzzle(row: dict[str, Any], data: DataSettings) -> bool:
    puzzles = countdown.evaluation_puzzles(countdown_options(data))
    return countdown.puzzle_key(row["target"], row["nums"]) in puzzles


def _evaluation_item(row: dict[str, Any], data: DataSettings) -> str | None:
    """What evaluation item ``row`` is, if it is one."""
    if "target" in row and "nums" in row and _countdown_evaluation_puzzle(row, data):
        return "a Countdown evaluation puzzle"
    prompt = row.get("prompt")
    if prompt is None and isinstance(row.get("messages"), list):
        prompt = next((m.get("content") for m in row["messages"] if m.get("role") == "user"), None)
    if isinstance(prompt, str) and prompt in ultrafeedback.evaluation_prompts(ultrafeedback_options(data)):
        return "an UltraFeedback test_prefs prompt"
    return None


def extra_rows(data: DataSettings, row: type[BaseModel]) -> dict[Path, list[dict[str, Any]]]:
    """Rows of each of ``data.files``, validated as ``row`` and checked against the evaluation items.

    Raises:
        FtbenchError: a missing file or field, or a row that is an evaluation item.
    """
    found: dict[Path, list[dict[str, Any]]] = {}
    for path in data.files:
        if not path.is_file():
            raise FtbenchError(f"data file {path} does not exist; fix data.files")
        found[path] = [item.model_dump() for item in read_rows(path, row)]
        for index, item in enumerate(found[path]):
            leak = _evaluation_item(item, data)
            if leak:
                raise FtbenchError(f"{path} row {index} is {leak}; remove it from the training data")
    return found


def _file_source(path: Path, rows: int) -> DataSource:
    return DataSource(name=path.name, source=str(path), split="train", rows=rows)


def _keep_all(row: dict[str, Any]) -> bool:
    return True


def _split_record(dropped_puzzles: int) -> dict[str, str | int | bool]:
    return {
        "countdown": countdown.SPLIT,
        "countdown_dropped_as_evaluation_puzzles": dropped_puzzles,
        "ultrafeedback": ultrafeedback.SPLIT,
        "checked": True,
    }


class _Collector:
    """Rows gathered source by source, with each row's origin and each source's manifest entry."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.origins: list[str] = []
        self.sources: list[DataSource] = []

    def add(self, name: str, source: str, rows: list[dict[str, Any]], file: Path | None = None) -> None:
        if not rows:
            return
        self.rows += rows
        self.origins += [name] * len(rows)
        self.sources.append(
            _file_source(file, len(rows))
            if file
            else DataSource(name=name, source=source, split="train", rows=len(rows))
        )

    def done(self, dropped: int, empty: str) -> TrainingRows:
        if not self.rows:
            raise FtbenchError(empty)
        return TrainingRows(self.rows, self.origins, self.sources, _split_record(dropped))


def sft_rows(data: DataSettings, seed: int, fits: RowFilter = _keep_all) -> TrainingRows:
    """Prompt-completion conversations: Countdown solver traces, UltraFeedback chosen responses, extra files.

    ``data.ultrafeedback_rows`` counts rows that pass ``fits`` (a length limit), so that many are trained on.

    Raises:
        FtbenchError: bad extra files, or no rows at all.
    """
    options = countdown_options(data)
    puzzles, dropped = countdown.training_puzzles(options, data.countdown_rows, seed)
    collected = _Collector()
    origin = countdown.source_description(options)
    collected.add("countdown", f"{origin}; solver warm-start traces", countdown.trace_rows(puzzles))
    if data.ultrafeedback_rows:
        chosen = (row for row in ultrafeedback.chosen_rows(ultrafeedback_options(data)) if fits(row))
        rows = list(islice(chosen, data.ultrafeedback_rows))
        collected.add("ultrafeedback", f"{ultrafeedback.SOURCE}; chosen responses", rows)
    for entry in data.tasks:
        where = f"{entry.task} {entry.split or 'training'} split"
        collected.add(entry.task, where, task_rows(entry, seed))
    for path, file_rows in extra_rows(data, _MessagesRow).items():
        collected.add(path.name, str(path), [_messages_row(row["messages"], path) for row in file_rows], path)
    return collected.done(
        dropped, "SFT has no training rows; set data.countdown_rows, data.ultrafeedback_rows, data.tasks or data.files"
    )


def preference_rows(
    data: DataSettings,
    seed: int,
    fits: RowFilter = _keep_all,
    on_policy: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> TrainingRows:
    """Preference pairs: on-policy Countdown pairs (``on_policy`` samples and scores the puzzles), UltraFeedback
    chosen/rejected pairs (``data.ultrafeedback_rows`` of those that pass ``fits``), and extra files.

    Raises:
        FtbenchError: Countdown rows without on-policy sampling, bad extra files, or no pairs at all.
    """
    if data.countdown_rows and on_policy is None:
        raise FtbenchError("Countdown preference pairs are sampled on-policy (train dpo); set data.countdown_rows=0")
    options = countdown_options(data)
    puzzles, dropped = countdown.training_puzzles(options, data.countdown_rows, seed)
    extra = extra_rows(data, _PreferenceRow)  # checked before any sampling
    collected = _Collector()
    sampled = on_policy(puzzles) if puzzles and on_policy else []
    collected.add(
        "countdown", f"{countdown.source_description(options)}; on-policy pairs from {len(puzzles)} puzzles", sampled
    )
    if data.ultrafeedback_rows:
        pairs = (row for row in ultrafeedback.preference_rows(ultrafeedback_options(data)) if fits(row))
        rows = list(islice(pairs, data.ultrafeedback_rows))
        collected.add("ultrafeedback", f"{ultrafeedback.SOURCE}; chosen vs rejected", rows)
    for path, file_rows in extra.items():
        collected.add(path.name, str(path), [_preference_row(r) for r in file_rows], path)
    return collected.done(
        dropped,
        "no preference pairs; set data.ultrafeedback_rows or data.files (DPO: raise sampling.samples or "
        "data.countdown_rows)",
    )


def rloo_rows(data: DataSettings, seed: int) -> TrainingRows:
    """Countdown prompts with the ``target`` and ``nums`` columns that the reward function reads.

    Raises:
        FtbenchError: bad extra files, or no prompts at all.
    """
    options = countdown_options(data)
    puzzles, dropped = countdown.training_puzzles(options, data.countdown_rows, seed)
    collected = _Collector()
    collected.add("countdown", f"{countdown.source_description(options)}; prompts", countdown.prompt_rows(puzzles))
    for path, found in extra_rows(data, _PuzzleRow).items():
        collected.add(path.name, str(path), countdown.prompt_rows(found), path)
    return collected.done(dropped, "RLOO has no prompts; set data.countdown_rows or data.files")


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
    )
