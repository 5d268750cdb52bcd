"""The transformers engine on one GPU: tokens/s and peak memory per precision and batch size (a measurement, not a
test), for bf16 and bitsandbytes int8 and nf4, in a few minutes and without the hub::

    PYTHONPATH=. .venv/bin/python benchmarks/gpu.py                     # a Qwen2.5-0.5B-shaped random model
    PYTHONPATH=. .venv/bin/python benchmarks/gpu.py --model embedded    # SmolLM2-135M from the embedded GGUF

Each precision is loaded the way ``ftbench run`` loads it (its spec planned, the transformers engine's session
opened on ``cuda``), and then, per batch size, measured on ARC-Easy questions through the engine's ``LM``:

- generation: greedy ``generate_until`` of ``--tokens`` new tokens per question (no stop string), generated
  tokens per second;
- log-likelihood: every choice of every question (``loglikelihood``, shared contexts computed once), scored
  tokens (context + continuation of every request) per second;
- the peak GPU memory allocated over both.

The default model has Qwen2.5-0.5B's shape (24 layers, hidden 896, 151,936-token vocabulary) with random weights and
SmolLM2's tokenizer: its figures are throughput only, never quality. Needs only torch, transformers, peft,
bitsandbytes and lm-eval; without CUDA it stops with one line (``--device cpu`` is a smoke run of the script).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from lm_eval.api.instance import Instance
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from ftbench.harness.engines import driver
from ftbench.harness.evaluation.plan import plan_run
from ftbench.harness.evaluation.spec import parse_spec
from ftbench.tasks.data import default_data_dir
from ftbench.trainers.base_model import bootstrap_base, embedded_gguf

PRECISIONS = ("bf16", "int8", "nf4")
BATCH_SIZES = (1, 8, 32, 64)


class Row(NamedTuple):
    """One precision × batch size."""

    precision: str
    batch_size: int
    generated_tokens_per_s: float
    scored_tokens_per_s: float
    peak_memory_mib: float
    footprint_mib: float


def qwen_shaped(out: Path) -> Path:
    """A Qwen2.5-0.5B-shaped model with random weights and SmolLM2's tokenizer, saved in bf16 to ``out``."""
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.bfloat16().save_pretrained(out)
    gguf = embedded_gguf()
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)
    return out


def arc_questions(count: int) -> list[tuple[str, list[str]]]:
    """The first ``count`` ARC-Easy questions in lm-eval's arc prompt, with their choices."""
    rows = json.loads((default_data_dir() / "arc" / "arc_easy_test.json").read_text())[:count]
    return [(f"Question: {row['question']}\nAnswer:", [f" {text}" for text in row["choices"]["text"]]) for row in rows]


def open_engine(model: Path, precision: str, device: str) -> Any:
    """The transformers engine's session for ``model`` at ``precision``, opened as a run opens it."""
    spec = {"checkpoints": [str(model)], "precisions": [precision], "tasks": ["arc_easy"], "device": device}
    (item,) = plan_run(parse_spec(spec, "benchmark"))
    session = driver(item.request.engine).open([item])
    return session, session.model_for(item)


def measure(loaded: Any, batch_size: int, questions: list[tuple[str, list[str]]], tokens: int) -> tuple[float, float]:
    """(generated tokens/s, scored tokens/s) at ``batch_size``."""
    lm = loaded.lm
    lm.batch_size_per_gpu = batch_size
    settings = {"until": [], "max_gen_toks": tokens, "do_sample": False}
    prompts = [Instance("generate_until", {}, (q, dict(settings)), i) for i, (q, _) in enumerate(questions)]
    started = time.perf_counter()
    outputs = lm.generate_until(prompts, disable_tqdm=True)
    generate_seconds = time.perf_counter() - started
    generated = sum(loaded.count_tokens(text) for text in outputs)
    pairs = [(q, choice) for q, choices in questions for choice in choices]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    started = time.perf_counter()
    lm.loglikelihood(requests, disable_tqdm=True)
    score_seconds = time.perf_counter() - started
    scored = sum(len(lm.tok_encode(q + choice)) for q, choice in pairs)
    return generated / generate_seconds, scored / score_seconds


def run_precision(model: Path, precision: str, args: argparse.Namespace) -> list[Row]:
    """Every batch size at one precision (one load)."""
    session, loaded = open_engine(model, precision, args.device)
    rows = []
    try:
        for batch_size in args.batch_sizes:
            questions = arc_questions(max(batch_size, args.min_questions))
            if args.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            generated, scored = measure(loaded, batch_size, questions, args.tokens)
            peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else 0
            rows.append(Row(precision, batch_size, generated, scored, peak / 2**20, loaded.footprint_bytes / 2**20))
    finally:
        session.close()
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| precision | batch | generated tokens/s | scored tokens/s | peak GPU MiB | weights MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.precision} | {row.batch_size} | {row.generated_tokens_per_s:.0f} | "
            f"{row.scored_tokens_per_s:.0f} | {row.peak_memory_mib:.0f} | {row.footprint_mib:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen-shaped", help="qwen-shaped (random weights), embedded, or a path")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generated sequence")
    parser.add_argument("--min-questions", type=int, default=8, help="questions per measurement, at least")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke run only")
    args = parser.parse_args()
    args.batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU and torch sees none; run it on a machine with one")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ftbench-gpu-") as scratch:
        if args.model == "qwen-shaped":
            model, label = qwen_shaped(Path(scratch) / "qwen-shaped"), "Qwen2.5-0.5B-shaped, random weights"
        elif args.model == "embedded":
            model, label = bootstrap_base(Path(scratch) / "initial"), "SmolLM2-135M (embedded GGUF, fp32 weights)"
        else:
            model, label = Path(args.model).resolve(), str(args.model)
        rows = [row for precision in args.precisions.split(",") for row in run_precision(model, precision, args)]
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{label} on {device}; {args.tokens} new tokens per sequence; {time.perf_counter() - started:.0f} s in all")
    print(table(rows))


if __name__ == "__main__":
    main()
