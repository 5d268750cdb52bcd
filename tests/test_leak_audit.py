"""The leakage audit wired into the lifecycle: every stage keeps its training rows' fingerprints, and ``ftbench leak``
audits a checkpoint's whole lineage against a custom task with leaks planted in two stages' training files (exact
copies, restyled copies, one word in ten replaced, rows that share only an opening phrase with a clean item)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.app.leak import LeakInputs, LeakOutcome, leak_audit, leak_summary, refuse_leaks
from ftbench.harness.core.checkpoints import content_hash, read_manifest, write_manifest
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.leakage.findings import FlaggedItem
from ftbench.harness.leakage.fingerprint_store import load_fingerprints
from ftbench.harness.leakage.lineage import FINGERPRINTS_FILE, checkpoint_lineage
from ftbench.harness.leakage.task_audit import lineage_sources
from ftbench.harness.viewer.leak_marks import leak_marks
from ftbench.reports.report import write_report
from ftbench.trainers import sft
from ftbench.trainers.config import load_settings
from ftbench.trainers.stage import run_stage, up_to_date
from tests.planted_leaks import Planted, plant
from tests.records import make_record, with_request, write_results

runner = CliRunner()


class Trained(NamedTuple):
    """The planted data, the suite over it, and the two stages trained on it (the second from the first)."""

    planted: Planted
    suite: Path
    first: Path
    second: Path


def train_stage(parent: Path, out: Path, data_file: Path, *extra: str) -> Path:
    """A full SFT stage of one step on ``data_file`` (every row is fingerprinted, whatever the steps)."""
    settings = load_settings(
        sft.DEFAULTS,
        None,
        [
            f"parent={parent}",
            f"output={out}",
            "finetune=full",
            "data.countdown_rows=0",
            "data.ultrafeedback_rows=0",
            f"data.files=[{data_file}]",
            "trl.max_length=1024",
            "trl.per_device_train_batch_size=1",
            "trl.max_steps=1",
            *extra,
        ],
    )
    return run_stage(sft.METHOD, settings).path


def write_suite(path: Path, task_file: Path, limit: int) -> Path:
    """A suite of one custom task over ``task_file``: the question as the prompt, the answer as the reference."""
    options = {"data": str(task_file), "prompt": "question", "reference": "answer", "metrics": ["exact_match"]}
    task = {"name": "planted_qa", "task": "custom", "limit": limit, "options": options}
    path.write_text(json.dumps({"name": "leaks", "tasks": [task]}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Trained:
    folder = tmp_path_factory.mktemp("leaks")
    planted = plant(folder)
    first = train_stage(tiny_model_dir, folder / "sft-a", planted.first_file)
    second = train_stage(first, folder / "sft-b", planted.second_file, "stage=sft-b")
    evaluated = sum(len(planted.groups[kind]) for kind in ("exact", "restyled", "replaced", "control"))
    return Trained(planted, write_suite(folder / "suite.json", planted.task_file, evaluated), first, second)


@pytest.fixture(scope="module")
def outcome(trained: Trained) -> LeakOutcome:
    return leak_audit(LeakInputs(trained.second, spec=trained.suite))


def _flagged(outcome: LeakOutcome) -> dict[int, FlaggedItem]:
    task = outcome.audit.task("planted_qa")
    assert task is not None
    return {item.doc_id: item for item in task.flagged}


def test_each_stage_keeps_its_rows_fingerprints_in_its_manifest_and_content_hash(trained: Trained) -> None:
    manifest = read_manifest(trained.first)
    assert manifest is not None and manifest.fingerprints == FINGERPRINTS_FILE
    file = trained.first / FINGERPRINTS_FILE
    assert manifest.content_hash == content_hash(trained.first)
    fingerprints = load_fingerprints(file)
    rows = [line for line in trained.planted.first_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(fingerprints) == len(rows) and fingerprints.texts is None  # one text per conversation, no raw text
    assert fingerprints.origins[0].describe() == f"{trained.planted.first_file}:1 [prompt, completion]"
    first_question = json.loads(rows[0])["messages"][0]["content"]
    assert first_question[:40] not in gzip.decompress(file.read_bytes()).decode()
    stages = checkpoint_lineage(trained.second).stages
    assert [stage.stage for stage in stages] == ["sft-b", "sft", "tiny"]
    assert [stage.fingerprints is not None for stage in stages] == [True, True, False]


def test_the_lineage_audit_finds_every_exact_and_restyled_copy_at_its_line(
    trained: Trained, outcome: LeakOutcome
) -> None:
    flagged = _flagged(outcome)
    for doc_id in trained.planted.groups["exact"] + trained.planted.groups["restyled"]:
        item = flagged.get(doc_id)
        assert item is not None and "exact" in item.kinds, doc_id
        path, line = trained.planted.lines[doc_id]
        assert item.sources == [str(trained.first.resolve())]
        assert any(match.row.startswith(f"{path}:{line} ") for match in item.matches)


def test_most_copies_with_one_word_in_ten_replaced_are_found(trained: Trained, outcome: LeakOutcome) -> None:
    flagged = _flagged(outcome)
    replaced = trained.planted.groups["replaced"]
    found = [doc_id for doc_id in replaced if doc_id in flagged]
    assert len(found) / len(replaced) >= 0.8  # measured: 99 of 100 (the miss: a 16-word item)
    for doc_id in found:
        path, line = trained.planted.lines[doc_id]
        rows = [match.row for match in flagged[doc_id].matches]
        assert any(row.startswith(f"{path}:{line} ") for row in rows), rows


def test_no_clean_item_is_flagged_not_even_one_sharing_an_opening_phrase(
    trained: Trained, outcome: LeakOutcome
) -> None:
    flagged = _flagged(outcome)
    control, phrase = trained.planted.groups["control"], trained.planted.groups["phrase"]
    assert len(control) == 500 and len(phrase) >= 30
    assert [doc_id for doc_id in control if doc_id in flagged] == []
    task = outcome.audit.task("planted_qa")
    assert task is not None and task.items == 680 and task.checked == list(range(680))
    assert [source.label for source in outcome.audit.sources] == [
        f"sft-b ({trained.second})",
        f"sft ({trained.first})",
    ]


def test_json_lists_the_items_checked_and_each_flagged_item_with_its_row_and_evidence(
    trained: Trained, tmp_path: Path
) -> None:
    out = tmp_path / "leakage.json"
    result = runner.invoke(
        app, ["leak", str(trained.second), "--spec", str(trained.suite), "--format", "json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == document
    task = document["audit"]["tasks"][0]
    assert task["task"] == "planted_qa" and len(task["checked"]) == 680
    exact = next(item for item in task["flagged"] if item["doc_id"] == trained.planted.groups["exact"][0])
    assert exact["kinds"][0] == "exact" and exact["matches"][0]["evidence"][0]["kind"] == "exact"
    path, line = trained.planted.lines[exact["doc_id"]]
    assert exact["matches"][0]["row"] == f"{path}:{line} [prompt, completion]"
    markdown = runner.invoke(app, ["leak", str(trained.second), "--spec", str(trained.suite)])
    assert markdown.exit_code == 0 and "evaluated items in the training data" in markdown.stdout


def test_a_training_file_is_checked_against_a_suite_with_named_fields(trained: Trained, tmp_path: Path) -> None:
    items = [json.loads(line) for line in trained.planted.task_file.read_text(encoding="utf-8").splitlines()]
    leaked = tmp_path / "qa.jsonl"
    leaked.write_text(json.dumps({"q": items[3]["question"], "a": items[3]["answer"], "n": 1}) + "\n")
    outcome = leak_audit(LeakInputs(None, (leaked,), ("q", "a"), trained.suite))
    assert outcome.audit.flagged_ids("planted_qa") == {3}
    summary = leak_summary(outcome.audit)
    assert summary is not None and f"planted_qa doc 3 (exact/ngram/substring/near_duplicate; {leaked}:1" in summary
    with pytest.raises(FtbenchError, match="1 evaluated items are in the training data"):
        refuse_leaks(outcome.audit)


def _refused(args: list[str], expected: str) -> None:
    result = runner.invoke(app, ["leak", *args])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert message.startswith("error:") and expected in message, message


def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    trained: Trained, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "never.json"
    suite = ["--spec", str(trained.suite), "--out", str(out)]
    _refused(
        [str(trained.second), "--train-data", str(trained.planted.task_file), "--fields", "q", *suite],
        "has no field 'q'",
    )
    _refused([str(tiny_model_dir), *suite], "has no training fingerprints anywhere in its lineage")
    _refused([str(trained.second), "--jaccard", "1.5", *suite], "jaccard: Input should be less than or equal to 1")
    broken = tmp_path / "broken"
    shutil.copytree(trained.first, broken)
    (broken / FINGERPRINTS_FILE).write_bytes(b"not gzip")
    _refused([str(broken), *suite], f"fingerprints file {broken / FINGERPRINTS_FILE} is corrupted")
    _refused([str(trained.second)], "give --spec SUITE")
    assert not out.exists()


# --- what a leak did to the result: the split comparison, the report, the viewer ------------------------------


def _stage_records(trained: Trained, doc_ids: list[int], right: dict[str, set[int]]) -> list[EvalRecord]:
    """Records of both stages on the planted task: each item right where ``right[stage]`` holds it."""
    options = {"data": str(trained.planted.task_file), "prompt": "question", "reference": "answer"}
    options["metrics"] = ["exact_match"]  # type: ignore[assignment]
    records = []
    for name, path in (("sft-a", trained.first), ("sft-b", trained.second)):
        scores = [1.0 if doc_id in right[name] else 0.0 for doc_id in doc_ids]
        record = make_record(name * 8, name, "fp32", {"exact_match": scores}, task="planted_qa")
        samples = [sample.model_copy(update={"doc_id": d}) for sample, d in zip(record.samples, doc_ids, strict=True)]
        variant = record.variant.model_copy(update={"checkpoint": str(path), "manifest": read_manifest(path)})
        record = with_request(record, task_kind="custom", options=options, checkpoint=str(path), limit=680)
        records.append(record.model_copy(update={"samples": samples, "variant": variant}))
    return records


def test_the_gain_splits_into_leaked_and_clean_items_in_leak_and_the_report(trained: Trained, tmp_path: Path) -> None:
    leaked = set(
        trained.planted.groups["exact"] + trained.planted.groups["restyled"] + trained.planted.groups["replaced"]
    )
    clean = trained.planted.groups["control"]
    right = {"sft-a": set(clean[:50]), "sft-b": leaked | set(clean[:50]) | set(clean[50:54])}
    results = write_results(tmp_path / "results", _stage_records(trained, list(range(680)), right))
    document = json.loads(runner.invoke(app, ["leak", str(results), "--format", "json"]).stdout)
    (split,) = document["splits"]
    assert split["comparison"] == "sft-b@fp32 vs sft-a@fp32" and split["metric"] == "exact_match"
    assert split["flagged_items"] == 179 and split["clean_items"] == 501  # the one replaced copy missed is clean
    assert split["flagged"]["delta"] == pytest.approx(1.0) and split["flagged"]["p_value"] < 0.001
    assert split["clean"]["delta"] == pytest.approx(5 / 501) and split["clean"]["p_value"] > 0.05
    assert split["overall"]["delta"] == pytest.approx(184 / 680)
    files = write_report([results], tmp_path / "report")
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "## Leakage: was the gain learned or leaked?" in markdown
    assert "Found 179 evaluated items in the training data (planted_qa 179 of 680)" in markdown
    assert "| sft-b@fp32 vs sft-a@fp32 | planted_qa | exact_match | +0.271 | 179 | +1.000 [" in markdown
    html = files.html.read_text(encoding="utf-8")
    assert 'id="leakage"' in html and "Found 179 evaluated items" in html


def test_a_clean_evaluation_says_nothing_was_found_and_what_was_checked(trained: Trained, tmp_path: Path) -> None:
    control = trained.planted.groups["control"][:40]
    results = write_results(tmp_path / "results", _stage_records(trained, control, {"sft-a": set(), "sft-b": set()}))
    markdown = write_report([results], tmp_path / "report").markdown.read_text(encoding="utf-8")
    assert "Nothing found: no evaluated item is in the training data." in markdown
    assert "Checked 40 evaluated items (planted_qa 40) against 610 training texts" in markdown


def test_the_viewer_marks_the_items_the_lineage_trained_on(trained: Trained) -> None:
    records = _stage_records(trained, list(range(680)), {"sft-a": set(), "sft-b": set()})
    marks = leak_marks(records[1])
    exact = trained.planted.groups["exact"][0]
    assert set(marks.badges) == outcome_ids(trained) and "⚠ in training data (exact/" in marks.badge(exact)
    assert "179 of 680 items are in the training data" in marks.summary
    assert marks.badge(trained.planted.groups["control"][0]) == ""
    first_only = set(leak_marks(records[0]).badges)  # the first stage's lineage: the exact and restyled copies
    planted_first = set(trained.planted.groups["exact"] + trained.planted.groups["restyled"])
    # and one natural near-duplicate: "The function of a plant's roots is to take in" (a replaced copy's item)
    # against ARC-Easy validation's "A major function of a plant's roots is to" (Jaccard 0.50)
    assert planted_first <= first_only and len(first_only - planted_first) <= 1


def outcome_ids(trained: Trained) -> set[int]:
    return leak_audit(LeakInputs(trained.second, spec=trained.suite)).audit.flagged_ids("planted_qa")


def test_a_stage_trained_before_fingerprints_were_kept_is_trained_again(trained: Trained, tmp_path: Path) -> None:
    manifest = read_manifest(trained.first)
    assert manifest is not None and manifest.training is not None
    digest = manifest.training.inputs_hash
    assert up_to_date(trained.first, digest) == manifest
    older = tmp_path / "older"
    older.mkdir()
    shutil.copy(trained.first / "config.json", older / "config.json")
    write_manifest(older, manifest.model_copy(update={"fingerprints": None}))
    assert "fingerprints" not in (older / "ftbench.json").read_text(encoding="utf-8")
    assert up_to_date(older, digest) is None
    audit = leak_audit(LeakInputs(older, (trained.planted.first_file,), None, trained.suite)).audit
    assert audit.notes[0] == f"sft ({older}) was trained before ftbench kept fingerprints; its data is not checked"
    planted_first = set(trained.planted.groups["exact"] + trained.planted.groups["restyled"])
    flagged = audit.flagged_ids("planted_qa")  # the training file given beside the stage checks it
    assert planted_first <= flagged and len(flagged - planted_first) <= 1


def test_a_stage_reached_by_two_paths_is_audited_once(trained: Trained, tmp_path: Path) -> None:
    final = tmp_path / "final"
    final.symlink_to(trained.second, target_is_directory=True)
    found = lineage_sources([str(trained.second), str(final), str(tmp_path / "gone")])
    assert [source.label for source in found.sources] == [f"sft-b ({trained.second})", f"sft ({trained.first})"]
    assert found.lineages[str(final)] == found.lineages[str(trained.second)]
    assert found.notes == [f"checkpoint {tmp_path / 'gone'} is not here; its lineage is not checked"]


def test_an_exported_gguf_files_lineage_is_its_parents(trained: Trained, tmp_path: Path) -> None:
    exported = tmp_path / "sft-b-q4_k_m.gguf"
    exported.write_bytes(b"GGUF")
    exported.with_name(exported.name + ".json").write_text(json.dumps({"parent": str(trained.second)}))
    stages = checkpoint_lineage(exported).stages
    assert [stage.path for stage in stages][:3] == [exported, trained.second, trained.first]
