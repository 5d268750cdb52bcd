"""Training rows for each method, drawn only from the training splits and checked against the evaluation items.

Countdown trains on rows 0..9001 (the evaluation uses 9002..10001) less any puzzle that also appears among
the evaluation items; UltraFeedback trains on ``train_prefs`` rows whose prompt is not a ``test_prefs``
prompt. Extra files given in ``data.files`` pass the same check. Rows are chat conversations, the format
TRL's trainers read: ``prompt`` (the user turn) and ``completion`` / ``chosen`` / ``rejected`` (the
assistant turn), so the loss and the preference covers the assistant's tokens only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from transformers import PreTrainedTokenizerBase

from harness.checkpoints import DataSource
from harness.errors import FtbenchError
from tasks.countdown.dataset import HUB_ID as COUNTDOWN_HUB_ID
from tasks.countdown.dataset import LOCAL_FILE as COUNTDOWN_FILE
from tasks.countdown.dataset import TRAIN_ROWS, countdown_items
from tasks.countdown.task import doc_to_text
from tasks.countdown.traces import RESPONSE_PREFIX, warm_start_trace
from tasks.data import local_file, read_rows
from tasks.ultrafeedback.dataset import TEST_FILE, TRAIN_FILE, TRAIN_HUB_ID, evaluation_items, train_pairs
from trainers.config import DataSettings

Message = dict[str, str]


class TrainingRows(NamedTuple):
    """A method's rows, the source each row came from, the sources' manifest entries, and the split check."""

    rows: list[dict[str, Any]]
    origins: list[str]
    """The ``DataSource.name`` of each row."""
    sources: list[DataSource]
    split: dict[str, Any]


def user(text: str) -> list[Message]:
    """A user turn."""
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[Message]:
    """An assistant turn."""
    return [{"role": "assistant", "content": text}]


def evaluation_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The prompt exactly as the evaluation renders it: the chat template, then the response prefix.

    Completions then continue after ``<think>`` as they do in the evaluation, and the reward scores the
    continuation, which is where the ``<answer>`` tag is.
    """
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)) + RESPONSE_PREFIX


def _puzzle_key(target: Any, nums: Any) -> tuple[int, tuple[int, ...]]:
    return int(target), tuple(sorted(int(n) for n in nums))


class HeldOut:
    """The evaluation items that training must not see: Countdown puzzles and UltraFeedback test prompts."""

    def __init__(self, data: DataSettings) -> None:
        self.data = data

    @cached_property
    def puzzles(self) -> set[tuple[int, tuple[int, ...]]]:
        """Countdown evaluation puzzles as (target, sorted numbers)."""
        items = countdown_items("test", self.data.source, self.data.data_dir)
        return {_puzzle_key(item["target"], item["nums"]) for item in items}

    @cached_property
    def prompts(self) -> set[str]:
        """UltraFeedback evaluation prompts."""
        return {item["prompt"] for item in evaluation_items(_ultrafeedback_mode(self.data), self.data.data_dir)}


class Puzzles(NamedTuple):
    """Countdown training puzzles, and how many training rows were dropped as evaluation puzzles."""

    items: list[dict[str, Any]]
    dropped: int


def countdown_puzzles(data: DataSettings, held_out: HeldOut, seed: int) -> Puzzles:
    """The first ``data.countdown_rows`` training puzzles that are not also evaluation puzzles."""
    if data.countdown_rows == 0:
        return Puzzles([], 0)
    count = max(data.countdown_rows * 2, 100)
    items = countdown_items("train", data.source, data.data_dir, seed, count)
    kept = [item for item in items if _puzzle_key(item["target"], item["nums"]) not in held_out.puzzles]
    return Puzzles(kept[: data.countdown_rows], len(items) - len(kept))


def countdown_source(data: DataSettings, rows: int, use: str) -> DataSource:
    """The manifest entry of the Countdown training puzzles."""
    origin = "generated puzzles (train seed)" if data.source == "generated" else f"{COUNTDOWN_HUB_ID} rows 0..9001"
    return DataSource(name="countdown", source=f"{origin}; {use}", split="train", rows=rows)


def _ultrafeedback_mode(data: DataSettings) -> str:
    """The UltraFeedback source (Countdown's ``generated`` has no UltraFeedback counterpart: auto)."""
    return "auto" if data.source == "generated" else data.source


def ultrafeedback_pairs(data: DataSettings) -> list[dict[str, Any]]:
    """UltraFeedback training pairs ``{prompt, chosen, rejected}`` (plain text); ``train_pairs`` already leaves
    out every prompt of the evaluation items."""
    if data.ultrafeedback_rows == 0:
        return []
    return train_pairs(_ultrafeedback_mode(data), data.data_dir)


def ultrafeedback_source(rows: int, use: str) -> DataSource:
    """The manifest entry of the UltraFeedback training rows."""
    return DataSource(name="ultrafeedback", source=f"{TRAIN_HUB_ID} train_prefs; {use}", split="train", rows=rows)


def data_files(data: DataSettings) -> list[Path]:
    """The files a stage's data is read from, for the stage's input hash."""
    built_in = [local_file(name, data.data_dir) for name in (TRAIN_FILE, TEST_FILE, COUNTDOWN_FILE)]
    return [path for path in built_in if path is not None] + list(data.files)


def extra_rows(data: DataSettings, fields: tuple[str, ...], held_out: HeldOut) -> dict[Path, list[dict[str, Any]]]:
    """Rows of each of ``data.files``, checked for ``fields`` and against the evaluation items.

    Raises:
        FtbenchError: a missing file or field, or a row that is an evaluation item.
    """
    found: dict[Path, list[dict[str, Any]]] = {}
    for path in data.files:
        if not path.is_file():
            raise FtbenchError(f"data file {path} does not exist; fix data.files")
        found[path] = read_rows(path, fields)
        for index, row in enumerate(found[path]):
            leak = _evaluation_item(row, held_out)
            if leak:
                raise FtbenchError(f"{path} row {index} is {leak}; remove it from the training data")
    return found


def file_source(path: Path, rows: int) -> DataSource:
    """The manifest entry of an extra data file."""
    return DataSource(name=path.name, source=str(path), split="train", rows=rows)


def _evaluation_item(row: dict[str, Any], held_out: HeldOut) -> str | None:
    if "target" in row and "nums" in row and _puzzle_key(row["target"], row["nums"]) in held_out.puzzles:
        return "a Countdown evaluation puzzle"
    prompt = row.get("prompt")
    if prompt is None and isinstance(row.get("messages"), list):
        prompt = next((m.get("content") for m in row["messages"] if m.get("role") == "user"), None)
    if isinstance(prompt, str) and prompt in held_out.prompts:
        return "an UltraFeedback test_prefs prompt"
    return None


RowFilter = Callable[[dict[str, Any]], bool]


def _keep_all(row: dict[str, Any]) -> bool:
    return True


def sft_rows(data: DataSettings, seed: int, fits: RowFilter = _keep_all) -> TrainingRows:
    """Prompt-completion conversations: Countdown solver traces and UltraFeedback chosen responses.

    ``data.ultrafeedback_rows`` counts rows that pass ``fits`` (a length limit), so that many are trained on.

    Raises:
        FtbenchError: bad extra files, or no rows at all.
    """
    held_out = HeldOut(data)
    puzzles, dropped = countdown_puzzles(data, held_out, seed)
    traced = [(p, trace) for p in puzzles if (trace := warm_start_trace(p["target"], p["nums"])) is not None]
    rows = [{"prompt": user(doc_to_text(p)), "completion": assistant(trace)} for p, trace in traced]
    candidates = (
        {"prompt": user(p["prompt"]), "completion": assistant(p["chosen"])} for p in ultrafeedback_pairs(data)
    )
    chosen = list(islice((row for row in candidates if fits(row)), data.ultrafeedback_rows))
    rows += chosen
    origins = ["countdown"] * len(traced) + ["ultrafeedback"] * len(chosen)
    sources = [countdown_source(data, len(traced), "solver warm-start traces")] if traced else []
    sources += [ultrafeedback_source(len(chosen), "chosen responses")] if chosen else []
    for path, file_rows in extra_rows(data, ("messages",), held_out).items():
        rows += [_messages_row(row["messages"], path) for row in file_rows]
        origins += [path.name] * len(file_rows)
        sources.append(file_source(path, len(file_rows)))
    if not rows:
        raise FtbenchError("SFT has no training rows; set data.countdown_rows, data.ultrafeedback_rows or data.files")
    return TrainingRows(rows, origins, sources, split_record(held_out, dropped))


def preference_rows(
    data: DataSettings,
    seed: int,
    fits: RowFilter = _keep_all,
    on_policy: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> TrainingRows:
    """Preference pairs: on-policy Countdown pairs (``on_policy`` samples and scores the puzzles) and
    UltraFeedback chosen/rejected pairs (``data.ultrafeedback_rows`` of those that pass ``fits``).

    Raises:
        FtbenchError: Countdown rows without on-policy sampling, bad extra files, or no pairs at all.
    """
    held_out = HeldOut(data)
    if data.countdown_rows and on_policy is None:
        raise FtbenchError("Countdown preference pairs are sampled on-policy (train dpo); set data.countdown_rows=0")
    puzzles, dropped = countdown_puzzles(data, held_out, seed)
    extra = extra_rows(data, ("prompt", "chosen", "rejected"), held_out)  # checked before any sampling
    rows = on_policy(puzzles) if puzzles and on_policy else []
    origins = ["countdown"] * len(rows)
    sources = [countdown_source(data, len(rows), f"on-policy pairs from {len(puzzles)} puzzles")] if puzzles else []
    candidates = (
        {"prompt": user(p["prompt"]), "chosen": assistant(p["chosen"]), "rejected": assistant(p["rejected"])}
        for p in ultrafeedback_pairs(data)
    )
    pairs = list(islice((row for row in candidates if fits(row)), data.ultrafeedback_rows))
    rows += pairs
    origins += ["ultrafeedback"] * len(pairs)
    sources += [ultrafeedback_source(len(pairs), "chosen vs rejected")] if pairs else []
    for path, file_rows in extra.items():
        rows += [
            {"prompt": user(r["prompt"]), "chosen": assistant(r["chosen"]), "rejected": assistant(r["rejected"])}
            for r in file_rows
        ]
        origins += [path.name] * len(file_rows)
        sources.append(file_source(path, len(file_rows)))
    if not rows:
        raise FtbenchError(
            "no preference pairs; set data.ultrafeedback_rows or data.files (DPO: raise sampling.samples or "
            "data.countdown_rows)"
        )
    return TrainingRows(rows, origins, sources, split_record(held_out, dropped))


def rloo_rows(data: DataSettings, seed: int) -> TrainingRows:
    """Countdown prompts with the ``target`` and ``nums`` columns that the reward function reads.

    Raises:
        FtbenchError: bad extra files, or no prompts at all.
    """
    held_out = HeldOut(data)
    puzzles, dropped = countdown_puzzles(data, held_out, seed)
    origins = ["countdown"] * len(puzzles)
    sources = [countdown_source(data, len(puzzles), "prompts")] if puzzles else []
    for path, found in extra_rows(data, ("target", "nums"), held_out).items():
        puzzles += found
        origins += [path.name] * len(found)
        sources.append(file_source(path, len(found)))
    if not puzzles:
        raise FtbenchError("RLOO has no prompts; set data.countdown_rows or data.files")
    rows = [{"prompt": user(doc_to_text(p)), "target": int(p["target"]), "nums": list(p["nums"])} for p in puzzles]
    return TrainingRows(rows, origins, sources, split_record(held_out, dropped))


def _messages_row(messages: list[dict[str, str]], path: Path) -> dict[str, Any]:
    if not messages or messages[-1].get("role") != "assistant":
        raise FtbenchError(f"{path}: every row's messages must end with an assistant message")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def length_filter(tokenizer: PreTrainedTokenizerBase, limit: int | None, responses: tuple[str, ...]) -> RowFilter:
    """Whether a row's prompt plus each response fits in ``limit`` tokens as the chat template renders them."""

    def length(row: dict[str, Any], response: str) -> int:
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


def split_record(held_out: HeldOut, dropped_puzzles: int) -> dict[str, Any]:
    """What the manifest records about the train/evaluation split."""
    return {
        "countdown": f"train rows {TRAIN_ROWS.start}..{TRAIN_ROWS.stop - 1}; evaluation rows 9002..10001",
        "countdown_dropped_as_evaluation_puzzles": dropped_puzzles,
        "ultrafeedback": "train_prefs rows whose prompt is not a test_prefs prompt",
        "checked": True,
    }
