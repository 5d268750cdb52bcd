"""The one exception type for bad user input, and the wording of validation failures."""

from typing import NamedTuple

from pydantic import ValidationError


class FtbenchError(Exception):
    """Bad input from the user: a missing path, an unknown name, a malformed spec.

    The message is one sentence that names the bad input and says how to fix it. The CLI prints it
    and exits with code 2, before anything is written.
    """


class ErrorSpot(NamedTuple):
    """The first problem pydantic found: where (dotted path), what, its type and raw location."""

    where: str
    message: str
    kind: str
    location: tuple[int | str, ...]


def first_error(exc: ValidationError) -> ErrorSpot:
    """The first error of a validation failure, ready for a one-line message."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return ErrorSpot(where, error["msg"].removeprefix("Value error, "), error["type"], tuple(error["loc"]))
