"""The leakage audit: normalisation, sketches and their guarantees, training rows in TRL's formats, the
fingerprints file, and the audit itself on leaks planted into a training file built from real ARC-Easy and TREC
CAsT text (precision on a 500-item control set, recall by kind of leak)."""

from __future__ import annotations

import difflib
import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.leakage.audit_models import AuditResult, AuditThresholds, NgramEvidence, SubstringEvidence
from ftbench.harness.leakage.fingerprint_store import load_fingerprints, save_fingerprints
from ftbench.harness.leakage.fingerprints import Fingerprints, fingerprint_rows
from ftbench.harness.leakage.matching import audit_items
from ftbench.harness.leakage.normalise import normalise_text, spaceless, text_words
from ftbench.harness.leakage.planting import replace_words, restyle
from ftbench.harness.leakage.sketches import SketchSettings, kgram_hashes, winnow
from ftbench.harness.leakage.substring import common_substring_bounds
from ftbench.harness.leakage.training_rows import TrainingRow, read_training_rows, rows_from_records
from ftbench.tasks.data import default_data_dir


def _data(relative: str) -> Path:
    """A file of the offline data folder (the test fails, never skips, where the folder does not hold it)."""
    path = default_data_dir() / relative
    assert path.is_file(), f"{path} is not here; point FTBENCH_DATA_DIR at the offline data folder"
    return path


def _write_jsonl(path: Path, rows: list[Any], bom: bool = False) -> Path:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


# --- normalisation and sketches -------------------------------------------------------------------------------


def test_normalisation_folds_case_width_punctuation_and_space() -> None:
    assert normalise_text("  Which   of\tthe\nFOLLOWING is... “true”? ") == "which of the following is true"
    assert normalise_text("Ｆｕｌｌ-width don’t STRASSE Straße") == "fullwidth dont strasse strasse"
    assert normalise_text("zero\u200bwidth 30°C, 5%!") == "zerowidth 30c 5"
    assert normalise_text("?!. ,") == ""
    assert spaceless(normalise_text("A b-c d")) == "abcd"


def test_on_ascii_text_the_words_are_lm_evals_decontamination_words() -> None:
    from lm_eval.decontamination.janitor import Janitor

    janitor = Janitor()
    rows = json.loads(_data("arc/arc_easy_validation.json").read_text(encoding="utf-8"))
    texts = [
        f"{r['question']}\n{' | '.join(r['choices']['text'])} (answer: {r['answerKey']}) 100% ~$5.50" for r in rows
    ]
    ascii_texts = [text for text in texts if text.isascii()]
    assert len(ascii_texts) > 500
    for text in ascii_texts:
        assert text_words(normalise_text(text)) == janitor.normalize_string(text).split()


def test_winnowing_shares_a_fingerprint_for_every_common_substring_at_the_guarantee() -> None:
    settings = SketchSettings()
    rng = random.Random(3)
    alphabet = "abcdefghij"
    for _ in range(200):
        common = "".join(rng.choice(alphabet) for _ in range(settings.substring_chars))
        left = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80))) + common
        right = common + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        item_hashes = kgram_hashes(left, settings.char_kgram)
        row = winnow(kgram_hashes("xyz" + right, settings.char_kgram), settings.window)
        assert np.isin(row.hashes, item_hashes).any()


def test_substring_bounds_bracket_the_true_longest_common_substring() -> None:
    settings = SketchSettings()
    k, window = settings.char_kgram, settings.window
    rng = random.Random(5)
    alphabet = "abcdefghijklmnop"
    for _ in range(150):
        common = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40, 160)))
        item = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60))) + common + "q" * 3
        row = "z" * 2 + common + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        item_hashes = kgram_hashes(item, k)
        chosen = winnow(kgram_hashes(row, k), window)
        pairs = [
            (int(i) - int(p))
            for h, p in zip(chosen.hashes, chosen.positions, strict=True)
            for i in np.flatnonzero(item_hashes == h)
        ]
        bounds = common_substring_bounds(
            item_hashes, chosen.hashes, chosen.positions, (len(item), len(row)), k, set(pairs)
        )
        true = difflib.SequenceMatcher(None, item, row, autojunk=False).find_longest_match().size
        if true >= settings.substring_chars:
            assert bounds.lower <= true <= bounds.upper
            assert bounds.lower >= true - 2 * (window - 1)
        elif bounds.upper:
            assert bounds.lower <= true


# --- training rows --------------------------------------------------------------------------------------------


def test_training_rows_read_every_trl_format_with_their_lines(tmp_path: Path) -> None:
    user = {"role": "user", "content": "What is 2 + 2?"}
    assistant = {"role": "assistant", "content": [{"type": "text", "text": "Four."}]}
    path = _write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"text": "Plain text."},
            {"prompt": "Capital of France?", "completion": "Paris."},
            {"prompt": [user], "completion": [assistant]},
            {"messages": [{"role": "system", "content": "Be brief."}, user, assistant]},
            {"prompt": "Pick one.", "chosen": "Good answer.", "rejected": "Bad answer."},
            {"chosen": [user, assistant], "rejected": [user, {"role": "assistant", "content": "Five."}]},
        ],
        bom=True,
    )
    path.write_text(path.read_text(encoding="utf-8") + "\n   \n", encoding="utf-8")
    rows = read_training_rows(path)
    assert [row.text for row in rows] == [
        "Plain text.",
        "Capital of France?\nParis.",
        "What is 2 + 2?\nFour.",
        "Be brief.\nWhat is 2 + 2?\nFour.",
        "Pick one.\nGood answer.",
        "Pick one.\nBad answer.",
        "What is 2 + 2?\nFour.",
        "What is 2 + 2?\nFive.",
    ]
    assert [row.origin.line for row in rows] == [1, 2, 3, 4, 5, 5, 6, 6]
    assert rows[4].origin.fields == ("prompt", "chosen") and rows[5].origin.fields == ("prompt", "rejected")
    assert rows[1].origin.describe() == f"{path}:2 [prompt, completion]"


def test_training_rows_take_named_fields_and_name_what_is_missing(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "qa.jsonl", [{"question": "Why?", "answer": "Because.", "id": 1}, {"question": "How?"}]
    )
    with pytest.raises(FtbenchError, match=r"qa\.jsonl:2 has no field 'answer' \(fields present: question\)"):
        read_training_rows(path, fields=["question", "answer"])
    first = _write_jsonl(tmp_path / "one.jsonl", [{"question": "Why?", "answer": "Because.", "id": 1}])
    assert read_training_rows(first, fields=["question", "answer"])[0].text == "Why?\nBecause."
    with pytest.raises(FtbenchError, match=r"one\.jsonl:1 matches none of TRL's formats .*fields present: answer, id"):
        read_training_rows(first)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(FtbenchError, match=r"bad\.jsonl:2 is not JSON"):
        read_training_rows(bad)
    with pytest.raises(FtbenchError, match="cannot read training file"):
        read_training_rows(tmp_path / "missing.jsonl")


def test_rows_from_records_keep_dataset_and_index() -> None:
    rows = rows_from_records([{"question": "A?"}, {"question": "B?"}], "allenai/ai2_arc", fields=["question"])
    assert rows[1].origin.describe() == "allenai/ai2_arc#1 [question]"
    with pytest.raises(FtbenchError, match="allenai/ai2_arc row 0 is a list, not a JSON object"):
        rows_from_records([[1, 2]], "allenai/ai2_arc")


# --- the fingerprints file ------------------------------------------------------------------------------------


def _small_rows() -> list[TrainingRow]:
    texts = ["The quick brown fox jumps over the lazy dog near the river bank today.", "", "Short one.", "x " * 300]
    return rows_from_records([{"text": text} for text in texts], "unit")


def test_fingerprints_round_trip_without_text_unless_asked(tmp_path: Path) -> None:
    fingerprints = fingerprint_rows(_small_rows())
    path = save_fingerprints(fingerprints, tmp_path / "fp.json.gz")
    stored = gzip.decompress(path.read_bytes()).decode()
    assert json.loads(stored)["schema_version"] == 1 and "quick brown" not in stored
    loaded = load_fingerprints(path)
    assert loaded.texts is None and loaded.origins == fingerprints.origins and loaded.digests == fingerprints.digests
    for name in ("words", "chars", "winnow_positions", "minhashes"):
        assert np.array_equal(getattr(loaded, name), getattr(fingerprints, name)), name
    for name in ("long_ngrams", "short_ngrams", "winnow_hashes"):
        assert all(
            np.array_equal(a, b) for a, b in zip(getattr(loaded, name), getattr(fingerprints, name), strict=True)
        )
    kept = load_fingerprints(save_fingerprints(fingerprint_rows(_small_rows(), keep_text=True), tmp_path / "t.json.gz"))
    assert kept.texts is not None and kept.texts[0].startswith("The quick brown fox")


def test_unreadable_or_corrupted_fingerprints_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = save_fingerprints(fingerprint_rows(_small_rows()), tmp_path / "fp.json.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    cases: dict[str, bytes] = {
        "truncated": path.read_bytes()[:-40],
        "garbage": b"not a gzip file",
        "not-json": gzip.compress(b"{not json"),
        "row-missing": gzip.compress(json.dumps({**data, "origins": data["origins"][:-1]}).encode()),
        "bad-base64": gzip.compress(json.dumps({**data, "words": {**data["words"], "data": "%%%"}}).encode()),
        "old-version": gzip.compress(json.dumps({**data, "schema_version": 0}).encode()),
        "bad-settings": gzip.compress(json.dumps({**data, "settings": {"num_perm": 3}}).encode()),
    }
    for name, content in cases.items():
        broken = tmp_path / f"{name}.json.gz"
        broken.write_bytes(content)
        with pytest.raises(FtbenchError, match=rf"fingerprints file {broken}"):
            load_fingerprints(broken)
    with pytest.raises(FtbenchError, match=r"cannot read fingerprints file .*nowhere\.json\.gz"):
        load_fingerprints(tmp_path / "nowhere.json.gz")


# --- thresholds and inputs ------------------------------------------------------------------------------------


def test_thresholds_and_settings_out_of_range_raise_one_line() -> None:
    with pytest.raises(FtbenchError, match=r"AuditThresholds: jaccard: Input should be less than or equal to 1"):
        AuditThresholds(jaccard=1.5)
    with pytest.raises(FtbenchError, match=r"AuditThresholds: unknown key jacard; valid keys are"):
        AuditThresholds.model_validate({"jacard": 0.5})
    with pytest.raises(FtbenchError, match="char_kgram 20 must lie between"):
        SketchSettings(char_kgram=20)
    fingerprints = fingerprint_rows(_small_rows())
    with pytest.raises(FtbenchError, match="substring_chars 30 is below the 50 characters"):
        audit_items([("a", "text")], fingerprints, AuditThresholds(substring_chars=30))
    with pytest.raises(FtbenchError, match="evaluation item 1 is"):
        audit_items([("a", "text"), ("b", 3)], fingerprints)


# --- planted leaks in real text -------------------------------------------------------------------------------


class Planted(NamedTuple):
    """A training file with leaks planted, the audit of its evaluation items, and which item is which."""

    result: AuditResult
    fingerprints: Fingerprints
    train_file: Path
    line_of: dict[str, int]
    """The training-file line where each planted item went."""
    groups: dict[str, list[str]]
    """exact, restyled, replaced, control, phrase (control items whose opening a training row shares)."""
    texts: dict[str, str]


def _arc_items() -> list[dict[str, str]]:
    items = []
    for row in json.loads(_data("arc/arc_easy_test.json").read_text(encoding="utf-8")):
        answer = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
        items.append({"id": row["id"], "question": row["question"], "answer": answer})
    return items


def _filler_rows() -> list[dict[str, str]]:
    """Clean training rows: TREC CAsT questions with their rewrites, and ARC-Easy validation as ftbench trains on
    it (``Question: ...\\nAnswer:`` and the answer)."""
    cast = [json.loads(line) for line in _data("question_rewrite/cast_rewrite_pairs.jsonl").open(encoding="utf-8")]
    rows = [{"prompt": pair["question"], "completion": pair["rewrite"]} for pair in cast]
    for row in json.loads(_data("arc/arc_easy_validation.json").read_text(encoding="utf-8")):
        answer = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
        rows.append({"prompt": f"Question: {row['question']}\nAnswer:", "completion": f" {answer}"})
    return rows


def _leak_rows(items: list[dict[str, str]], kind: str, rng: random.Random, vocabulary: list[str]) -> Iterator[Any]:
    for item in items:
        if kind == "exact":
            yield {"prompt": item["question"], "completion": item["answer"]}
        elif kind == "restyled":
            turns = [("user", restyle(item["question"], rng)), ("assistant", restyle(item["answer"], rng))]
            yield {"messages": [{"role": role, "content": content} for role, content in turns]}
        else:
            question, answer = replace_words(f"{item['question']}\n{item['answer']}", rng, vocabulary).split("\n", 1)
            shape = rng.randrange(3)
            if shape == 0:
                yield {"text": f"{question} {answer}"}
            elif shape == 1:
                yield {"prompt": f"Question: {question}\nAnswer:", "completion": f" {answer}"}
            else:
                yield {"prompt": question, "chosen": answer, "rejected": "I do not know."}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    items = _arc_items()
    rng = random.Random(2024)
    rng.shuffle(items)
    leaks = {"exact": items[:50], "restyled": items[50:100], "replaced": items[100:250]}
    vocabulary = sorted({word for item in items[250:] for word in item["question"].split() if word.isalpha()})
    rows: list[Any] = _filler_rows()
    line_of: dict[str, int] = {}
    for kind, chosen in leaks.items():
        for item, row in zip(chosen, _leak_rows(chosen, kind, rng, vocabulary), strict=True):
            line_of[item["id"]] = len(rows) + 1
            rows.append(row)
    trained = {normalise_text(row.text) for row in rows_from_records(rows, "planted")}
    control = [item for item in items[250:] if normalise_text(f"{item['question']}\n{item['answer']}") not in trained]
    control = control[:500]
    openings = [" ".join(item["question"].split()[:4]) for item in control]
    common = [phrase for phrase, _ in sorted(((p, openings.count(p)) for p in set(openings)), key=lambda x: -x[1])[:10]]
    cast = [row["completion"] for row in rows[:100]]
    rows += [{"text": f"{phrase} {rng.choice(cast)}"} for phrase in common for _ in range(3)]
    train_file = _write_jsonl(tmp_path_factory.mktemp("leaks") / "train.jsonl", rows)
    fingerprints = fingerprint_rows(read_training_rows(train_file))
    texts = {item["id"]: f"{item['question']}\n{item['answer']}" for item in items[:250] + control}
    result = audit_items(list(texts.items()), fingerprints)
    groups = {kind: [item["id"] for item in chosen] for kind, chosen in leaks.items()}
    groups["control"] = [item["id"] for item in control]
    groups["phrase"] = [item["id"] for item, opening in zip(control, openings, strict=True) if opening in common]
    return Planted(result, fingerprints, train_file, line_of, groups, texts)


def _audits(planted: Planted) -> dict[str | int, Any]:
    return {audit.doc_id: audit for audit in planted.result.items}


def test_every_exact_and_restyled_copy_is_found_at_its_line(planted: Planted) -> None:
    audits = _audits(planted)
    for doc_id in planted.groups["exact"] + planted.groups["restyled"]:
        audit = audits[doc_id]
        assert audit.flagged and "exact" in audit.kinds, planted.texts[doc_id]
        exact = [match.origin for match in audit.matches if any(e.kind == "exact" for e in match.evidence)]
        assert any(o.source == str(planted.train_file) and o.line == planted.line_of[doc_id] for o in exact)


def test_most_copies_with_one_word_in_ten_replaced_are_found(planted: Planted) -> None:
    audits = _audits(planted)
    found = [doc_id for doc_id in planted.groups["replaced"] if audits[doc_id].flagged]
    assert len(found) / len(planted.groups["replaced"]) >= 0.9  # measured: 142 of 150, the misses short items
    for doc_id in found:
        assert planted.line_of[doc_id] in [match.origin.line for match in audits[doc_id].matches]


def test_no_control_item_is_flagged_not_even_those_sharing_an_opening_phrase(planted: Planted) -> None:
    """None of the 500 control items is in the training file (checked on normalised text). Measured by exact
    word-set comparison, three are natural near-duplicates of a training row, and none is flagged: two have a twin
    in ARC-Easy test that was planted with words replaced (bigram Jaccard 0.47 and 0.48 with the planted row), one
    rewords an ARC-Easy validation question (word Jaccard 0.62, bigram 0.27)."""
    audits = _audits(planted)
    assert len(planted.groups["control"]) == 500 and len(planted.groups["phrase"]) >= 30
    assert [doc_id for doc_id in planted.groups["control"] if audits[doc_id].flagged] == []
    leaks = planted.groups["exact"] + planted.groups["restyled"] + planted.groups["replaced"]
    summary = planted.result.summary
    assert summary.items == 750 and summary.flagged == sum(audits[doc_id].flagged for doc_id in leaks)
    assert summary.by_kind["exact"] == 100


def test_audit_result_is_json_ready(planted: Planted) -> None:
    text = planted.result.model_dump_json()
    assert AuditResult.model_validate_json(text) == planted.result
    flagged = planted.result.flagged()[0]
    assert 1 <= len(flagged.matches) <= planted.result.summary.thresholds.max_matches <= flagged.matched_rows + 4


def test_an_item_inside_a_long_row_is_found_by_ngrams_and_substring() -> None:
    item = "Which gas do plants absorb from the air to make their food during photosynthesis? Carbon dioxide."
    padding = "A long lesson about the living world and its many forms goes on here for a while. " * 8
    rows = rows_from_records([{"text": f"{padding}{item} {padding}"}], "lesson")
    audit = audit_items([("q1", item)], fingerprint_rows(rows)).items[0]
    kinds = {evidence.kind: evidence for evidence in audit.matches[0].evidence}
    assert set(kinds) == {"ngram", "substring"}
    ngram = kinds["ngram"]
    assert isinstance(ngram, NgramEvidence) and ngram.n == 8 and ngram.share == 1.0
    substring = kinds["substring"]
    assert isinstance(substring, SubstringEvidence)
    assert substring.lower_bound >= len(spaceless(normalise_text(item))) - 2 * (SketchSettings().window - 1)


def test_one_shared_13_gram_flags_a_long_item_as_gpt3_did() -> None:
    shared = "the rate at which a substance dissolves in water depends on its temperature"
    item = f"In a laboratory study of mixtures, students noted that {shared}, so which change speeds it up? heating"
    rows = rows_from_records([{"text": f"Notes from class: {shared} and stirring."}], "notes")
    audit = audit_items([("q", item)], fingerprint_rows(rows)).items[0]
    assert audit.kinds == ["ngram", "substring"]
    ngram = audit.matches[0].evidence[0]
    assert isinstance(ngram, NgramEvidence) and (ngram.n, ngram.shared, ngram.item_ngrams) == (13, 1, 17)
    stricter = audit_items([("q", item)], fingerprint_rows(rows), AuditThresholds(long_min_share=0.2)).items[0]
    assert stricter.kinds == ["substring"]


def test_a_shared_phrase_under_50_characters_is_flagged_only_when_the_rule_allows_the_possibility() -> None:
    shared = "the students measured how quickly ice melts in sunlight"  # 47 characters without spaces
    item = f"During a spring project {shared} near a window. Which tool helps most? a thermometer"
    fingerprints = fingerprint_rows(rows_from_records([{"text": f"Notes: {shared} and wrote the times."}], "notes"))
    assert not audit_items([("q", item)], fingerprints).items[0].flagged
    possible = audit_items([("q", item)], fingerprints, AuditThresholds(substring_rule="possible")).items[0]
    evidence = possible.matches[0].evidence[0]
    assert possible.kinds == ["substring"] and isinstance(evidence, SubstringEvidence)
    assert evidence.lower_bound <= 47 <= evidence.upper_bound
