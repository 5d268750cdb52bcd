"""`ftbench export lm-eval`: a run in lm-eval's own output layout, read back with lm-eval's own code and compared
with what lm-eval's EvaluationTracker writes for the same evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from lm_eval import simple_evaluate
from lm_eval.loggers import EvaluationTracker
from lm_eval.tasks import TaskManager
from lm_eval.utils import (
    get_file_datetime,
    get_file_task_name,
    get_latest_filename,
    get_results_filenames,
    get_sample_results_filenames,
    make_table,
    sanitize_model_name,
)
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import eval_path, load_run_evals
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.reports.lm_eval_layout import export_lm_eval
from ftbench.tasks.registry import TASKS
from tests.records import make_record, with_request, write_results

runner = CliRunner()
TASK_NAMES = ("arc_easy", "arc_easy_gen")
LIMIT = 3
SEED = 1
TOKENIZER_KEYS = {"tokenizer_pad_token", "tokenizer_eos_token", "tokenizer_bos_token", "eot_token_id", "max_length"}
"""What lm-eval adds from a live tokenizer, which a stored run does not have."""
UNTRUSTED = 'say "hi"\n</script><script>alert(1)</script>\u2028\x85\u2029\x00 done'


class ModelFolder(NamedTuple):
    """One model's folder as lm-eval's own helpers find its files."""

    results: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]]


def read_model_folder(folder: Path) -> ModelFolder:
    """The latest results and each task's samples, found the way lm-eval's scripts find them."""
    files = [path.as_posix() for path in folder.iterdir() if path.is_file()]
    results = json.loads(Path(get_latest_filename(get_results_filenames(files))).read_text(encoding="utf-8"))
    samples = {}
    for name in get_sample_results_filenames(files):
        lines = Path(name).read_text(encoding="utf-8").splitlines()
        samples[get_file_task_name(Path(name).name)] = [json.loads(line) for line in lines]
    return ModelFolder(results, samples)


class Exported(NamedTuple):
    run: Path
    out: Path
    stdout: str
    genuine: Path


def _ftbench_run(model: Path, out: Path) -> Path:
    spec = parse_spec(
        {
            "checkpoints": [str(model)],
            "precisions": ["fp32", "nf4"],
            "tasks": [{"name": name, "options": {"source": "local"}, "chat_template": False} for name in TASK_NAMES],
            "limit": LIMIT,
            "seed": SEED,
            "batch_size": 4,
            "device": "cpu",
            "out": str(out),
        },
        "test",
    )
    run_spec(spec)
    return out


def _genuine_lm_eval(model: Path, out: Path) -> Path:
    """What `lm_eval --model hf --output_path OUT --log_samples` writes for the same tasks, through lm-eval's own
    tracker and in the order its CLI saves."""
    manager = TaskManager(
        include_path=[str(TASKS["arc_easy"].folder)], include_defaults=False, metadata={"source": "local"}
    )
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(
        model="hf",
        model_args=f"pretrained={model}",
        tasks=list(TASK_NAMES),
        task_manager=manager,
        device="cpu",
        batch_size=4,
        limit=LIMIT,
        log_samples=True,
        evaluation_tracker=tracker,
        random_seed=SEED,
        numpy_random_seed=SEED,
        torch_random_seed=SEED,
        fewshot_random_seed=SEED,
        bootstrap_iters=1000,
    )
    assert results is not None
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for name in results["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    return folder


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("lm-eval-export")
    run = _ftbench_run(tiny_model_dir, root / "run")
    result = runner.invoke(app, ["export", "lm-eval", str(run), "--out", str(root / "export")])
    assert result.exit_code == 0, result.output
    return Exported(run, root / "export", result.stdout, _genuine_lm_eval(tiny_model_dir, root / "genuine"))


def _folder_of(out: Path, record: EvalRecord) -> Path:
    return out / sanitize_model_name(f"{record.variant.checkpoint}@{record.variant.precision}")


def test_lm_eval_reads_each_variant_back_with_the_records_values(exported: Exported) -> None:
    records = load_run_evals(exported.run)
    folders = sorted(path for path in exported.out.iterdir())
    assert [path.name for path in folders] == sorted({_folder_of(exported.out, r).name for r in records})
    assert len(folders) == 2 and len(exported.stdout.splitlines()) == 2
    for record in records:
        folder = _folder_of(exported.out, record)
        found = read_model_folder(folder)
        assert found.results["model_name_sanitized"] == folder.name == sanitize_model_name(found.results["model_name"])
        assert set(found.samples) == set(TASK_NAMES) == set(found.results["results"])
        entry = found.results["results"][record.task]
        for name, metric in record.metrics.items():
            assert entry[f"{name},none"] == metric.value
            assert entry[f"{name}_stderr,none"] == (metric.stderr if metric.stderr is not None else "N/A")
        assert found.results["ftbench"]["evaluations"][record.task] == record.key
        lines = {line["doc_id"]: line for line in found.samples[record.task]}
        assert sorted(lines) == [sample.doc_id for sample in record.samples]
        for sample in record.samples:
            line = lines[sample.doc_id]
            assert line["arguments"]["gen_args_0"]["arg_0"] == sample.prompt
            assert {name: line[name] for name in sample.scores} == sample.scores
            if sample.choice_loglikelihoods is not None:
                assert [float(resp[0]) for resp in line["filtered_resps"]] == sample.choice_loglikelihoods
            else:
                assert line["filtered_resps"] == [sample.response]
        table = make_table(found.results).replace(" ", "")  # what `lm_eval` prints
        assert all(f"|none|0|{name}|↑|" in table for name in record.metrics)


def test_files_have_the_keys_and_hashes_lm_eval_writes_for_the_same_evaluation(exported: Exported) -> None:
    genuine = read_model_folder(exported.genuine)
    record = next(r for r in load_run_evals(exported.run) if r.variant.precision == "fp32")
    ours = read_model_folder(_folder_of(exported.out, record))
    mine, theirs = ours.results, genuine.results
    assert set(mine) - {"ftbench"} == set(theirs) - TOKENIZER_KEYS
    assert [key for key in mine if key in theirs] == [key for key in theirs if key in mine]
    for key in ("results", "versions", "n-shot", "higher_is_better", "task_hashes", "group_subtasks", "model_source"):
        assert mine[key] == theirs[key], key
    assert make_table(mine) == make_table(theirs)
    assert set(mine["config"]) <= set(theirs["config"])
    for task in TASK_NAMES:
        assert mine["n-samples"][task]["effective"] == theirs["n-samples"][task]["effective"] == LIMIT
        config, stock = mine["configs"][task], theirs["configs"][task]
        assert set(config) <= set(stock)
        for key in ("task", "output_type", "metric_list", "num_fewshot", "test_split", "generation_kwargs"):
            assert config.get(key) == stock.get(key), (task, key)
        _same_samples(ours.samples[task], genuine.samples[task])


def _same_samples(ours: list[dict[str, Any]], stock: list[dict[str, Any]]) -> None:
    assert [line["doc_id"] for line in ours] == [line["doc_id"] for line in stock]
    for mine, theirs in zip(ours, stock, strict=True):
        assert list(mine) == list(theirs)
        for key in ("target", "filter", "metrics", "doc_hash", "prompt_hash", "target_hash", *theirs["metrics"]):
            assert mine[key] == theirs[key], key
        assert list(mine["arguments"]) == list(theirs["arguments"])
        assert [a["arg_0"] for a in mine["arguments"].values()] == [a["arg_0"] for a in theirs["arguments"].values()]
        if isinstance(theirs["filtered_resps"][0], list):  # multiple choice: [log-likelihood, is_greedy] per choice
            for got, want in zip(mine["filtered_resps"], theirs["filtered_resps"], strict=True):
                assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-4)
        else:
            assert mine["arguments"] == theirs["arguments"]
            assert (mine["resps"], mine["filtered_resps"]) == (theirs["resps"], theirs["filtered_resps"])


def test_samples_load_as_a_hugging_face_dataset(exported: Exported, tmp_path: Path) -> None:
    import datasets

    for task in TASK_NAMES:
        (path,) = [p for p in exported.out.glob("*@fp32/samples_*.jsonl") if get_file_task_name(p.name) == task]
        loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path))
        assert loaded["doc_id"] == list(range(LIMIT))


def _planted(root: Path) -> Path:
    base = make_record("w-initial", "initial", "fp32", {"accuracy": [1.0, 0.0, 1.0], "reward": [1.0, 0.2, 0.9]})
    samples = [s.model_copy(update={"response": UNTRUSTED}) for s in base.samples]
    base = base.model_copy(update={"samples": samples})
    single = make_record("w-initial", "initial", "nf4", {"accuracy": [1.0]})
    return write_results(root / "run", [base, single, with_request(base, repeat=1)])


def test_variants_and_repeats_get_their_own_folders_and_output_is_plain_json(tmp_path: Path) -> None:
    run = _planted(tmp_path)
    exported = export_lm_eval(run, tmp_path / "out")
    names = sorted(model.folder.name for model in exported)
    assert names == ["checkpoints__initial@fp32", "checkpoints__initial@fp32@repeat1", "checkpoints__initial@nf4"]
    (stamp,) = {get_file_datetime(path.name) for model in exported for path in model.samples}
    assert {model.results.name for model in exported} == {f"results_{stamp}.json"}
    fp32 = read_model_folder(tmp_path / "out" / "checkpoints__initial@fp32")
    assert fp32.results["results"]["countdown"]["accuracy,none"] == pytest.approx(2 / 3)
    assert fp32.results["higher_is_better"]["countdown"] == {"accuracy": True, "reward": True}
    assert [line["filtered_resps"] for line in fp32.samples["countdown"]] == [[UNTRUSTED]] * 3
    nf4 = read_model_folder(tmp_path / "out" / "checkpoints__initial@nf4")
    assert nf4.results["results"]["countdown"]["accuracy_stderr,none"] == "N/A"
    before = {path: path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file()}
    export_lm_eval(run, tmp_path / "out")  # the same run again replaces its own files
    assert {path: path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("kind", ["not a results dir", "edited record"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    run = tmp_path / "run"
    if kind == "edited record":
        _planted(tmp_path)
        key = load_run_evals(run)[0].key
        path = eval_path(run, key)
        path.write_text(path.read_text().replace(UNTRUSTED.split()[0], "changed", 1))
        message = "was changed after ftbench wrote it"
    else:
        run.mkdir()
        message = "holds no run.json"
    result = runner.invoke(app, ["export", "lm-eval", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "out").exists() and not (run / "lm-eval").exists()


def test_a_failed_write_leaves_no_partial_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _planted(tmp_path)
    out = tmp_path / "out"
    (out / "other-model").mkdir(parents=True)
    (out / "other-model" / "results_2025-01-01T00-00-00.json").write_text("{}")
    before = sorted(out.rglob("*"))
    calls = []
    original = Path.write_text

    def fail_on_third(self: Path, *args: Any, **kwargs: Any) -> int:
        calls.append(self)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fail_on_third)
    with pytest.raises(OSError, match="No space left"):
        export_lm_eval(run, out)
    assert sorted(out.rglob("*")) == before
    with pytest.raises(OSError, match="No space left"):
        calls.clear()
        export_lm_eval(run, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
