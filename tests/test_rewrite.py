"""Question rewrite: noise model, per-sample scores, and corpus BLEU equal to sacrebleu's."""

from __future__ import annotations

from pathlib import Path

import pytest
import sacrebleu

from ftbench.tasks.rewrite.dataset import CastOptions, NoisyOptions, cast_items, noisy_items
from ftbench.tasks.rewrite.noise import corrupt, item_rng
from ftbench.tasks.rewrite.scoring import clean_rewrite, corpus_bleu, corpus_chrf, score_rewrite
from tests.evaluate import evaluate


def test_noise_is_seeded_per_item_and_changes_the_text() -> None:
    question = "What are the symptoms of lung cancer in older patients?"
    assert corrupt(question, item_rng("a", 1)) == corrupt(question, item_rng("a", 1))
    variants = {corrupt(question, item_rng(f"id{i}", 1)) for i in range(30)}
    assert len(variants) > 20 and question not in variants


def test_noisy_items_keep_the_clean_question_as_target() -> None:
    items = noisy_items(NoisyOptions(seed=3, count=50))
    assert items == noisy_items(NoisyOptions(seed=3, count=50))
    assert len({item["id"] for item in items}) == 50
    assert all(item["question"] != item["target"] for item in items)
    assert {item["id"].split("-")[0] for item in items} == {"arc", "cast"}


def test_cast_items_are_the_changed_rewrites() -> None:
    assert len(cast_items()) == 733
    assert len(cast_items(CastOptions(only_changed=False))) == 934


@pytest.mark.parametrize(
    ("response", "clean"),
    [
        ("Is throat cancer treatable?", "Is throat cancer treatable?"),
        ('  "Is throat cancer treatable?"\nIt is a question about...', "Is throat cancer treatable?"),
        ("Rewritten question: Is throat cancer treatable?", "Is throat cancer treatable?"),
        ("\n\n", ""),
    ],
)
def test_clean_rewrite(response: str, clean: str) -> None:
    assert clean_rewrite(response) == clean


def test_scores_on_known_pairs() -> None:
    perfect = score_rewrite("Is throat cancer treatable?", "Is throat cancer treatable?")
    assert perfect.exact_match == 1.0 and perfect.rouge1 == 1.0 and perfect.sentence_bleu == pytest.approx(100.0)
    partial = score_rewrite("Is it treatable?", "Is throat cancer treatable?")
    assert partial.exact_match == 0.0
    precision, recall = 2 / 3, 2 / 4  # "is" and "treatable" match: 2 of 3 hypothesis, 2 of 4 reference words
    assert partial.rouge1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert 0 < partial.sentence_bleu < 100


def test_corpus_scores_equal_sacrebleu_on_fixed_text() -> None:
    hypotheses = ["Is throat cancer treatable?", "What are its symptoms", "", "lung cancer spread to throat?"]
    references = [
        "Is throat cancer treatable?",
        "What are the symptoms of lung cancer?",
        "Why?",
        "Can lung cancer spread to the throat?",
    ]
    assert corpus_bleu(hypotheses, references) == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert corpus_chrf(hypotheses, references) == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert corpus_bleu(hypotheses[:2], references[:2]) == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses[:2], [references[:2]]).score
    )


def test_rewrite_task_corpus_scores_equal_sacrebleu(tiny_model_dir: Path) -> None:
    run = evaluate(
        tiny_model_dir,
        "rewrite_noisy",
        options={"count": 12},
        generation={"max_gen_toks": 12},
        chat_template=True,
        limit=6,
        seed=1,
        batch_size=4,
    )
    hypotheses = [clean_rewrite(sample.response) for sample in run.samples]
    references = [sample.target for sample in run.samples]
    assert run.metrics["bleu"][0] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert run.metrics["bleu"][0] == pytest.approx(corpus_bleu(hypotheses, references))
    assert run.metrics["chrf"][0] == pytest.approx(corpus_chrf(hypotheses, references))
    assert run.metrics["bleu"][1] is not None  # lm-eval bootstraps corpus BLEU's standard error
    for sample, hypothesis in zip(run.samples, hypotheses, strict=True):
        assert sample.scores["sentence_bleu"] == pytest.approx(score_rewrite(hypothesis, sample.target).sentence_bleu)
    assert set(run.metrics) >= {"bleu", "chrf", "sentence_bleu", "rouge1", "rouge2", "rougeL", "exact_match"}
