"""The leakage audit at the size of a real evaluation (a measurement, not a test; the same checks on fewer items run
in tests/test_leakage.py)::

    PYTHONPATH=. .venv/bin/python benchmarks/leakage.py [--exact 100] [--templated 100] [--restyled 100]
        [--replaced 200] [--countdown 1500] [--seed 0] [--render plain|task] [--jaccard J]
        [--substring-rule proven|possible]

Evaluation items: the whole ARC-Easy test split (2,376 items), each its question and correct answer (``--render
task``: as ftbench's ARC training side and lm-eval's prompt write them, ``Question: ...\\nAnswer: ...``). Training
rows, all in one JSON-lines file in TRL's formats: ARC-Easy validation as ftbench trains on it (570), TREC CAsT
rewrites (934), Countdown prompts with an answer (``--countdown``), UltraFeedback preference pairs (200 rows, two
texts each), and ARC-Easy test items planted among them: exact copies (a plain prompt and completion), exact
copies in the task's format (``Question: ...\nAnswer:`` and the answer), copies with case, punctuation and spacing
changed (chat messages), and copies with one word in ten replaced (the task's format, a plain prompt and
completion, plain text or a preference pair). Prints the time to fingerprint, save, load and audit
(indexes included), the fingerprints file's size per 1,000 texts by source, recall by kind of leak, and every item
flagged that was not planted (natural duplicates of a planted item or of an ARC-Easy validation question).

``--lineage CHECKPOINT`` (for instance ``checkpoints/final`` after ``make demo``) times instead what ``ftbench leak
CHECKPOINT --spec SUITE`` does: the lineage's fingerprints read and every one of its training rows compared with the
whole ARC-Easy test split (2,376 items), then with every item of the demo suite's tasks (Countdown 1,000, ARC-Easy
2,376, UltraFeedback 500). ``--lineage demo`` builds a stand-in of the demo's lineage without training: three stages
whose fingerprints hold the rows the demo's SFT, DPO and RLOO stages draw (configs/pipeline.yaml; DPO's on-policy
Countdown pairs, sampled from a model, stood in by their prompts); ``--scale N`` adds a stage of N Countdown
solver traces, as a larger pipeline draws.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ftbench.harness.leakage.audit_models import AuditThresholds, ItemAudit
from ftbench.harness.leakage.fingerprint_store import load_fingerprints, save_fingerprints
from ftbench.harness.leakage.fingerprints import fingerprint_rows
from ftbench.harness.leakage.matching import audit_items
from ftbench.harness.leakage.planting import replace_words, restyle
from ftbench.harness.leakage.training_rows import TrainingRow, read_training_rows
from ftbench.tasks.data import default_data_dir

Row = tuple[str, dict[str, Any]]
"""A training row and the name of its source."""
KINDS = ("exact", "templated", "restyled", "replaced")


def _arc(split: str) -> list[dict[str, str]]:
    rows = json.loads((default_data_dir() / "arc" / f"arc_easy_{split}.json").read_text(encoding="utf-8"))
    answers = [r["choices"]["text"][r["choices"]["label"].index(r["answerKey"])] for r in rows]
    return [{"id": r["id"], "question": r["question"], "answer": a} for r, a in zip(rows, answers, strict=True)]


def _jsonl(relative: str) -> list[dict[str, Any]]:
    with (default_data_dir() / relative).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _task_format(question: str, answer: str) -> dict[str, str]:
    """A row as ftbench's ARC training side writes it."""
    return {"prompt": f"Question: {question}\nAnswer:", "completion": f" {answer}"}


def _clean_rows(countdown: int) -> list[Row]:
    """Training rows that leak no ARC-Easy test item."""
    rows: list[Row] = [
        ("arc-validation", _task_format(item["question"], item["answer"])) for item in _arc("validation")
    ]
    for pair in _jsonl("question_rewrite/cast_rewrite_pairs.jsonl"):
        rows.append(("cast", {"prompt": pair["question"], "completion": pair["rewrite"]}))
    for puzzle in _jsonl("countdown/countdown_tasks_3to4.jsonl")[:countdown]:
        prompt = (
            f"Using the numbers {puzzle['nums']}, create an equation that equals {puzzle['target']}. You can use basic "
            "arithmetic operations (+, -, *, /) and each number can only be used once. Show your work in <think> "
            "</think> tags. And return the final answer in <answer> </answer> tags."
        )
        answer = f"<answer> {' + '.join(map(str, puzzle['nums']))} </answer>"
        rows.append(("countdown", {"prompt": prompt, "completion": answer}))
    for pair in _jsonl("ultrafeedback/train_prefs_scored_200.jsonl"):
        rows.append(("ultrafeedback", {key: pair[key] for key in ("prompt", "chosen", "rejected")}))
    return rows


def _leak(item: dict[str, str], kind: str, rng: random.Random, vocabulary: list[str]) -> dict[str, Any]:
    question, answer = item["question"], item["answer"]
    if kind == "restyled":
        turns = [("user", restyle(question, rng)), ("assistant", restyle(answer, rng))]
        return {"messages": [{"role": role, "content": content} for role, content in turns]}
    if kind == "replaced":
        question, answer = replace_words(f"{question}\n{answer}", rng, vocabulary).split("\n", 1)
    if kind == "exact":
        return {"prompt": question, "completion": answer}
    shape = 0 if kind == "templated" else rng.randrange(4)
    if shape == 0:
        return _task_format(question, answer)
    if shape == 1:
        return {"prompt": question, "completion": answer}
    if shape == 2:
        return {"text": f"{question} {answer}"}
    return {"prompt": question, "chosen": answer, "rejected": "I do not know."}


def _planted_rows(args: argparse.Namespace, items: list[dict[str, str]]) -> tuple[list[Row], dict[str, str]]:
    """Every training row, shuffled, and how each planted item was planted."""
    rng = random.Random(args.seed)
    kinds = [kind for kind in KINDS for _ in range(getattr(args, kind))]
    order = rng.sample(range(len(items)), len(kinds))
    vocabulary = sorted({w for item in items for w in item["question"].split() if w.isalpha()})
    rows = _clean_rows(args.countdown)
    planted: dict[str, str] = {}
    for index, kind in zip(order, kinds, strict=True):
        planted[items[index]["id"]] = kind
        rows.append((f"planted-{kind}", _leak(items[index], kind, rng, vocabulary)))
    rng.shuffle(rows)
    return rows, planted


def _print_step(label: str, seconds: float, note: str = "") -> None:
    print(f"| {label} | {seconds:.2f} s | {note} |")


def _print_sizes(rows: list[TrainingRow], sources: list[str], folder: Path) -> None:
    """The fingerprints file's size per 1,000 texts, for all rows and for each source alone."""
    print("\n| texts | count | mean words | KiB per 1,000 texts |\n|---|---|---|---|")
    source_of = [sources[(row.origin.line or 0) - 1] for row in rows]
    groups = {"all": rows} | {
        s: [r for r, o in zip(rows, source_of, strict=True) if o == s] for s in sorted(set(sources))
    }
    for name, chosen in groups.items():
        size = save_fingerprints(fingerprint_rows(chosen), folder / f"{name}.json.gz").stat().st_size
        words = sum(len(row.text.split()) for row in chosen) / len(chosen)
        print(f"| {name} | {len(chosen)} | {words:.0f} | {size / len(chosen) * 1000 / 1024:.0f} |")


def _print_flags(audits: list[ItemAudit], planted: dict[str, str], sources: list[str], rows: list[TrainingRow]) -> None:
    found = Counter(planted[str(a.doc_id)] for a in audits if a.flagged and str(a.doc_id) in planted)
    print("\n| leak | planted | found | recall |\n|---|---|---|---|")
    for kind, count in sorted(Counter(planted.values()).items(), key=lambda pair: KINDS.index(pair[0])):
        print(f"| {kind} | {count} | {found[kind]} | {found[kind] / count:.3f} |")
    flagged = sum(a.flagged for a in audits)
    missed = [f"{a.doc_id} ({planted[str(a.doc_id)]})" for a in audits if not a.flagged and str(a.doc_id) in planted]
    print(f"\nflagged {flagged} of {len(audits)}, planted {found.total()}: precision {found.total() / flagged:.3f}")
    print(f"missed: {', '.join(missed)}")
    others = [a for a in audits if a.flagged and str(a.doc_id) not in planted]
    print(f"flagged, not planted: {len(others)} (their strongest match below)")
    for audit in others:
        match = audit.matches[0]
        source = sources[(match.origin.line or 0) - 1]
        evidence = "; ".join(f"{e.kind} {e.model_dump(exclude={'kind'})}" for e in match.evidence)
        print(f"  {audit.doc_id} ~ line {match.origin.line}, {source}: {evidence}")
        print(f"      row: {' '.join(rows[match.row].text.split())[:110]}")


def _demo_lineage(folder: Path, scale: int) -> Path:
    """Stage folders with manifests and fingerprints of the rows the demo's stages draw; the last stage's path."""
    from ftbench.harness.core.checkpoints import Manifest, write_manifest
    from ftbench.harness.leakage.lineage import keep_fingerprints
    from ftbench.trainers.config import DataSettings
    from ftbench.trainers.row_texts import trained_texts
    from ftbench.trainers.training_data import preference_rows, rloo_rows, sft_rows

    draws = {
        "sft": trained_texts(sft_rows(DataSettings(countdown_rows=48, ultrafeedback_rows=4), 1234)),
        "dpo": trained_texts(preference_rows(DataSettings(ultrafeedback_rows=2), 1234))
        + trained_texts(rloo_rows(DataSettings(countdown_rows=4), 1234), ("prompt",)),
        "rloo": trained_texts(rloo_rows(DataSettings(countdown_rows=32), 1234), ("prompt",)),
    }
    if scale:
        draws["scaled"] = trained_texts(sft_rows(DataSettings(countdown_rows=scale), 1234))
    parent = None
    for stage, rows in draws.items():
        path = folder / stage
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}", encoding="utf-8")  # a model directory as far as the audit reads
        name = keep_fingerprints(rows, [path])
        manifest = Manifest(
            stage=stage, method="sft", source="stand-in", parent=parent, content_hash="-", fingerprints=name
        )
        write_manifest(path, manifest)
        print(f"| {stage} | {len(rows)} training texts |")
        parent = str(path)
    return folder / list(draws)[-1]


def _lineage_timing(lineage: str, scale: int) -> None:
    """Time ``ftbench leak CHECKPOINT --spec SUITE`` over the lineage: ARC-Easy test, then the demo suite, whole."""
    from ftbench.harness.app.leak import LeakInputs, leak_audit

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        checkpoint = _demo_lineage(folder, scale) if lineage == "demo" else Path(lineage)
        suites = {
            "ARC-Easy test": [{"name": "arc_easy"}],
            "demo suite, every item": [
                {"name": "countdown"},
                {"name": "arc_easy"},
                {"name": "perplexity_ultrafeedback"},
            ],
        }
        print("\n| items | time | checked | training texts | flagged |\n|---|---|---|---|---|")
        for label, tasks in suites.items():
            suite = folder / "suite.json"
            suite.write_text(json.dumps({"tasks": tasks}), encoding="utf-8")
            started = time.perf_counter()
            audit = leak_audit(LeakInputs(checkpoint, spec=suite)).audit
            seconds = time.perf_counter() - started
            checked = ", ".join(f"{task.task} {task.items}" for task in audit.tasks)
            rows = sum(source.rows for source in audit.sources)
            print(f"| {label} | {seconds:.2f} s | {checked} | {rows} | {audit.flagged} |")


def main() -> None:
    parser = argparse.ArgumentParser(description="The leakage audit on ARC-Easy test with planted leaks.")
    parser.add_argument("--exact", type=int, default=100)
    parser.add_argument("--templated", type=int, default=100)
    parser.add_argument("--restyled", type=int, default=100)
    parser.add_argument("--replaced", type=int, default=200)
    parser.add_argument("--countdown", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", choices=["plain", "task"], default="plain")
    parser.add_argument("--jaccard", type=float, default=None, help="near-duplicate threshold; default the audit's")
    parser.add_argument("--substring-rule", choices=["proven", "possible"], default="proven")
    parser.add_argument("--lineage", default=None, help="a checkpoint, or demo: time the lineage audit instead")
    parser.add_argument("--scale", type=int, default=0, help="with --lineage demo: a stage of N Countdown traces")
    args = parser.parse_args()
    if args.lineage is not None:
        _lineage_timing(args.lineage, args.scale)
        return
    items = _arc("test")
    rows_and_sources, planted = _planted_rows(args, items)
    sources = [source for source, _ in rows_and_sources]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        train = folder / "train.jsonl"
        train.write_text("".join(json.dumps(row) + "\n" for _, row in rows_and_sources), encoding="utf-8")
        print("| step | time | note |\n|---|---|---|")
        started = time.perf_counter()
        rows = read_training_rows(train)
        _print_step("read the training file", time.perf_counter() - started, f"{len(rows)} texts, {len(sources)} lines")
        started = time.perf_counter()
        fingerprints = fingerprint_rows(rows)
        seconds = time.perf_counter() - started
        _print_step("fingerprint", seconds, f"{1000 * seconds / len(rows):.2f} ms per text")
        started = time.perf_counter()
        size = save_fingerprints(fingerprints, folder / "fingerprints.json.gz").stat().st_size
        _print_step("save", time.perf_counter() - started, f"{size / 2**20:.2f} MiB")
        started = time.perf_counter()
        fingerprints = load_fingerprints(folder / "fingerprints.json.gz")
        _print_step("load", time.perf_counter() - started)
        thresholds = AuditThresholds(
            substring_rule=args.substring_rule, **({"jaccard": args.jaccard} if args.jaccard else {})
        )
        shape = "Question: {question}\nAnswer: {answer}" if args.render == "task" else "{question}\n{answer}"
        texts = [(item["id"], shape.format(**item)) for item in items]
        started = time.perf_counter()
        result = audit_items(texts, fingerprints, thresholds)
        _print_step(
            "audit, indexes included", time.perf_counter() - started, f"{len(items)} items; {result.summary.by_kind}"
        )
        _print_sizes(rows, sources, folder)
    _print_flags(result.items, planted, sources, rows)


if __name__ == "__main__":
    main()
