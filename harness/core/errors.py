"""The one exception type for bad user input, and the wording of validation failures."""

import difflib
import types
import typing
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


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


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its type's name when it has no
    message: what a one-line error quotes from a library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def first_error(exc: ValidationError) -> ErrorSpot:
    """The first error of a validation failure, ready for a one-line message."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return ErrorSpot(where, error["msg"].removeprefix("Value error, "), error["type"], tuple(error["loc"]))


def nested_fields(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """The field names of the model that holds the last key of ``location`` (list indices are skipped)."""
    for part in location[:-1]:
        if isinstance(part, int) or part not in model.model_fields:
            continue
        inner = _model_in(model.model_fields[part].annotation)
        if inner is None:
            break
        model = inner
    return sorted(model.model_fields)


def nearest_hint(name: str, valid: list[str]) -> str:
    """``did you mean 'x'?`` for the closest valid name, else the list of valid names."""
    close = difflib.get_close_matches(name, valid, n=1)
    return f"did you mean {close[0]!r}?" if close else f"valid keys are {', '.join(sorted(valid))}"


def validated(model: type[ModelT], data: Any, origin: str, suggest: bool = False) -> ModelT:
    """``data`` validated as ``model``; a failure becomes one line naming ``origin``, the key and the problem.

    Args:
        model: the pydantic model.
        data: what was read (a mapping).
        origin: how the message names the input, e.g. the file.
        suggest: for an unknown key, name the closest valid key instead of listing them all.

    Raises:
        FtbenchError: the data does not validate.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        spot = first_error(exc)
        message = spot.message
        if spot.kind == "extra_forbidden":
            valid = nested_fields(model, spot.location)
            hint = nearest_hint(str(spot.location[-1]), valid) if suggest else f"valid keys are {', '.join(valid)}"
            message = f"unknown key; {hint}"
        raise FtbenchError(f"{origin}: {spot.where}: {message}") from exc


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X``, ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        return next((m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None), None)
    return None


class EvaluationError(FtbenchError):
    """An evaluation that could not produce trustworthy results: an engine failed, or returned output that cannot
    be right (every choice scored alike, a zero log-likelihood). Like bad input, it exits with code 2."""
