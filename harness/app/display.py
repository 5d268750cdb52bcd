"""One display for long work: a single progress line (variant, task, items, tokens/s; stage, step, loss), with
the libraries' own bars, logs and warnings sent to a log file instead (or shown too, with ``--verbose``)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ftbench.harness.app import LIBRARY_LOGGERS
from ftbench.harness.core.events import (  # light: no torch, no lm-eval
    CheckpointEvent,
    EvaluationEvent,
    Event,
    ProgressEvent,
    StageEvent,
    TrainingEvent,
)
from ftbench.harness.core.names import terminal_lines, terminal_text

LOG_FILE = "ftbench.log"

console = Console(stderr=True)


def _quiet_progress_bars() -> None:
    """The libraries' own progress bars that do not follow ``TQDM_DISABLE``: weight loading and datasets."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()


class FolderLogHandler(logging.Handler):
    """Writes records to a file once its folder exists, holding them in memory until then, so that a run refused
    before any work leaves no log behind."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.held: list[str] = []
        self.stream: TextIO | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Write (or hold) one formatted record."""
        self.held.append(self.format(record))
        if self.stream is not None and self.stream.closed:  # a library's logging set-up closed it
            self.stream = None
        if self.stream is None and self.path.parent.is_dir():
            self.stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        if self.stream is not None:
            self.stream.write("\n".join(self.held) + "\n")
            self.stream.flush()
            self.held = []

    def close(self) -> None:
        """Write what is held if the folder exists by now, and close the file."""
        if self.held and self.stream is None and self.path.parent.is_dir():
            self.stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self.stream.write("\n".join(self.held) + "\n")
        if self.stream is not None:
            self.stream.close()
        super().close()


@contextmanager
def _captured_stderr(capture: bool) -> Iterator[None]:
    """While open, what programs write to the process's stderr (git run by lm-eval, llama.cpp's C logs) goes to
    the log instead; the display keeps writing to the terminal through a copy of the original stream."""
    if not capture:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", encoding="utf-8", errors="replace")
    previous_file = console._file  # None: the console follows sys.stderr
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as captured:
        os.dup2(captured.fileno(), 2)
        console.file = terminal
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            console._file = previous_file
            terminal.close()
            captured.seek(0)
            text = captured.read().strip()
            if text:
                logging.getLogger("ftbench.stderr").info("captured stderr:\n%s", text)


def _remove_lone_log(log_path: Path) -> None:
    """Remove the log, and its folder, when a failed command made that folder and wrote nothing else there."""
    folder = log_path.parent
    if folder.is_dir() and [p.name for p in folder.iterdir()] == [log_path.name]:
        log_path.unlink()
        folder.rmdir()


@contextmanager
def library_output(log_path: Path | None, verbose: bool) -> Iterator[None]:
    """Send the libraries' logging, warnings and progress bars to ``log_path`` (and to the console if ``verbose``).

    Without ``verbose`` the libraries' tqdm bars are switched off (``TQDM_DISABLE``), so the one display is all the
    console shows. When the block fails in a folder it made and left nothing else in, the log goes too.
    """
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    if log_path is not None:
        handlers.append(FolderLogHandler(log_path))
    if verbose:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in LIBRARY_LOGGERS}
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    previous_level, previous_tqdm = root.level, os.environ.get("TQDM_DISABLE")
    root.setLevel(logging.INFO)
    if not verbose:
        os.environ["TQDM_DISABLE"] = "1"
        _quiet_progress_bars()
    logging.captureWarnings(True)
    created = log_path is not None and not log_path.parent.exists()
    failed = True
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            with _captured_stderr(not verbose):
                yield
            failed = False
        finally:
            logging.captureWarnings(False)
            for handler in handlers:
                root.removeHandler(handler)
                handler.close()
            if failed and created and log_path is not None:
                _remove_lone_log(log_path)
            root.setLevel(previous_level)
            for name, (old, propagate) in saved.items():
                logging.getLogger(name).handlers, logging.getLogger(name).propagate = old, propagate
            if previous_tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = previous_tqdm


class Display:
    """The progress line of a run or a pipeline."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),  # names and paths are never markup
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.bar = self.progress.add_task("", total=None, detail="")
        self.started = False
        self.losses = ""
        self.finished = 0
        self.nodes: dict[str, TaskID] = {}

    def _start(self) -> None:
        if not self.started:  # only once work is under way, so input errors print alone
            self.progress.start()
            self.started = True

    def show(self, event: Event) -> None:
        """Show any event: an evaluation's progress, a training step, a pipeline stage's phase, or a training run's
        evaluated checkpoint."""
        if isinstance(event, TrainingEvent):
            self.training(event)
        elif isinstance(event, StageEvent):
            if event.phase == "evaluating":
                self.reset()
            elif event.phase != "evaluated":
                self.message(f"{event.stage}: {event.phase}")
        elif isinstance(event, CheckpointEvent):
            self.reset()
            self.message(checkpoint_line(event))
        else:
            self.evaluation(event)

    def evaluation(self, event: EvaluationEvent) -> None:
        """Show a run's progress: which evaluation, how far, how fast; on a cluster, one line per node too."""
        self._start()
        detail = event.kind.value
        if isinstance(event, ProgressEvent):
            detail = f"{event.requests} requests"
            if event.tokens_per_second:
                detail += f", {event.tokens_per_second:.0f} tok/s"
        if event.finished:
            self.finished += 1
        self.progress.update(
            self.bar,
            total=event.total,
            completed=self.finished,
            description=terminal_text(f"{event.variant} {event.task}"),
            detail=detail,
        )
        if event.node is not None:
            if event.node not in self.nodes:
                self.nodes[event.node] = self.progress.add_task("", total=None, detail="")
            self.progress.update(
                self.nodes[event.node],
                description=terminal_text(f"  {event.node}: {event.variant} {event.task}"),
                detail=detail,
            )

    def training(self, event: TrainingEvent) -> None:
        """Show a stage's training progress: step and the latest loss (and reward, for RL)."""
        self._start()
        logs = dict(event.logs)
        shown = [f"{k} {logs[k]:.4g}" for k in ("loss", "reward") if k in logs]
        if shown:
            self.losses = ", ".join(shown)
        self.progress.update(
            self.bar,
            total=event.total_steps or None,
            completed=event.step,
            description=f"training {event.stage}",
            detail=self.losses,
        )

    def message(self, text: str) -> None:
        """A line above the progress line (its control characters written out)."""
        self.progress.console.print(terminal_lines(text), highlight=False, markup=False)

    def reset(self) -> None:
        """Start the clock and the count again (a new round of work)."""
        self.progress.reset(self.bar, total=None, detail="")
        self.finished = 0

    def stop(self) -> None:
        """Remove the live line."""
        if self.started:
            self.progress.stop()
            self.started = False


def checkpoint_line(event: CheckpointEvent) -> str:
    """``checkpoint-4 (step 4): arc_easy acc_norm 0.25; gate pass (...)``: a training run's checkpoint, its headline
    values and the gate's verdict, or why it could not be evaluated; names and reasons with their control characters
    written out (``terminal_text``)."""
    if event.failed is not None:
        return terminal_text(f"{event.name} (step {event.step}): could not be evaluated: {event.failed}")
    values = ", ".join(f"{task} {metric} {value:.4g}" for task, metric, value in event.headlines)
    gate = f"; gate {event.outcome}: {event.reason}" if event.outcome is not None else ""
    what = f" [{'; '.join(event.regressions)}]" if event.regressions else ""
    return terminal_text(f"{event.name} (step {event.step}, {event.seconds:.1f} s): {values}{gate}{what}")
