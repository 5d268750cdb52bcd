"""Two evaluations on the same cores against one alone (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/shared_cores.py --model checkpoints/initial [--items 16]
        [--max-tokens 96] [--precision fp32] [--stagger 25]

Two Countdown evaluations (``ftbench run``, each its own process and results folder, no store): the measured one
(``--items`` × ``--max-tokens``) and a background one that generates three times as long. Each runs alone first;
then the background one starts, and ``--stagger`` seconds later (0: both at once) the measured one, so it loads and
runs wholly beside the other, as an evaluation started beside training or beside another CI job does. Each sizes
its threads from the cores it finds free when its model loads and keeps re-measuring as it runs. Prints
generated tokens/s of each (from the records' ``performance``), its threads at load, and its share of its
throughput alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def command(args: argparse.Namespace, out: Path, tokens: int) -> list[str]:
    return [
        sys.executable, "-m", "ftbench.harness.app.cli", "run", "--checkpoint", str(args.model),
        "--task", "countdown", "--limit", str(args.items), "--max-gen-toks", str(tokens),
        "--precision", args.precision, "--batch-size", str(args.items), "--out", str(out),
    ]  # fmt: skip


def performance(out: Path) -> tuple[float, int | None, float]:
    """Tokens/s, threads and wall seconds of the one evaluation stored in ``out``."""
    (path,) = (out / "evals").glob("*.json")
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    perf = record["performance"]
    return float(perf["tokens_per_second"]), record["variant"].get("threads"), float(perf["wall_seconds"])


def start(args: argparse.Namespace, out: Path, tokens: int) -> subprocess.Popen[bytes]:
    env = os.environ | {"FTBENCH_STORE": "none"}
    return subprocess.Popen(command(args, out, tokens), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], name: str) -> None:
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed (exit {process.returncode}): {err.decode(errors='replace')[-400:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--stagger", type=float, default=25.0, help="seconds between the two starts")
    args = parser.parse_args()
    runs = {"measured": args.max_tokens, "background": 3 * args.max_tokens}
    with tempfile.TemporaryDirectory(prefix="ftbench-shared-cores-") as folder:
        root = Path(folder)
        alone = {}
        for name, tokens in runs.items():
            finish(start(args, root / f"{name}-alone", tokens), f"the {name} run alone")
            alone[name], threads, wall = performance(root / f"{name}-alone")
            print(f"{name} alone ({tokens} tokens): {alone[name]:.1f} tok/s, {threads} threads, {wall:.1f} s")
        background = start(args, root / "background", runs["background"])
        time.sleep(args.stagger)
        measured = start(args, root / "measured", runs["measured"])
        finish(measured, "the measured run")
        finish(background, "the background run")
        for name in runs:
            rate, threads, wall = performance(root / name)
            print(
                f"{name} beside the other: {rate:.1f} tok/s, {threads} threads, {wall:.1f} s, "
                f"{rate / alone[name]:.0%} of alone"
            )


if __name__ == "__main__":
    main()
