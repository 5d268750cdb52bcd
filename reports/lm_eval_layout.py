"""A stored run in lm-evaluation-harness's own output layout, so that tools reading lm-eval's output read it.

lm-eval's ``--output_path DIR --log_samples`` writes one folder per model; a run holds several variants, so the
export writes one folder per variant (a checkpoint at a precision), each as lm-eval would have written it::

    <model>/results_<datetime>.json           lm-eval's results dict for every task the variant was evaluated on
    <model>/samples_<task>_<datetime>.jsonl   one line per scored sample of that task

``<model>`` is the variant's name, ``<checkpoint path>@<precision>`` (``@<engine>`` added for engines other than
transformers, ``@repeat<r>`` for a repeat of a sampled evaluation), sanitized as lm-eval sanitizes model names;
``<datetime>`` is the run's end (UTC) written as lm-eval writes it. Metrics are keyed ``metric,none`` and
``metric_stderr,none`` (ftbench's metrics are lm-eval's ``none`` filter), with ``"N/A"`` for a missing standard
error, as lm-eval does. ftbench does not store the dataset rows, the choices of a multiple-choice item, the
greedy flags or the log-likelihood of a perplexity document: those are written as ``{}`` (``doc``) and ``null``;
everything else, hashes included, is what lm-eval computes, and a top-level ``ftbench`` entry names the run and
the evaluations behind the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.names import name_problem, terminal_text
from ftbench.harness.core.records import EvalRecord, RunRecord, SampleRecord
from ftbench.harness.core.store import RUN_FILE, load_run, load_run_evals
from ftbench.tasks.base import Task
from ftbench.tasks.registry import recorded_task

FILTER = "none"
"""lm-eval's filter that ftbench's metrics and samples come from."""
MISSING_STDERR = "N/A"
"""What lm-eval writes for a metric without a standard error."""
UNSAFE_IN_MODEL_NAME = re.compile(r"[\"<>:/|\\?*\[\]]+")
"""The characters lm-eval replaces by ``__`` in a model's folder name (``lm_eval.utils.sanitize_model_name``)."""


class ExportedModel(NamedTuple):
    """One variant's folder as written: its results file and its samples files, one per task."""

    folder: Path
    results: Path
    samples: list[Path]


def sanitize_model_name(name: str) -> str:
    """A model name as lm-eval names its folder."""
    return UNSAFE_IN_MODEL_NAME.sub("__", name)


def hash_string(text: str) -> str:
    """lm-eval's hash of a document, prompt or target: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_name(record: EvalRecord) -> str:
    """The name a variant's folder and results carry: ``<checkpoint>@<precision>``, with ``@<engine>`` for engines
    other than transformers and ``@repeat<r>`` for a repeat."""
    variant = record.variant
    name = f"{variant.checkpoint}@{variant.precision}"
    if variant.engine != "hf":
        name += f"@{variant.engine}"
    if record.request.repeat:
        name += f"@repeat{record.request.repeat}"
    return name


def _utc(stamp: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise FtbenchError(f"{RUN_FILE} has an unreadable {what} time {stamp!r}; re-run `ftbench run`") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def file_datetime(run: RunRecord) -> str:
    """The ``<datetime>`` of the file names: the run's end in UTC, as lm-eval writes its save time."""
    moment = _utc(run.finished_at, "finish").replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds").replace(":", "-")


def _check_task_name(name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise FtbenchError(
            f"task name {terminal_text(repr(name))} cannot be part of a file name (it {problem}); rename the task in "
            "the spec and re-run"
        )


def variant_folders(records: Sequence[EvalRecord]) -> dict[str, list[EvalRecord]]:
    """The records of each variant (see ``model_name``), by the name of its folder, in run order.

    Raises:
        FtbenchError: a task name that cannot be part of a file name, or two variants whose names sanitize to
            one folder name.
    """
    by_name: dict[str, list[EvalRecord]] = {}
    for record in records:
        _check_task_name(record.task)
        by_name.setdefault(model_name(record), []).append(record)
    folders: dict[str, list[EvalRecord]] = {}
    for name, group in by_name.items():
        folder = sanitize_model_name(name)
        tasks = [record.task for record in group]
        if folder in folders or len(set(tasks)) < len(tasks):
            raise FtbenchError(
                f"two evaluations would share the folder {folder!r} (variants whose names differ only in "
                "characters lm-eval replaces); rename one of the checkpoints"
            )
        folders[folder] = group
    return folders


def generation_arguments(record: EvalRecord, definition: dict[str, Any]) -> dict[str, Any]:
    """The generation settings lm-eval ran with: the task's own, the request's over them."""
    return {**(definition.get("generation_kwargs") or {}), **record.request.generation}


def task_config(record: EvalRecord, task: Task, definition: dict[str, Any]) -> dict[str, Any]:
    """lm-eval's config of the task as data (``configs`` of the results), with the options the run gave."""
    config = dict(definition)
    config.setdefault("task", record.task)
    config.setdefault("output_type", task.output)
    config.setdefault("num_fewshot", 0)
    config.setdefault("metric_list", [{"metric": name} for name in task.metrics])
    if task.generative:
        config["generation_kwargs"] = generation_arguments(record, definition)
    config["metadata"] = {**(definition.get("metadata") or {}), **record.request.options}
    return config


def task_results(record: EvalRecord, config: dict[str, Any]) -> dict[str, Any]:
    """One task's entry of ``results``: its name, alias, sample count and ``metric,filter`` values."""
    entry: dict[str, Any] = {
        "name": record.task,
        "alias": config.get("task_alias", record.task),
        "sample_len": effective_count(record),
    }
    for name, metric in record.metrics.items():
        entry[f"{name},{FILTER}"] = metric.value
        entry[f"{name}_stderr,{FILTER}"] = metric.stderr if metric.stderr is not None else MISSING_STDERR
    return entry


def effective_count(record: EvalRecord) -> int:
    """How many documents were evaluated (lm-eval's ``sample_len`` and effective ``n-samples``)."""
    return max((metric.n for metric in record.metrics.values()), default=len(record.samples))


def sample_line(sample: SampleRecord, output: str, generation: dict[str, Any]) -> dict[str, Any]:
    """One line of a samples file: lm-eval's fields (arguments and responses sanitized as lm-eval writes them),
    then the sample's per-metric scores."""
    arguments: dict[str, dict[str, Any]]
    if output == "multiple_choice":
        loglikelihoods = sample.choice_loglikelihoods or []
        arguments = {f"gen_args_{i}": {"arg_0": sample.prompt, "arg_1": None} for i in range(len(loglikelihoods))}
        resps: list[Any] = [[[str(value), None]] for value in loglikelihoods]
        filtered: list[Any] = [[str(value), None] for value in loglikelihoods]
    elif output == "generate_until":
        arguments = {"gen_args_0": {"arg_0": sample.prompt, "arg_1": generation}}
        resps, filtered = [[sample.response]], [sample.response]
    else:
        arguments = {"gen_args_0": {"arg_0": sample.prompt}}
        resps, filtered = [[None]], [None]
    line: dict[str, Any] = {
        "doc_id": sample.doc_id,
        "doc": {},
        "target": sample.target,
        "arguments": arguments,
        "resps": resps,
        "filtered_resps": filtered,
        "filter": FILTER,
        "metrics": list(sample.scores),
        "doc_hash": sample.doc_hash,
        "prompt_hash": hash_string(sample.prompt),
        "target_hash": hash_string(sample.target),
    }
    return line | {name: value for name, value in sample.scores.items() if name not in line}


def task_hash(lines: Sequence[dict[str, Any]]) -> str:
    """lm-eval's hash of a task's samples (``task_hashes``)."""
    return hash_string("".join(line["doc_hash"] + line["prompt_hash"] + line["target_hash"] for line in lines))


def _shared(values: Sequence[Any]) -> Any:
    """The value every evaluation of a folder shares, else None (lm-eval writes one per results file)."""
    return values[0] if values and all(value == values[0] for value in values) else None


def evaluation_config(records: Sequence[EvalRecord]) -> dict[str, Any]:
    """``config`` of the results: the model and the settings its evaluations ran with."""
    variant, requests = records[0].variant, [record.request for record in records]
    model_args = {"pretrained": variant.base or variant.checkpoint}
    if variant.base:
        model_args["peft"] = variant.checkpoint
    seed = _shared([request.effective_seed for request in requests])
    return {
        "model": variant.checkpoint,
        "model_args": model_args,
        "batch_size": _shared([request.batch_size for request in requests]),
        "batch_sizes": [],
        "device": variant.device,
        "use_cache": None,
        "limit": _shared([request.limit for request in requests]),
        "gen_kwargs": _shared([dict(request.generation) for request in requests]) or None,
        "random_seed": seed,
        "numpy_seed": seed,
        "torch_seed": seed,
        "fewshot_seed": seed,
    }


class TaskExport(NamedTuple):
    """One evaluation as lm-eval reports a task: its config, its results entry and its samples lines."""

    record: EvalRecord
    config: dict[str, Any]
    version: Any
    higher_is_better: dict[str, bool | None]
    system_prompt: str | None
    lines: list[dict[str, Any]]


def task_export(record: EvalRecord) -> TaskExport:
    """One evaluation in lm-eval's terms, with its task's metadata (rebuilt from the record's request).

    Raises:
        FtbenchError: the record names a task this version does not have.
    """
    task = recorded_task(record.request)
    definition = task.lm_eval_definition()
    config = task_config(record, task, definition)
    generation = config.get("generation_kwargs") or {}
    return TaskExport(
        record=record,
        config=config,
        version=(definition.get("metadata") or {}).get("version"),
        higher_is_better={
            name: task.metrics[name].higher_is_better if name in task.metrics else None for name in record.metrics
        },
        system_prompt=task.system_prompt,
        lines=[sample_line(sample, task.output, generation) for sample in record.samples],
    )


def _sample_counts(record: EvalRecord) -> dict[str, int | None]:
    """lm-eval's ``original`` (the task's documents; unknown when a limit cut them) and ``effective`` counts."""
    count = effective_count(record)
    limit = record.request.limit
    return {"original": count if limit is None or count < limit else None, "effective": count}


def results_document(run: RunRecord, name: str, folder: str, exports: Sequence[TaskExport]) -> dict[str, Any]:
    """The results file of one variant: lm-eval's results dict, with its keys in lm-eval's order."""
    records = [export.record for export in exports]
    by_task = {export.record.task: export for export in exports}
    provenance, variant = run.provenance, records[0].variant
    system = _shared([export.system_prompt for export in exports])
    return {
        "results": {task: task_results(e.record, e.config) for task, e in by_task.items()},
        "group_subtasks": {},
        "configs": {task: e.config for task, e in by_task.items()},
        "versions": {task: e.version for task, e in by_task.items()},
        "n-shot": {task: e.config["num_fewshot"] for task, e in by_task.items()},
        "higher_is_better": {task: e.higher_is_better for task, e in by_task.items()},
        "n-samples": {task: _sample_counts(e.record) for task, e in by_task.items()},
        "config": evaluation_config(records),
        "git_hash": provenance.git_commit,
        "date": _utc(run.started_at, "start").timestamp(),
        "pretty_env_info": f"{provenance.platform}; Python {provenance.python}; {provenance.device_name}",
        "transformers_version": provenance.versions.get("transformers", "N/A"),
        "lm_eval_version": provenance.versions.get("lm_eval", "N/A"),
        "upper_git_hash": None,
        "task_hashes": {task: task_hash(e.lines) for task, e in by_task.items()},
        "model_source": variant.engine,
        "model_name": name,
        "model_name_sanitized": folder,
        "system_instruction": system,
        "system_instruction_sha": hash_string(system) if system else None,
        "fewshot_as_multiturn": None,
        "chat_template": None,
        "chat_template_sha": None,
        "total_evaluation_time_seconds": str(sum(record.performance.wall_seconds for record in records)),
        "ftbench": {
            "run": run.name,
            "variant": variant.model_dump(mode="json"),
            "evaluations": {record.task: record.key for record in records},
            "chat_template": {record.task: record.request.chat_template for record in records},
        },
    }


def _json_default(value: Any) -> Any:
    """What lm-eval's writer does with values JSON lacks, except that a function (a task hook) becomes null."""
    if callable(value):
        return None
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


LINE_BREAKS_IN_TEXT = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
"""Characters JSON leaves unescaped that some readers split lines at: escaped, so a sample stays one line."""


def _dumps(data: Any, indent: int | None = None) -> str:
    """JSON as lm-eval writes it (UTF-8 text, not ASCII escapes), with the line breaks of ``str.splitlines``
    escaped; they occur only inside strings, where the escape means the same character."""
    return json.dumps(data, indent=indent, default=_json_default, ensure_ascii=False).translate(LINE_BREAKS_IN_TEXT)


class LayoutFolder(NamedTuple):
    """One variant's folder before it is written: its name and its files (name -> text), results first."""

    name: str
    files: dict[str, str]


def lm_eval_layout(results_dir: Path) -> list[LayoutFolder]:
    """The lm-eval layout of the run stored in ``results_dir``, built in memory (nothing is written).

    Raises:
        FtbenchError: not a results directory, a record that fails verification, a task this version does not
            have, or variants whose folder names would collide.
    """
    run = load_run(results_dir)
    records = load_run_evals(results_dir)
    stamp = file_datetime(run)
    folders = []
    for folder, group in variant_folders(records).items():
        exports = [task_export(record) for record in group]
        files = {f"results_{stamp}.json": _dumps(results_document(run, model_name(group[0]), folder, exports), 2)}
        for export in exports:
            lines = "".join(_dumps(line) + "\n" for line in export.lines)
            files[f"samples_{export.record.task}_{stamp}.jsonl"] = lines
        folders.append(LayoutFolder(folder, files))
    return folders


def _move_into_place(staged: Path, target: Path, files: Sequence[str]) -> ExportedModel:
    if target.exists():
        for name in files:
            os.replace(staged / name, target / name)
    else:
        os.replace(staged, target)
    return ExportedModel(target, target / files[0], [target / name for name in files[1:]])


def export_lm_eval(results_dir: Path, out: Path) -> list[ExportedModel]:
    """Write the run in ``results_dir`` in lm-eval's layout under ``out`` (beside any lm-eval output there).

    Every file is built before anything is written, and written into a staging folder that is then moved into
    place, so a failure leaves no partial export.

    Raises:
        FtbenchError: what ``lm_eval_layout`` refuses, or a file in ``out`` where a variant's folder goes.
        OSError: ``out`` cannot be made or written.
    """
    folders = lm_eval_layout(results_dir)
    for folder in folders:
        if (out / folder.name).exists() and not (out / folder.name).is_dir():
            raise FtbenchError(f"{out / folder.name} is a file, where the export puts a folder; move it away")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".ftbench-lm-eval-"))
    try:
        for folder in folders:
            (staging / folder.name).mkdir()
            for name, text in folder.files.items():
                (staging / folder.name / name).write_text(text, encoding="utf-8")
        return [_move_into_place(staging / f.name, out / f.name, list(f.files)) for f in folders]
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
