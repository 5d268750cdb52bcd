"""Generation throughput of the engines on the same Countdown items, side by side (a measurement, not a test).

transformers through lm-eval's ``HFLM`` at several batch sizes (its ``generate`` as lm-eval loads the model, this
project's greedy loop in which finished rows leave the batch, and that loop with the linear layers computed by
oneDNN from reordered weights, at the batch sizes given and as the transformers engine runs it, its batch as large
as the free memory holds) against llama.cpp through this project's
batched engine at several GGUF types, all greedy on the same prompts (the Countdown user turn in the chat template, the
task's ``gen_prefix`` opening the assistant turn), with the same thread count. Prints a markdown table.

    PYTHONPATH=. python benchmarks/engines.py --items 16 --max-tokens 128
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.engines.gguf import default_cache_dir, export_gguf
from ftbench.harness.engines.hf_generate import generation_rows
from ftbench.harness.engines.hf_shared import SharedPrefixHFLM
from ftbench.harness.engines.llamacpp import LlamaCppLM
from ftbench.harness.engines.llamacpp_lib import free_cores
from ftbench.harness.engines.llamacpp_runtime import GgufRuntime
from ftbench.harness.engines.onednn import pack_linears
from ftbench.tasks.countdown.dataset import CountdownOptions, countdown_items
from ftbench.tasks.countdown.task import doc_to_text
from ftbench.trainers.base_model import bootstrap_base, embedded_gguf

TASK_YAML = Path(__file__).resolve().parents[1] / "tasks" / "countdown" / "countdown.yaml"


@dataclass(frozen=True)
class Measurement:
    """One engine × weights × batch size run over all prompts."""

    engine: str
    weights: str
    batch_size: int
    tokens: int
    seconds: float
    cpu_seconds: float
    """CPU time of this process over the run, all its threads: what the run cost on a machine others share."""
    texts: tuple[str, ...]
    """The generated texts, in prompt order."""

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per wall-clock second, all sequences together."""
        return self.tokens / self.seconds

    @property
    def tokens_per_cpu_second(self) -> float:
        """Generated tokens per CPU second: steadier than wall time while other processes compete for the cores."""
        return self.tokens / self.cpu_seconds


def gen_prefix() -> str:
    """The Countdown task's ``gen_prefix``, read from its YAML (its ``!function`` hooks left unresolved)."""

    class TagTolerantLoader(yaml.SafeLoader):
        pass

    TagTolerantLoader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)
    return str(yaml.load(TASK_YAML.read_text(encoding="utf-8"), Loader=TagTolerantLoader)["gen_prefix"])


def countdown_prompts(lm: LM, count: int) -> list[str]:
    """The first ``count`` Countdown test items rendered as lm-eval renders them with ``--apply_chat_template``."""
    items = countdown_items("test", CountdownOptions())[:count]
    prefix = gen_prefix()
    return [
        lm.apply_chat_template(
            [{"role": "user", "content": doc_to_text(item)}, {"role": "assistant", "content": prefix}],
            add_generation_prompt=False,
        )
        for item in items
    ]


def measure(lm: Any, engine: str, weights: str, prompts: list[str], max_tokens: int, count: Any) -> Measurement:
    """Time greedy ``generate_until`` over all prompts (after a short warm-up) and count the generated tokens."""
    settings = {"until": [], "max_gen_toks": max_tokens, "do_sample": False, "temperature": 0.0}
    warmup = [Instance("generate_until", {}, (prompts[0], {**settings, "max_gen_toks": 4}), 0)]
    lm.generate_until(warmup, disable_tqdm=True)
    requests = [Instance("generate_until", {}, (prompt, dict(settings)), i) for i, prompt in enumerate(prompts)]
    start, cpu_start = time.perf_counter(), time.process_time()
    outputs = lm.generate_until(requests, disable_tqdm=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = sum(count(text) for text in outputs)
    return Measurement(engine, weights, lm.batch_size, tokens, seconds, cpu_seconds, tuple(outputs))


def table(rows: list[Measurement], items: int, max_tokens: int, threads: int) -> str:
    """The measurements as a markdown table, with each row's speeds relative to the best transformers row's and
    how many of its texts are the first row's."""
    transformers = [row for row in rows if row.engine == "transformers generate"]
    first = rows[0].texts if rows else ()
    best = max((row.tokens_per_second for row in transformers), default=0.0)
    best_cpu = max((row.tokens_per_cpu_second for row in transformers), default=0.0)
    lines = [
        f"{items} Countdown items, greedy, up to {max_tokens} new tokens each, {threads} threads",
        "",
        "| engine | weights | batch | generated tokens | wall s | CPU s | tok/s | tok/CPU-s | × best transformers "
        "generate (tok/s, tok/CPU-s) | texts as the first row's |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = (
            f"{row.tokens_per_second / best:.2f}, {row.tokens_per_cpu_second / best_cpu:.2f}" if transformers else "n/a"
        )
        lines.append(
            f"| {row.engine} | {row.weights} | {row.batch_size} | {row.tokens} | {row.seconds:.1f} "
            f"| {row.cpu_seconds:.1f} | {row.tokens_per_second:.1f} | {row.tokens_per_cpu_second:.1f} | {ratio} "
            f"| {sum(a == b for a, b in zip(row.texts, first, strict=True))}/{len(first)} |"
        )
    return "\n".join(lines)


def progress(row: Measurement) -> str:
    """One measurement in a line, for the log while the others run."""
    return f"{row.engine} {row.weights} batch {row.batch_size}: {row.tokens} tokens in {row.seconds:.1f} s"


def sizes(text: str) -> list[int]:
    """Batch sizes from a comma-separated flag (empty: none)."""
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    """Parse the flags, run every engine on the same prompts and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/initial"), help="model directory")
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both engines (default: free cores)")
    parser.add_argument("--hf-batch-sizes", default="1,8,16")
    parser.add_argument("--llamacpp-batch-sizes", default="1,16")
    parser.add_argument("--gguf-types", default="f16,q4_k_m", help="exported types; the embedded q4_1 file is added")
    args = parser.parse_args()

    threads = args.threads or free_cores()
    torch.set_num_threads(threads)
    checkpoint = resolve_checkpoint(bootstrap_base(args.checkpoint))
    hf_lm = SharedPrefixHFLM(
        pretrained=str(checkpoint.path), device="cpu", dtype="float32", batch_size=1, memory_batches=False
    )
    prompts = countdown_prompts(hf_lm, args.items)
    tokenizer = hf_lm.tokenizer
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    rows = []
    for batch_size in sizes(args.hf_batch_sizes):
        hf_lm.batch_size_per_gpu = batch_size
        for early_exit in (False, True):
            hf_lm.early_exit = early_exit
            engine = "transformers early exit" if early_exit else "transformers generate"
            rows.append(measure(hf_lm, engine, "fp32", prompts, args.max_tokens, count))
            print(progress(rows[-1]), file=sys.stderr, flush=True)
    if sizes(args.hf_batch_sizes) and pack_linears(hf_lm.model, "cpu") is not None:
        hf_lm.early_exit = True
        for batch_size in sizes(args.hf_batch_sizes):
            hf_lm.batch_size_per_gpu = batch_size
            rows.append(measure(hf_lm, "transformers early exit, oneDNN", "fp32", prompts, args.max_tokens, count))
            print(progress(rows[-1]), file=sys.stderr, flush=True)
        hf_lm.memory_batches = True  # the engine as it runs: batches as large as the free memory holds
        hf_lm.batch_size_per_gpu = min(sizes(args.hf_batch_sizes))
        longest = max(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts)
        chosen = generation_rows(hf_lm.model, hf_lm.device, longest, args.max_tokens, hf_lm.batch_size_per_gpu)
        engine = "transformers early exit, oneDNN, batch from free memory"
        found = measure(hf_lm, engine, "fp32", prompts, args.max_tokens, count)
        rows.append(replace(found, batch_size=min(chosen, len(prompts))))
        print(progress(rows[-1]), file=sys.stderr, flush=True)
    del hf_lm
    files = [
        (quant, export_gguf(checkpoint, quant, default_cache_dir(checkpoint)).path)
        for quant in args.gguf_types.split(",")
        if quant.strip()
    ]
    for weights, path in [*files, ("q4_1 (embedded)", embedded_gguf())] if sizes(args.llamacpp_batch_sizes) else []:
        runtime = GgufRuntime(path, threads)
        for batch_size in sizes(args.llamacpp_batch_sizes):
            lm = LlamaCppLM(runtime, batch_size=batch_size)
            rows.append(measure(lm, "llama.cpp", weights, prompts, args.max_tokens, count))
            print(progress(rows[-1]), file=sys.stderr, flush=True)
        runtime.close()
    print(table(rows, args.items, args.max_tokens, threads))


if __name__ == "__main__":
    main()
