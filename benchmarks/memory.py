"""Peak resident memory of ``make demo``, step by step and stage by stage (a measurement, not a test)::

    PYTHONPATH=. .venv/bin/python benchmarks/memory.py [--workdir /tmp/ftbench-memory] [--interval 0.2]
        [--keep] [-- COMMAND ...]

Without a command it runs the demo's steps as ``make demo`` runs them (``ftbench base``, ``ftbench pipeline``, the
final stage's Q4_K_M evaluation and the report), each its own process, inside ``--workdir`` (made if missing, with
``configs`` linked from this checkout), so the user's ``checkpoints/`` and ``results/`` are never touched. A given
``COMMAND`` runs once, in the same folder. A thread samples the resident set size of the process tree (each process
and every child of it, summed) every ``--interval`` seconds. The pipeline's phases are told apart by the lines it
prints (``STAGE: training``, ``STAGE: trained`` or ``reused``): before the first stage trains it evaluates the base,
and after a stage is trained it evaluates it. Prints, per step and phase, its wall time and peak, and the overall
peak; ``/usr/bin/time -v`` on the same command gives the overall peak as a cross-check ("Maximum resident set size",
of the largest single process).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
FTBENCH = str(Path(sys.executable).parent / "ftbench")
PHASE_LINE = re.compile(r"^(?P<stage>[\w.-]+): (?P<phase>training|trained|reused)\s*$")


def demo_steps() -> list[tuple[str, list[str]]]:
    """The demo's steps as the Makefile's ``demo`` target runs them (relative to the working folder)."""
    final = "checkpoints/final"
    return [
        ("base", [FTBENCH, "base"]),
        ("pipeline", [FTBENCH, "pipeline", "--config", "configs/pipeline.yaml"]),
        ("gguf", [FTBENCH, "run", "--spec", "configs/demo-suite.yaml", "--checkpoint", final,
                  "--precision", "gguf-q4_k_m", "--out", "results/demo-gguf"]),
        ("report", [FTBENCH, "report", "results/demo", "results/demo-gguf", "--out", "reports/out/demo"]),
    ]  # fmt: skip


@dataclass
class Phase:
    """One phase of one step: its name, when it started and ended, and the peak seen during it."""

    name: str
    started: float
    ended: float = 0.0
    peak: int = 0


@dataclass
class Sampler:
    """Samples a process tree's summed resident memory into the current phase, on a thread of its own."""

    interval: float
    phases: list[Phase] = field(default_factory=list)
    process: psutil.Process | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def begin(self, name: str) -> None:
        """End the current phase and start ``name``."""
        now = time.perf_counter()
        if self.phases:
            self.phases[-1].ended = now
        self.phases.append(Phase(name, now))

    def tree_rss(self) -> int:
        """The summed resident set size of the process and its children (0 once it has gone)."""
        if self.process is None:
            return 0
        try:
            members = [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for member in members:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stop.wait(self.interval):
            if self.phases:
                rss = self.tree_rss()
                self.phases[-1].peak = max(self.phases[-1].peak, rss)


def phase_name(step: str, line: str, current: str) -> str:
    """The phase a pipeline line starts: a stage training, or the evaluation of the stage just made."""
    match = PHASE_LINE.match(line.strip())
    if step != "pipeline" or match is None:
        return current
    stage, phase = match["stage"], match["phase"]
    return f"train {stage}" if phase == "training" else f"evaluate {stage}"


def run_step(sampler: Sampler, step: str, command: list[str], workdir: Path) -> int:
    """Run one step with its stderr read line by line (echoed, and telling the pipeline's phases apart)."""
    current = "evaluate base" if step == "pipeline" else step
    sampler.begin(f"{step}: {current}")
    process = subprocess.Popen(command, cwd=workdir, stderr=subprocess.PIPE, text=True, errors="replace")
    sampler.process = psutil.Process(process.pid)
    assert process.stderr is not None
    for line in process.stderr:
        sys.stderr.write(line)
        name = phase_name(step, line, current)
        if name != current:
            current = name
            sampler.begin(f"{step}: {current}")
    code = process.wait()
    sampler.phases[-1].ended = time.perf_counter()
    return code


def prepare(workdir: Path) -> None:
    """Make the working folder, with this checkout's ``configs`` linked into it."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / "configs"
    if not link.exists():
        link.symlink_to(ROOT / "configs", target_is_directory=True)


def report(phases: list[Phase]) -> None:
    """Print each phase's wall time and peak, and the overall peak."""
    print(f"{'phase':<34} {'wall s':>8} {'peak MiB':>9}")
    for phase in phases:
        print(f"{phase.name:<34} {phase.ended - phase.started:8.1f} {phase.peak / 2**20:9.0f}")
    total = phases[-1].ended - phases[0].started if phases else 0.0
    print(f"{'overall':<34} {total:8.1f} {max((p.peak for p in phases), default=0) / 2**20:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ftbench-memory"))
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--keep", action="store_true", help="keep the working folder's checkpoints and results")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="a command to measure instead of the demo")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    if not args.keep:
        for name in ("checkpoints", "results", "reports"):
            shutil.rmtree(workdir / name, ignore_errors=True)
    prepare(workdir)
    command = [part for part in args.command if part != "--"]
    steps = [("command", command)] if command else demo_steps()
    sampler = Sampler(args.interval)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    os.environ.setdefault("FTBENCH_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    try:
        for step, argv in steps:
            code = run_step(sampler, step, argv, workdir)
            if code != 0:
                print(f"{step} failed (exit {code})", file=sys.stderr)
                break
    finally:
        sampler.stop.set()
        thread.join()
        report(sampler.phases)


if __name__ == "__main__":
    main()
