"""The llama.cpp engine: GGUF export with llama.cpp's converter and quantizer, and lm-eval's three request kinds
computed by llama.cpp agreeing with transformers (lm-eval's ``HFLM``) on the same weights.

Fast tests use the tiny two-layer Llama exported to f16 (agreement with fp32 within f16 rounding) and q8_0;
slow tests use the real SmolLM2-135M.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from ftbench.harness.core.checkpoints import Checkpoint, file_sha256, resolve_checkpoint, weights_hash
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.precision import Precision
from ftbench.harness.core.request import Engine, EvalRequest
from ftbench.harness.engines import gguf, hf, llamacpp
from ftbench.harness.engines.gguf import GgufFile, export_gguf, gguf_file_type, manifest_path, read_gguf
from ftbench.harness.engines.llamacpp import DRIVER, LlamaCppLM
from ftbench.harness.engines.llamacpp_lib import free_cores
from ftbench.harness.engines.llamacpp_runtime import GgufRuntime
from ftbench.harness.engines.session import TOPK, PlannedEval
from ftbench.tasks.registry import TASKS

F16_NATS_PER_TOKEN = 1e-4
"""How far f16 weights may move a token's log-probability from fp32 on the tiny model (seen: up to 4e-5)."""

PAIRS = [
    ("Question: What is the capital of France?\nAnswer:", " Paris"),
    ("The quick brown fox", " jumps over the lazy dog"),
    ("", "Hello world"),
    ("2 + 2 =", " 4"),
    ("Trailing space ", "moves to the continuation"),
    ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "Hello!"),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Checkpoint:
    return resolve_checkpoint(tiny_model_dir)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, tiny: Checkpoint) -> Path:
    """Where the tiny model's exports go: ``$FTBENCH_GGUF_CACHE/<name>``, as sessions look for them."""
    return tmp_path_factory.mktemp("gguf-cache") / tiny.name


@pytest.fixture(scope="module")
def tiny_f16(tiny: Checkpoint, cache: Path) -> GgufFile:
    return export_gguf(tiny, "f16", cache)


@pytest.fixture(scope="module")
def runtime(tiny_f16: GgufFile) -> GgufRuntime:
    return GgufRuntime(tiny_f16.path, threads=1)


@pytest.fixture(scope="module")
def hf_lm(tiny: Checkpoint) -> HFLM:
    return HFLM(pretrained=str(tiny.path), device="cpu", dtype="float32", batch_size=1)


def instances(kind: str, args: list[tuple[Any, ...]]) -> list[Instance]:
    return [Instance(kind, {}, arg, i) for i, arg in enumerate(args)]


def one_line_error(call: Any, match: str) -> str:
    with pytest.raises(FtbenchError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    return str(caught.value)


# -- export -----------------------------------------------------------------------------------------------------


def test_export_writes_file_and_manifest(tiny: Checkpoint, tiny_f16: GgufFile) -> None:
    manifest = json.loads(manifest_path(tiny_f16.path).read_text())
    assert manifest["quant"] == "f16" and manifest["parent"] == str(tiny.path)
    assert manifest["parent_content_hash"] == weights_hash(tiny)
    assert manifest["sha256"] == file_sha256(tiny_f16.path)
    assert manifest["size_bytes"] == tiny_f16.path.stat().st_size
    assert manifest["tensor_count"] == 20 and manifest["tensor_types"] == {"F16": 15, "F32": 5}
    assert manifest["fallback_tensors"] == 0 and manifest["llama_cpp_python"]
    assert gguf_file_type(tiny_f16.path) == "f16"


def test_unchanged_export_is_reused(tiny: Checkpoint, tiny_f16: GgufFile, cache: Path) -> None:
    before = tiny_f16.path.stat().st_mtime_ns
    again = export_gguf(tiny, "f16", cache)
    assert again.reused and again.path == tiny_f16.path and again.path.stat().st_mtime_ns == before


def test_converter_writes_q8_0_and_the_quantizer_counts_fallbacks(tiny: Checkpoint, tiny_f16: GgufFile) -> None:
    cache = tiny_f16.path.parent
    q8 = export_gguf(tiny, "q8_0", cache)
    assert gguf_file_type(q8.path) == "q8_0" and q8.manifest.quantizer_fallbacks is None
    # Rows of 64 and 128 fit no 256-element K-quant block: every matrix falls back. llama.cpp sets the tied
    # embedding to q8_0 up front, so its own count is one lower than the file's.
    k = export_gguf(tiny, "q4_k_m", cache)
    assert gguf_file_type(k.path) == "q4_k_m"
    assert k.manifest.fallback_tensors == 15 and k.manifest.quantizer_fallbacks == 14
    assert "F16" not in k.manifest.tensor_types and "Q4_K" not in k.manifest.tensor_types


def test_unknown_quant_is_refused_before_any_work(tiny: Checkpoint, tmp_path: Path) -> None:
    one_line_error(lambda: export_gguf(tiny, "q4_z", tmp_path / "c"), r"unknown GGUF type 'q4_z'; choose from .*q4_k_m")
    assert not (tmp_path / "c").exists()


def copy_model(source: Path, target: Path, skip: str = "") -> Path:
    target.mkdir()
    for file in source.iterdir():
        if file.name != skip:
            (target / file.name).write_bytes(file.read_bytes())
    return target


def test_unconvertible_architecture_leaves_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "odd")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "architectures": ["OddForCausalLM"]}))
    message = one_line_error(
        lambda: export_gguf(resolve_checkpoint(model), "f16", tmp_path / "c"),
        r"llama.cpp's converter cannot convert .*odd",
    )
    assert "OddForCausalLM" in message
    assert not (tmp_path / "c").exists()


FAILING_CONVERTER = """
import sys
with open(sys.argv[sys.argv.index("--outfile") + 1], "wb") as out:
    out.write(b"GGUF, half written")
print("ERROR:hf-to-gguf:Model LlamaForCausalLM is not supported", file=sys.stderr)
sys.exit(1)
"""


def test_failed_conversion_leaves_nothing(tiny: Checkpoint, tmp_path: Path, monkeypatch: Any) -> None:
    """A converter that fails after writing half a file (a stand-in: the real one takes seconds to start)."""
    fake = tmp_path / "llama.cpp"
    fake.mkdir()
    (fake / gguf.CONVERTER_SCRIPT).write_text(FAILING_CONVERTER)
    monkeypatch.setenv(gguf.CONVERTER_DIR_ENV, str(fake))
    cache = tmp_path / "cache" / "tiny"
    message = one_line_error(lambda: export_gguf(tiny, "q4_k_m", cache), r"llama.cpp cannot convert .*tiny to GGUF")
    assert message.endswith(
        "is not supported; this architecture cannot be evaluated with llama.cpp, use a precision "
        "of the transformers engine"
    )
    assert not (tmp_path / "cache").exists()


def test_corrupt_and_truncated_files_are_refused(tiny_f16: GgufFile, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file" * 100)
    one_line_error(lambda: gguf_file_type(junk), r"junk.gguf is not a readable GGUF file")
    one_line_error(lambda: GgufRuntime(junk, threads=1), r"junk.gguf is not a readable GGUF file")
    cut = tmp_path / "cut.gguf"
    data = tiny_f16.path.read_bytes()
    cut.write_bytes(data[:4096])
    one_line_error(lambda: GgufRuntime(cut, threads=1), r"cut.gguf is not a readable GGUF file \(truncated or corrupt")


# -- agreement with transformers ------------------------------------------------------------------------------


def test_tokens_match_the_transformers_tokenizer(runtime: GgufRuntime, hf_lm: HFLM) -> None:
    lm = LlamaCppLM(runtime)
    texts = [context + continuation for context, continuation in PAIRS] + ["naïve café 🙂 \t\n x"]
    assert [lm.tok_encode(text) for text in texts] == [hf_lm.tok_encode(text) for text in texts]
    assert (lm.prefix_token_id, lm.eot_token_id) == (hf_lm.prefix_token_id, hf_lm.eot_token_id)


def test_loglikelihood_agrees_with_hf_fp32(runtime: GgufRuntime, hf_lm: HFLM) -> None:
    requests = instances("loglikelihood", PAIRS)
    ours = LlamaCppLM(runtime, batch_size=3).loglikelihood(requests)
    reference = hf_lm.loglikelihood(requests)
    for (context, continuation), (mine, greedy), (theirs, their_greedy) in zip(PAIRS, ours, reference, strict=True):
        tokens = len(hf_lm.tok_encode(context + continuation)) + 1
        assert abs(mine - theirs) < F16_NATS_PER_TOKEN * tokens
        assert greedy == their_greedy
    assert len({round(value, 3) for value, _ in ours}) == len(ours)


def test_loglikelihood_rolling_agrees_across_windows(runtime: GgufRuntime, hf_lm: HFLM) -> None:
    long_text = " ".join(f"word{i} is followed by {i + 1}." for i in range(200))
    texts = [long_text, "Short text."]
    assert len(hf_lm.tok_encode(long_text)) > runtime.max_length == hf_lm.max_length
    ours = LlamaCppLM(runtime, batch_size=2).loglikelihood_rolling(
        instances("loglikelihood_rolling", [(t,) for t in texts])
    )
    reference = hf_lm.loglikelihood_rolling(instances("loglikelihood_rolling", [(t,) for t in texts]))
    for text, mine, theirs in zip(texts, ours, reference, strict=True):
        assert abs(mine - theirs) < F16_NATS_PER_TOKEN * len(hf_lm.tok_encode(text))


GREEDY = {"until": ["\n\n"], "max_gen_toks": 24, "do_sample": False}
PROMPTS = [context for context, _ in PAIRS if context] + ["Once upon a time", "def fibonacci(n):"]


def test_next_token_topk_agrees_with_hf_fp32(runtime: GgufRuntime, hf_lm: HFLM) -> None:
    """The perplexity task's token distributions from llama.cpp line up with transformers', position by position."""
    texts = ["The quick brown fox jumps over the lazy dog. " * 3, "", "2 + 2 = 4"]
    ours = llamacpp.next_token_topk(LlamaCppLM(runtime, batch_size=2), texts)
    theirs = hf.next_token_topk(hf_lm, texts)
    assert ours[1].tokens == [] and ours[1].ids == []
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.tokens == reference.tokens
        assert len(mine.ids) == len(mine.tokens) and all(len(row) == TOPK for row in mine.ids)
        for ids, logprobs, ref_ids, ref_logprobs in zip(
            mine.ids, mine.logprobs, reference.ids, reference.logprobs, strict=True
        ):
            assert ids[0] == ref_ids[0]
            assert logprobs[0] == pytest.approx(ref_logprobs[0], abs=1e-3)


def test_greedy_generation_equals_hf(runtime: GgufRuntime, hf_lm: HFLM) -> None:
    """Exact equality: no prompt here meets a near tie between f16 and fp32 within 24 tokens."""
    args = [(prompt, dict(GREEDY)) for prompt in PROMPTS] + [("The quick brown fox", {**GREEDY, "until": [" fox"]})]
    ours = LlamaCppLM(runtime, batch_size=4).generate_until(instances("generate_until", args))
    assert ours == hf_lm.generate_until(instances("generate_until", args))
    assert len(set(ours)) > 3


def test_batched_generation_equals_one_at_a_time(runtime: GgufRuntime) -> None:
    sampled = {"until": [], "max_gen_toks": 16, "do_sample": True, "temperature": 1.0}
    for settings in (GREEDY, sampled):
        requests = instances("generate_until", [(prompt, dict(settings)) for prompt in PROMPTS])
        together = LlamaCppLM(runtime, batch_size=len(PROMPTS), seed=7).generate_until(requests)
        alone = LlamaCppLM(runtime, batch_size=1, seed=7).generate_until(requests)
        assert together == alone
    other_seed = LlamaCppLM(runtime, batch_size=4, seed=8).generate_until(requests)
    assert other_seed != together


def test_chat_template_comes_from_the_file(runtime: GgufRuntime, hf_lm: HFLM) -> None:
    lm = LlamaCppLM(runtime)
    chat = [
        {"role": "user", "content": "Solve it."},
        {"role": "assistant", "content": "Let me solve this step by step."},
    ]
    assert lm.apply_chat_template(chat, add_generation_prompt=False) == hf_lm.apply_chat_template(chat, False)
    assert lm.apply_chat_template(chat[:1]) == hf_lm.apply_chat_template(chat[:1])
    assert "<|im_start|>" in (lm.chat_template(True) or "") and lm.chat_template(False) is None


# -- the driver ------------------------------------------------------------------------------------------------


ARC = TASKS["arc_easy"]


def request_for(checkpoint: Path, precision: Precision, device: str = "cpu") -> PlannedEval:
    request = EvalRequest(
        checkpoint=str(checkpoint),
        weights_hash="w",
        precision=precision,
        engine=Engine.LLAMACPP,
        device=device,
        task="t",
        task_definition_hash="d",
        task_data_hash=None,
        chat_template=False,
        seed=1,
        batch_size=4,
    )
    return PlannedEval(request, resolve_checkpoint(checkpoint), ARC, ARC.parse_options({}))


def test_check_refuses_what_llama_cpp_cannot_run(tiny_model_dir: Path, tiny_f16: GgufFile, monkeypatch: Any) -> None:
    one_line_error(
        lambda: DRIVER.check(request_for(tiny_model_dir, Precision.GGUF)),
        r"evaluates a \.gguf file at its own type",
    )
    one_line_error(lambda: DRIVER.check(request_for(tiny_f16.path, Precision.GGUF_Q8_0)), r"already a GGUF file")
    DRIVER.check(request_for(tiny_f16.path, Precision.GGUF))
    DRIVER.check(request_for(tiny_model_dir, Precision.GGUF_Q4_K_M))
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)
    message = one_line_error(lambda: DRIVER.check(request_for(tiny_model_dir, Precision.GGUF_F16)), r"make setup")
    assert "other precisions still work" in message
    monkeypatch.undo()
    monkeypatch.setattr(llamacpp, "converter_dir", lambda: Path("/nowhere"))
    one_line_error(
        lambda: DRIVER.check(request_for(tiny_model_dir, Precision.GGUF_F16)), r"converter; run `make setup`"
    )
    monkeypatch.setattr(gguf, "converter_dir", lambda: Path("/nowhere"))
    one_line_error(lambda: export_gguf(resolve_checkpoint(tiny_model_dir), "f16", Path("/nowhere")), r"make setup")


def test_session_exports_on_demand_and_describes_the_variant(
    tiny_model_dir: Path, tiny_f16: GgufFile, monkeypatch: Any
) -> None:
    monkeypatch.setenv("FTBENCH_GGUF_CACHE", str(tiny_f16.path.parent.parent))
    session = DRIVER.open([request_for(tiny_model_dir, Precision.GGUF_F16)])
    try:
        loaded = session.model_for(request_for(tiny_model_dir, Precision.GGUF_F16))
        assert loaded.engine_version.startswith("llama.cpp via llama-cpp-python 0.")
        assert loaded.footprint_bytes == tiny_f16.path.stat().st_size and (loaded.threads or 0) >= 1
        assert "GGUF f16" in loaded.notes[0] and "cached" in loaded.notes[0] and "llama.cpp kernels" in loaded.notes[0]
        assert loaded.count_tokens("Hello world") == 2
    finally:
        session.close()


@pytest.mark.slow
def test_lora_adapter_is_merged_before_export(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The merged export scores as transformers scores the adapter unmerged on its base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftbench.harness.engines.hf import load_causal_lm, load_tokenizer

    peft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    for name, param in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    peft.save_pretrained(tmp_path / "adapter")
    adapter = resolve_checkpoint(tmp_path / "adapter")
    exported = export_gguf(adapter, "f16", tmp_path / "cache")
    assert exported.manifest.parent_content_hash == weights_hash(adapter)
    model, _ = load_causal_lm(adapter, Precision.FP32, "cpu")
    reference = HFLM(pretrained=model, tokenizer=load_tokenizer(adapter), device="cpu", batch_size=1)
    requests = instances("loglikelihood", PAIRS)
    ours = LlamaCppLM(GgufRuntime(exported.path, threads=1), batch_size=4).loglikelihood(requests)
    for (mine, _), (theirs, _) in zip(ours, reference.loglikelihood(requests), strict=True):
        assert abs(mine - theirs) < 0.01


# -- the real model (slow) -------------------------------------------------------------------------------------


def arc_requests(count: int) -> list[tuple[str, str, int, int]]:
    """(context, continuation, item, choice) of the first ``count`` ARC-Challenge items, lm-eval's arc prompt."""
    rows = [
        json.loads(line) for line in Path("/work/shared/data/arc/arc_challenge_test.jsonl").read_text().splitlines()
    ]
    found = []
    for item, row in enumerate(rows[:count]):
        for choice, text in enumerate(row["choices"]["text"]):
            found.append((f"Question: {row['question']}\nAnswer:", f" {text}", item, choice))
    return found


@pytest.mark.slow
def test_real_f16_agrees_with_hf_fp32_on_arc(real_initial: Path, tmp_path: Path) -> None:
    """Answers (argmax over choices) may differ only where fp32's best two choices are within 0.05 nats."""
    checkpoint = resolve_checkpoint(real_initial)
    f16 = export_gguf(checkpoint, "f16", tmp_path)
    requests = arc_requests(20)
    pairs = instances("loglikelihood", [(context, continuation) for context, continuation, _, _ in requests])
    ours = [
        value for value, _ in LlamaCppLM(GgufRuntime(f16.path, threads=free_cores()), batch_size=8).loglikelihood(pairs)
    ]
    theirs = [
        value for value, _ in HFLM(pretrained=str(real_initial), device="cpu", dtype="float32").loglikelihood(pairs)
    ]
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 0.1
    for item in sorted({item for _, _, item, _ in requests}):
        rows = [i for i, request in enumerate(requests) if request[2] == item]
        mine = max(rows, key=lambda i: ours[i])
        reference = sorted(rows, key=lambda i: theirs[i], reverse=True)
        if mine != reference[0]:
            assert theirs[reference[0]] - theirs[mine] < 0.05


@pytest.mark.slow
def test_real_q4_k_m_reports_its_fallbacks(real_initial: Path, tmp_path: Path) -> None:
    exported = export_gguf(resolve_checkpoint(real_initial), "q4_k_m", tmp_path)
    assert exported.manifest.quantizer_fallbacks == 180 and exported.manifest.fallback_tensors == 181
    assert exported.manifest.tensor_count == 272


@pytest.mark.slow
def test_embedded_q4_1_loads_natively() -> None:
    from ftbench.trainers.base_model import embedded_gguf

    summary = read_gguf(embedded_gguf())
    assert summary.file_type == gguf_file_type(embedded_gguf()) == "q4_1"
    assert summary.tensor_count == 272 and summary.fallback_tensors == 0
    session = DRIVER.open([request_for(embedded_gguf(), Precision.GGUF)])
    try:
        loaded = session.model_for(request_for(embedded_gguf(), Precision.GGUF))
        assert "GGUF q4_1 (native file" in loaded.notes[0]
        scores = loaded.lm.loglikelihood(
            instances("loglikelihood", [("The capital of France is", c) for c in (" Paris", " a")])
        )
        assert all(math.isfinite(value) for value, _ in scores) and scores[0][0] != scores[1][0]
    finally:
        session.close()


# -- shared prefixes --------------------------------------------------------------------------------------------

SHARED_PAIRS = [
    *[("Question: Which gas do plants take in?\nAnswer:", c) for c in (" carbon dioxide", " oxygen", " a")],
    *[("Pick the shortest one: ", choice) for choice in ("one", "two words", "3")],  # its space moves on
    *[("Hello wor", choice) for choice in ("ld peace", "ld at last")],  # "wor" + "ld" tokenize as one word
    ("A context of its own.", " alone"),
    ("", "An empty context is the prefix token alone"),
    *[("2 + 2 =", choice) for choice in (" 4", " 5", " 22", " four", " fünf")],
]


class DecodedTokens:
    """Counts the tokens a runtime's decode calls carry."""

    def __init__(self, runtime: GgufRuntime, monkeypatch: Any) -> None:
        self.count = 0
        fill = runtime._fill_batch

        def counted(active: Any) -> Any:
            wanted = fill(active)
            self.count += int(runtime._batch.n_tokens)
            return wanted

        monkeypatch.setattr(runtime, "_fill_batch", counted)


@pytest.mark.parametrize("batch_size", [1, 3, 8])
@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_shared_prefix_scores_equal_unshared(
    tiny: Checkpoint, cache: Path, monkeypatch: Any, quant: str, batch_size: int
) -> None:
    """Within 1e-4 nats (seen: 2e-6 for f16, exact for q8_0), greedy flags equal, each shared context decoded once."""
    runtime = GgufRuntime(export_gguf(tiny, quant, cache).path, threads=1)
    requests = instances("loglikelihood", SHARED_PAIRS)
    counter = DecodedTokens(runtime, monkeypatch)
    unshared = LlamaCppLM(runtime, batch_size=batch_size, share_prefix=False).loglikelihood(requests)
    unshared_tokens, counter.count = counter.count, 0
    shared = LlamaCppLM(runtime, batch_size=batch_size).loglikelihood(requests)
    for (mine, greedy), (theirs, their_greedy) in zip(shared, unshared, strict=True):
        assert math.isfinite(mine) and abs(mine - theirs) < 1e-4 and greedy == their_greedy
    assert len({round(value, 3) for value, _ in shared}) > len(shared) / 2
    hf_lm = HFLM(pretrained=str(tiny.path), device="cpu", dtype="float32", batch_size=1)
    pairs = [hf_lm._encode_pair(c, x) if c else ([hf_lm.prefix_token_id], hf_lm.tok_encode(x)) for c, x in SHARED_PAIRS]
    contexts = {tuple(context): 0 for context, _ in pairs}
    for context, _ in pairs:
        contexts[tuple(context)] += 1
    saved = sum(len(context) * (count - 1) for context, count in contexts.items() if count > 1 and len(context) > 1)
    assert counter.count == unshared_tokens - saved


def test_models_that_cannot_copy_sequences_are_scored_unshared(runtime: GgufRuntime, monkeypatch: Any) -> None:
    requests = instances("loglikelihood", SHARED_PAIRS)
    expected = LlamaCppLM(runtime, batch_size=4, share_prefix=False).loglikelihood(requests)
    monkeypatch.setattr(llamacpp, "can_share_prefix", lambda runtime: False)
    monkeypatch.setattr(llamacpp, "score_groups", lambda *args: pytest.fail("shared a prefix"))
    assert LlamaCppLM(runtime, batch_size=4).loglikelihood(requests) == expected
