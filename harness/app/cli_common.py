"""What every command shares: one line and exit 2 for any failure, and the simple flag parsers."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from functools import wraps
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from rich.markup import escape

from ftbench.harness.app.display import console
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.names import terminal_text

P = ParamSpec("P")
R = TypeVar("R")
VerboseOption = Annotated[bool, typer.Option("--verbose", help="Show the libraries' own logs and progress bars too.")]

TRACEBACK_ENV = "FTBENCH_TRACEBACK"


def _fail(message: str) -> NoReturn:
    print_error(message)
    raise typer.Exit(2)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on one line of stderr; the message (which quotes user input) is never read as markup, and
    its control characters are written out (``terminal_text``)."""
    text = terminal_text(" ".join(message.split()))
    console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _os_error_message(exc: OSError) -> str:
    """A failed file operation as one sentence naming the path and what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"the disk is full writing{where}; free space on it or choose a folder on another disk"
    return f"cannot use{where} ({exc.strerror or type(exc).__name__}); check the path and its permissions"


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into one line on stderr and exit code 2, so that exit 1 means only a gate's regression.

    An FtbenchError names bad input or an evaluation that could not be trusted; anything else is unexpected and
    says so (set ``FTBENCH_TRACEBACK=1`` to see the traceback).
    """

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, KeyboardInterrupt):
            raise
        except FtbenchError as exc:
            _fail(str(exc))
        except OSError as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            _fail(_os_error_message(exc))
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _fail(f"unexpected {type(exc).__name__}: {text} (set {TRACEBACK_ENV}=1 for the traceback)")

    return wrapper


def split_flag(values: list[str] | None) -> list[str] | None:
    """Repeatable, comma-separated flag values as one list (None when none were given)."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
