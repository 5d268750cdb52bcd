"""A task from your own data: rows from a JSON-lines file or a hub dataset, a prompt (a field or a Jinja template
over the fields, with an optional system prompt), one or several references, and metrics from a fixed menu."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateError, UndefinedError
from jinja2.sandbox import SecurityError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftbench.harness.core.errors import FtbenchError, first_line
from ftbench.harness.core.records import SampleRecord
from ftbench.tasks.base import Metric, Task, TaskOptions
from ftbench.tasks.custom.scoring import corpus_score, exact_match, rouge, sentence_bleu, token_f1
from ftbench.tasks.custom.template import PromptLimitError, check_template, render
from ftbench.tasks.data import read_rows, test_split
from ftbench.tasks.training_side import Drawn, TrainingSide

CustomMetric = Literal["exact_match", "f1", "bleu", "chrf", "sentence_bleu", "rouge1", "rouge2", "rougeL"]
METRICS: dict[str, Metric] = {
    "exact_match": Metric("0-1 (share matching a reference after SQuAD normalization)", "binary"),
    "f1": Metric("0-1 (SQuAD token F1, best reference, mean)", "continuous"),
    "bleu": Metric("0-100 (sacrebleu corpus BLEU, all references)", "corpus"),
    "chrf": Metric("0-100 (sacrebleu corpus chrF, all references)", "corpus"),
    "sentence_bleu": Metric("0-100 (mean sacrebleu sentence BLEU)", "continuous"),
    "rouge1": Metric("0-1 (mean ROUGE-1 F-measure, best reference)", "continuous"),
    "rouge2": Metric("0-1 (mean ROUGE-2 F-measure, best reference)", "continuous"),
    "rougeL": Metric("0-1 (mean ROUGE-L F-measure, best reference)", "continuous"),
}
DEFAULT_METRICS: tuple[CustomMetric, ...] = ("exact_match", "f1", "bleu", "rougeL")
FOLDER = Path(__file__).parent


class CustomOptions(TaskOptions):
    """Where a custom task's rows come from and how they become prompts and references."""

    data: str
    """A JSON-lines (or JSON array) file, or a hub dataset id."""
    split: str = "test"
    """The evaluated split: the hub split, or for a file the rows whose ``split`` field has this value (every row
    when the rows have no ``split`` field)."""
    train_split: str = "train"
    """The split training draws from (same rules)."""
    group: str | None = None
    """A field whose value groups rows that must stay on one side (a conversation, a document): with it, a stable
    hash of each group puts ``test_share`` of the groups in ``test`` and the rest in ``train``."""
    group_pattern: str | None = None
    """A regular expression whose first group extracts the group from the field (``^(.*)_\\d+$`` for ids like
    ``conv7_3``); default: the whole value."""
    test_share: float = Field(default=0.2, gt=0.0, lt=1.0)
    prompt: str
    """A field name, or a Jinja template over the fields (``Question: {{ question }}``)."""
    system: str | None = None
    """A system prompt (rendered by the chat template)."""
    reference: str = "answer"
    """The field holding the reference: a string, or a list of strings (several references)."""
    metrics: list[CustomMetric] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    """The metrics to compute; the first is the headline."""

    @field_validator("prompt")
    @classmethod
    def _safe_prompt(cls, prompt: str) -> str:
        return check_template(prompt)

    @field_validator("metrics")
    @classmethod
    def _unique(cls, metrics: list[CustomMetric]) -> list[CustomMetric]:
        return list(dict.fromkeys(metrics))


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")


def group_split(options: CustomOptions, row: dict[str, Any], where: str) -> str:
    """``test`` or ``train`` for a row, by a stable hash of its group (see ``CustomOptions.group``)."""
    value = str(row.get(options.group or "", ""))
    if options.group not in row:
        raise FtbenchError(f"{where}: no group field {options.group!r} (fields: {', '.join(sorted(row))})")
    if options.group_pattern:
        match = re.match(options.group_pattern, value)
        value = match.group(1) if match and match.groups() else value
    bucket = int(hashlib.sha256(value.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < options.test_share else "train"


def _source_rows(options: CustomOptions, split: str) -> tuple[list[dict[str, Any]], str]:
    path = Path(options.data).expanduser()
    if path.is_file():
        rows = [row.model_dump() for row in read_rows(path, _Row)]
        if options.group is not None:
            rows = [row for i, row in enumerate(rows) if group_split(options, row, f"{path} row {i}") == split]
        elif any("split" in row for row in rows):
            rows = [row for row in rows if row.get("split") == split]
        return rows, str(path)
    if (
        "/" not in options.data
        or options.data.startswith((".", "/", "~"))
        or options.data.endswith((".jsonl", ".json"))
    ):
        raise FtbenchError(
            f"custom task data {options.data} does not exist; give a JSON-lines file or a hub dataset id"
        )
    import datasets

    try:
        return [dict(row) for row in datasets.load_dataset(options.data, split=split)], f"{options.data} {split}"
    except Exception as exc:  # the hub client raises many kinds
        raise FtbenchError(f"cannot load {options.data} ({split}) from the hub: {first_line(exc)}") from exc


def _prompt(options: CustomOptions, row: dict[str, Any], where: str) -> str:
    if "{{" not in options.prompt and "{%" not in options.prompt:
        if options.prompt not in row:
            raise FtbenchError(f"{where}: no prompt field {options.prompt!r} (fields: {', '.join(sorted(row))})")
        return str(row[options.prompt])
    try:
        return render(options.prompt, row)
    except PromptLimitError as exc:
        raise FtbenchError(
            f"{where}: options.prompt {exc}, more than a prompt may; make the template do less per row"
        ) from exc
    except UndefinedError as exc:
        raise FtbenchError(
            f"{where}: the prompt template names a field the row lacks ({exc.message}); "
            f"fields: {', '.join(sorted(row))}"
        ) from exc
    except SecurityError as exc:
        raise FtbenchError(
            f"the custom task's option prompt reaches what templates may not ({exc}); use only the row's fields"
        ) from exc
    except (TemplateError, TypeError) as exc:  # a syntax error; include/import/extends have no loader (TypeError)
        raise FtbenchError(
            f"the custom task's option prompt is not a usable template ({' '.join(str(exc).split())}); "
            "use only the row's fields, without include, import or extends"
        ) from exc
    except (ArithmeticError, ValueError, LookupError, RecursionError, MemoryError) as exc:
        raise FtbenchError(
            f"{where}: options.prompt fails on this row ({type(exc).__name__}: {first_line(exc, 200)}); fix the "
            "template or the row"
        ) from exc


def _references(options: CustomOptions, row: dict[str, Any], where: str) -> list[str]:
    value = row.get(options.reference)
    references = [value] if isinstance(value, str) else value
    if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
        raise FtbenchError(
            f"{where}: no reference in field {options.reference!r} (a string or a list of strings); set the "
            "option reference to the field that holds the answer"
        )
    return references


def custom_items(options: CustomOptions, split: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``split`` (default: the evaluated split) as items ``{id, ftbench_prompt, ftbench_references}``.

    Raises:
        FtbenchError: the data is missing, or a row lacks the prompt's fields or a reference (naming the row).
    """
    rows, source = _source_rows(options, split or options.split)
    items = []
    for index, row in enumerate(rows):
        where = f"{source} row {index}"
        items.append(
            {
                "id": str(row.get("id", index)),
                "ftbench_prompt": _prompt(options, row, where),
                "ftbench_references": _references(options, row, where),
            }
        )
    return items


def load(**metadata: Any) -> dict[str, Any]:
    """lm-eval ``custom_dataset`` hook (stock ``lm_eval``): the evaluated split's items (ftbench's own runs hand
    them over already parsed: ``Task.lm_eval_task``)."""
    return test_split("custom", custom_items(CustomOptions.from_metadata("custom", metadata)))


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """Every menu metric of one answer; BLEU and chrF as (references, answer) pairs for the corpus aggregation."""
    answer, references = results[0].strip(), list(doc["ftbench_references"])
    return {
        "exact_match": exact_match(answer, references),
        "f1": token_f1(answer, references),
        "bleu": (references, answer),
        "chrf": (references, answer),
        "sentence_bleu": sentence_bleu(answer, references),
        **rouge(answer, references),
    }


def corpus_bleu(items: Sequence[tuple[list[str], str]]) -> float:
    """lm-eval aggregation: sacrebleu corpus BLEU over (references, answer) pairs."""
    return corpus_score("bleu", [answer for _, answer in items], [refs for refs, _ in items])


def corpus_chrf(items: Sequence[tuple[list[str], str]]) -> float:
    """lm-eval aggregation: sacrebleu corpus chrF over (references, answer) pairs."""
    return corpus_score("chrf", [answer for _, answer in items], [refs for refs, _ in items])


def _stored_corpus(name: str) -> Any:
    def corpus(samples: Sequence[SampleRecord]) -> float:
        return corpus_score(name, [s.response.strip() for s in samples], [json.loads(s.target) for s in samples])

    return corpus


def lm_eval_config(name: str, options: CustomOptions) -> dict[str, Any]:
    """lm-eval's config of the custom task under ``name``, computing only the chosen metrics."""
    from lm_eval.tasks._yaml_loader import load_yaml

    config: dict[str, Any] = load_yaml(FOLDER / "custom.yaml", resolve_func=True)
    config["task"] = name
    config["doc_to_target"] = lambda doc: json.dumps(list(doc["ftbench_references"]))
    config["metric_list"] = [m for m in config["metric_list"] if m["metric"] in options.metrics]
    config["process_results"] = lambda doc, results: {
        name: value for name, value in process_results(doc, results).items() if name in options.metrics
    }
    return config


def custom_task(name: str, options: CustomOptions) -> Task:
    """The task ``name`` over ``options``'s data, with the metrics it chooses (the first is the headline)."""
    metrics: dict[str, Metric] = {
        metric: Metric(
            METRICS[metric].scale,
            METRICS[metric].kind,
            corpus=_stored_corpus(metric) if metric in ("bleu", "chrf") else None,
        )
        for metric in options.metrics
    }
    path = Path(options.data).expanduser()
    return Task(
        name=name,
        folder=FOLDER,
        output="generate_until",
        headline=options.metrics[0],
        metrics=metrics,
        options=CustomOptions,
        items=custom_items,
        data_paths=lambda _: [path] if path.is_file() else [],
        kind="custom",
        lm_eval_config=lambda: lm_eval_config(name, options),
        system_prompt=options.system,
        training=TrainingSide(
            split="the rows of the task's train_split, none repeating an evaluated prompt",
            source=lambda options: options.data,
            sft=_sft_rows,
            data_files=lambda _: [path] if path.is_file() else [],
        ),
    )


def _sft_rows(options: CustomOptions, split: str | None, count: int | None, seed: int) -> Drawn:
    from ftbench.tasks.custom.training import sft_draw  # training.py reads this module's items

    return sft_draw(options, split, count, seed)


def _defined_task(name: str, options: dict[str, Any]) -> Task:
    return custom_task(name, CustomOptions.parse(name, options))


KINDS = {"custom": _defined_task}
"""The kind of task a spec defines under its own name: ``task: custom``."""
